// 230: 200 submits from 20 parallel clients: all 200, all distinct ids, all complete.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startServer, cleanup, submit, poll, curl, pmap, RE } from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-3.1-flash-image-preview';
const CLIENTS = 20;
const PER_CLIENT = 10;

test('200 submits from 20 parallel clients: all accepted with distinct ids, all complete', async (t) => {
  const s = await startServer();
  const t0 = Date.now();
  // Small outputs (3.1 flash at "512") keep the CPU work down: this is about the HTTP and
  // task paths, not about rendering 200 megapixel images on two cores.
  const sizes = ['1:1', '21:9', '9:16', '4:3'];
  const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const mine = [];
    for (let k = 0; k < PER_CLIENT; k++) {
      const body = { model: MODEL, prompt: `client ${c} request ${k}`, size: sizes[(c + k) % sizes.length], resolution: '512' };
      const r = await submit(s, body);
      assert.equal(r.status, 200, `client ${c} request ${k}: ${r.body}`);
      assert.match(r.json.id, RE.taskId);
      assert.equal(r.json.status, 'processing');
      mine.push(r.json.id);
    }
    return mine;
  }));
  const ids = results.flat();
  t.diagnostic(`200 submits answered in ${Date.now() - t0} ms`);
  assert.equal(ids.length, CLIENTS * PER_CLIENT);
  assert.equal(new Set(ids).size, ids.length, 'every id distinct');

  // Tasks finish roughly in submit order: a few pollers walking the list in order.
  const finals = await pmap(ids, 4, async (id) => {
    const r = await poll(s, id, s.key, { timeoutMs: 90000 });
    assert.equal(r.json.status, 'completed', `${id}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.output.image_urls.length, 1);
    return r.json.output.image_urls[0];
  });
  assert.equal(new Set(finals).size, ids.length, 'every task has its own URL');
  t.diagnostic(`all completed ${Date.now() - t0} ms after the first submit`);

  // A sample of the images is there.
  for (const u of finals.filter((_, i) => i % 40 === 0)) {
    const r = await curl(['-I', u]);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'image/png');
  }
  const h = await curl([`${s.base}/healthz`]);
  assert.equal(h.status, 200);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

/** state, attempts, lease owner and started_ms of a task row, read with the sqlite3 shell. */
function row(server, id) {
  const hex = id.replace(/^task_/, '');
  const out = execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(server.dataDir, 'imagegate.db'),
    `SELECT state, attempts, lease_owner IS NOT NULL, started_ms >= created_ms FROM tasks WHERE id = '${hex}';`],
  { encoding: 'utf8' }).trim();
  return out;
}

test('admission: with room a task is stored already running (leased, attempt 1); past --max-inflight it waits queued and runs after', async () => {
  const s = await startServer({ args: ['--max-inflight', '2', '--offline-latency-ms', '1500'] });
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const r = await submit(s, { model: MODEL, prompt: `admission ${i}`, resolution: '512' });
    assert.equal(r.status, 200, r.body);
    ids.push(r.json.id);
  }
  // Read at once: the first two were committed as running in the submit's own transaction, the
  // third found no room and is queued (it cannot have been claimed yet: both slots are held).
  assert.equal(row(s, ids[0]), 'running|1|1|1');
  assert.equal(row(s, ids[1]), 'running|1|1|1');
  assert.equal(row(s, ids[2]), 'queued|0|0|0');
  for (const id of ids) {
    const r = await poll(s, id);
    assert.equal(r.json.status, 'completed', JSON.stringify(r.json));
  }
  assert.equal(row(s, ids[2]).split('|').slice(1).join('|'), '1|1|1', 'claimed once, then finished');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

// 230: 200 submits from 20 parallel clients: all 200, all distinct ids, all complete.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
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

// 250: per-key limits. Submits per minute (GCRA with a burst): 429, reAPI code 50001 and a
// Retry-After that is right at the edge; unfinished tasks per key, counted in the insert's
// transaction; a key's own limits over the server's defaults; the operator's first key has
// none.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startServer, cleanup, submit, poll, runCli, sleep } from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-2.5-flash-image-preview';

function newKey(server, name) {
  const r = runCli(['keys', 'create', '--data', server.dataDir, '--name', name]);
  assert.equal(r.code, 0, r.stderr);
  const id = Number(execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(server.dataDir, 'imagegate.db'),
    `SELECT max(id) FROM keys WHERE name = '${name}'`], { encoding: 'utf8' }).trim());
  return { key: r.stdout.trim(), id };
}

test('submits per minute: the burst passes, the next gets 429 / 50001 with Retry-After, and passes after it', async () => {
  const s = await startServer({ args: ['--rate-rpm', '60', '--rate-burst', '3'] });
  const { key } = newKey(s, 'paced');
  for (let i = 0; i < 3; i++) {
    const r = await submit(s, { model: MODEL, prompt: `burst ${i}` }, { key });
    assert.equal(r.status, 200, r.body);
  }
  const t0 = Date.now();
  const refused = await submit(s, { model: MODEL, prompt: 'one too many' }, { key });
  assert.equal(refused.status, 429, refused.body);
  assert.equal(refused.json.error.code, 50001);
  assert.equal(refused.headers['retry-after'], '1');
  assert.match(refused.json.error.message, /^rate limited: this key may submit 60 tasks per minute; retry in 1 s$/);
  // Another key is not affected, nor the operator's first key (no limits of its own).
  const other = newKey(s, 'other');
  assert.equal((await submit(s, { model: MODEL, prompt: 'other key' }, { key: other.key })).status, 200);
  for (let i = 0; i < 10; i++) assert.equal((await submit(s, { model: MODEL, prompt: `first ${i}` })).status, 200);
  await sleep(Math.max(0, 1050 - (Date.now() - t0)));
  const again = await submit(s, { model: MODEL, prompt: 'after the wait' }, { key });
  assert.equal(again.status, 200, again.body);
  const tooSoon = await submit(s, { model: MODEL, prompt: 'and again at once' }, { key });
  assert.equal(tooSoon.status, 429);
});

test('unfinished tasks per key: the limit+1-th is refused with 429 / 50001 until one ends', async () => {
  const s = await startServer({ args: ['--max-tasks-per-key', '2', '--offline-latency-ms', '1500'] });
  const { key } = newKey(s, 'busy');
  const a = await submit(s, { model: MODEL, prompt: 'slot one' }, { key });
  const b = await submit(s, { model: MODEL, prompt: 'slot two' }, { key });
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  const c = await submit(s, { model: MODEL, prompt: 'no slot' }, { key });
  assert.equal(c.status, 429, c.body);
  assert.equal(c.json.error.code, 50001);
  assert.equal(c.headers['retry-after'], '1');
  assert.equal(c.json.error.message, 'rate limited: this key already has 2 unfinished tasks');
  await poll(s, a.json.id, key);
  const d = await submit(s, { model: MODEL, prompt: 'a slot again' }, { key });
  assert.equal(d.status, 200, d.body);
});

test("a key's own limits override the server's: keys limits sets and lists them", async () => {
  const s = await startServer({ args: ['--rate-rpm', '1', '--rate-burst', '1'] });
  const { key, id } = newKey(s, 'vip');
  let r = runCli(['keys', 'limits', String(id), '--rpm', '0', '--data', s.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${id}\tvip\tunmetered\t0.000000\tactive\trpm=0\tmax-tasks=default\n`);
  for (let i = 0; i < 5; i++) // the key cache keeps a key up to 1 s: a fresh key sees it at once
    assert.equal((await submit(s, { model: MODEL, prompt: `vip ${i}` }, { key })).status, 200);
  r = runCli(['keys', 'limits', String(id), '--max-tasks', '3', '--rpm', 'default', '--data', s.dataDir]);
  assert.equal(r.stdout, `${id}\tvip\tunmetered\t-0.195000\tactive\trpm=default\tmax-tasks=3\n`); // 5 images held
  r = runCli(['keys', 'limits', String(id), '--rpm', '-1', '--data', s.dataDir]);
  assert.equal(r.code, 2);
  r = runCli(['keys', 'limits', '999', '--rpm', '5', '--data', s.dataDir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no key has this id/);
  r = runCli(['keys', 'limits', String(id), '--data', s.dataDir]);
  assert.equal(r.code, 2);
});

// 260: Idempotency-Key on the reAPI submit. The same key and body replay the first response
// byte for byte and create nothing, also under 50 concurrent clients; another body is 422;
// keys are per API key; a refused first use records nothing; the record expires.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, cleanup, submit, poll, runCli, pmap, curl, sleep } from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-2.5-flash-image-preview';
const count = (s, q) => Number(execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000',
  path.join(s.dataDir, 'imagegate.db'), q], { encoding: 'utf8' }).trim());
const idem = (k) => ({ extra: ['-H', `Idempotency-Key: ${k}`] });

test('same key, same body: the first response again, byte for byte, and one task', async () => {
  const s = await startServer();
  const body = { model: MODEL, prompt: 'only once', size: '16:9' };
  const a = await submit(s, body, idem('order-1'));
  assert.equal(a.status, 200, a.body);
  assert.equal(a.headers['idempotent-replayed'], undefined);
  const b = await submit(s, body, idem('order-1'));
  assert.equal(b.status, 200);
  assert.equal(b.body, a.body);
  assert.equal(b.headers['idempotent-replayed'], 'true');
  assert.equal(b.headers['content-type'], 'application/json');
  assert.equal(count(s, 'SELECT count(*) FROM tasks'), 1);
  // after the task finished too
  await poll(s, a.json.id);
  const c = await submit(s, body, idem('order-1'));
  assert.equal(c.body, a.body);
  assert.equal(count(s, 'SELECT count(*) FROM tasks'), 1);
  // another body with the same key: 422, nothing created
  const d = await submit(s, { ...body, prompt: 'something else' }, idem('order-1'));
  assert.equal(d.status, 422, d.body);
  assert.equal(d.json.error.code, 20003);
  assert.match(d.json.error.message, /^this Idempotency-Key was used with a different request/);
  // a new key is a new request; no key at all always is
  assert.notEqual((await submit(s, body, idem('order-2'))).json.id, a.json.id);
  assert.notEqual((await submit(s, body)).json.id, a.json.id);
  assert.equal(count(s, 'SELECT count(*) FROM tasks'), 3);
});

test('1,000 submits with one Idempotency-Key from 50 clients: one task, 1,000 identical answers', async () => {
  const s = await startServer();
  const body = { model: MODEL, prompt: 'stampede', resolution: '1K' };
  const rs = await pmap(Array.from({ length: 1000 }, (_, i) => i), 50, () => submit(s, body, idem('stampede-1')));
  const first = rs[0].body;
  for (const r of rs) {
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, first);
  }
  assert.equal(count(s, 'SELECT count(*) FROM tasks'), 1);
  assert.equal(count(s, "SELECT count(*) FROM ledger WHERE kind = 'hold'"), 1, 'held once');
  assert.equal(rs.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 999);
});

test('keys are per API key; a refused first use records nothing; a bad key header is 400', async () => {
  const s = await startServer({ args: ['--max-tasks-per-key', '1', '--offline-latency-ms', '1000'] });
  const other = runCli(['keys', 'create', '--data', s.dataDir, '--name', 'other']).stdout.trim();
  const body = { model: MODEL, prompt: 'shared key name' };
  const a = await submit(s, body, idem('k'));
  const b = await submit(s, body, { key: other, ...idem('k') });
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.notEqual(a.json.id, b.json.id, 'two API keys, two tasks');
  // the other key is at its 1 unfinished task: refused (429), and not recorded...
  const c = await submit(s, { ...body, prompt: 'later' }, { key: other, ...idem('k2') });
  assert.equal(c.status, 429);
  await poll(s, b.json.id, other);
  // ...so the same request with the same key is admitted once there is room
  const d = await submit(s, { ...body, prompt: 'later' }, { key: other, ...idem('k2') });
  assert.equal(d.status, 200, d.body);
  for (const bad of ['Idempotency-Key;', `Idempotency-Key: ${'x'.repeat(256)}`]) { // empty; too long
    const r = await submit(s, body, { extra: ['-H', bad] });
    assert.equal(r.status, 400, r.body);
    assert.match(r.json.error.message, /^Idempotency-Key must be 1 to 255 printable ASCII characters$/);
  }
  const tab = await curl(['-H', `Authorization: Bearer ${s.key}`, '-H', 'Idempotency-Key: a\tb',
    '-d', JSON.stringify(body), `${s.base}/api/v1/images/generations`]);
  assert.equal(tab.status, 400);
});

test('a record is replayed for --idempotency-ttl, then the key is new again', async () => {
  const s = await startServer({ args: ['--idempotency-ttl', '60', '--sweep-interval', '1'] });
  const body = { model: MODEL, prompt: 'ttl' };
  const a = await submit(s, body, idem('ttl-1'));
  assert.equal((await submit(s, body, idem('ttl-1'))).body, a.body);
  // 61 s later by the server's clock (the test clock offset), the record is gone
  await s.stop();
  const s2 = await startServer({ dataDir: s.dataDir, args: ['--idempotency-ttl', '60', '--sweep-interval', '1'],
    env: { IMAGEGATE_CLOCK_OFFSET_MS: '61000' } });
  const b = await submit(s2, body, idem('ttl-1'));
  assert.equal(b.status, 200);
  assert.notEqual(b.json.id, a.json.id);
  await sleep(1500); // a sweep has run: the old record is deleted
  assert.equal(count(s2, "SELECT count(*) FROM idempotency WHERE idem_key = 'ttl-1'"), 1);
});

test('a duplicate waits --idempotency-wait-ms for the first one\'s admission, then gets 409; once admitted, replays', async () => {
  const s = await startServer({ args: ['--idempotency-wait-ms', '300'] });
  const body = { model: MODEL, prompt: 'admitted slowly' };
  // Another process holds the store's write lock: the first submit's admission waits on it.
  const db = path.join(s.dataDir, 'imagegate.db');
  const locker = spawn('sqlite3', [db], { stdio: ['pipe', 'ignore', 'inherit'] });
  locker.stdin.write('BEGIN IMMEDIATE;\n');
  await sleep(300);
  const first = submit(s, body, idem('slow-1'));
  await sleep(200);
  const t0 = Date.now();
  const dup = await submit(s, body, idem('slow-1'));
  const waited = Date.now() - t0;
  assert.equal(dup.status, 409, dup.body);
  assert.equal(dup.json.error.code, 20003);
  assert.match(dup.json.error.message, /^a request with this Idempotency-Key is still being admitted/);
  assert.ok(waited >= 250, `answered after ${waited} ms, not after the wait`);
  locker.stdin.write('COMMIT;\n');
  locker.stdin.end();
  const a = await first;
  assert.equal(a.status, 200, a.body);
  const again = await submit(s, body, idem('slow-1'));
  assert.equal(again.body, a.body);
  assert.equal(again.headers['idempotent-replayed'], 'true');
  assert.equal(count(s, 'SELECT count(*) FROM tasks'), 1);
});

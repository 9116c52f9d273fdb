// 010: a server comes up, answers /healthz, makes its first key once, takes keys made by the
// CLI, and says everywhere that it is offline.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, cleanup, curl, submit, poll, createKey, runCli, RE, tmpDir,
} from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-2.5-flash-image-preview';

test('first start, healthz, second start on the same data directory', async (t) => {
  const dir = tmpDir();
  const keyFile = path.join(dir, 'first-key.txt');
  const s1 = await startServer({ dataDir: dir });

  await t.test('GET /healthz answers 200 {"status":"ok","offline":true} with a request id', async () => {
    const r = await curl([`${s1.base}/healthz`]);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(r.headers['x-request-id'], RE.requestId);
    assert.equal(r.body, '{"status":"ok","offline":true}');
    assert.deepEqual(r.json, { status: 'ok', offline: true });
  });

  await t.test('each request gets its own X-Request-Id', async () => {
    const a = await curl([`${s1.base}/healthz`]);
    const b = await curl([`${s1.base}/healthz`]);
    assert.match(a.headers['x-request-id'], RE.requestId);
    assert.match(b.headers['x-request-id'], RE.requestId);
    assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
  });

  await t.test('HEAD /healthz answers 200 without a body', async () => {
    const r = await curl(['-I', `${s1.base}/healthz`]);
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
  });

  await t.test('first-key.txt: mode 0600, a well-formed key, announced on stderr with a curl command', () => {
    assert.ok(fs.existsSync(keyFile));
    const st = fs.statSync(keyFile);
    assert.equal(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
    const text = fs.readFileSync(keyFile, 'utf8');
    assert.match(text, /^igk_[0-9A-Za-z]{49}\n$/);
    assert.match(s1.key, RE.key);
    const err = s1.stderr();
    assert.ok(err.includes(keyFile), 'stderr names the key file');
    assert.match(err, /curl http:\/\/127\.0\.0\.1:\d+\/api\/v1\/images\/generations/);
    assert.ok(err.includes(`Authorization: Bearer $(cat ${keyFile})`));
    assert.ok(err.includes(`curl ${s1.base}/api/v1/images/generations`), 'the curl command names this server');
  });

  await t.test('stderr warns OFFLINE MODE', () => {
    assert.match(s1.stderr(), /OFFLINE MODE/);
  });

  await t.test('the first key works', async () => {
    const r = await submit(s1, { model: MODEL, prompt: 'a lighthouse' });
    assert.equal(r.status, 200, r.body);
    assert.match(r.json.id, RE.taskId);
  });

  const firstKey = s1.key;
  const mtime = fs.statSync(keyFile).mtimeMs;
  const stopped = await s1.stop();
  assert.deepEqual(stopped, { code: 0, signal: null });

  await t.test('a second start on the same directory makes no new key', async () => {
    const s2 = await startServer({ dataDir: dir });
    assert.equal(s2.key, firstKey);
    assert.equal(fs.statSync(keyFile).mtimeMs, mtime);
    assert.equal(fs.readFileSync(keyFile, 'utf8'), `${firstKey}\n`);
    assert.doesNotMatch(s2.stderr(), /created a first API key/);
    const r = await submit(s2, { model: MODEL, prompt: 'still valid' }, { key: firstKey });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(await s2.stop(), { code: 0, signal: null });
  });
});

test('keys create --name prints one key line, and that key works on a running server', async () => {
  const s = await startServer();
  const raw = runCli(['keys', 'create', '--data', s.dataDir, '--name', 'x']);
  assert.equal(raw.code, 0, raw.stderr);
  assert.match(raw.stdout, /^igk_[0-9A-Za-z]{49}\n$/, 'one line, the key alone');
  const out = raw.stdout.trim();
  assert.equal(createKey(s.dataDir, 'y') === out, false, 'every key is new');
  assert.notEqual(out, s.key);
  const r = await submit(s, { model: MODEL, prompt: 'made with a CLI key' }, { key: out });
  assert.equal(r.status, 200, r.body);
  const done = await poll(s, r.json.id, out);
  assert.equal(done.json.status, 'completed');
});

test('keys create on a fresh directory creates it and prints exactly one line', async () => {
  const dir = path.join(tmpDir(), 'new-data');
  const r = runCli(['keys', 'create', '--data', dir, '--name', 'x']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^igk_[0-9A-Za-z]{49}\n$/);
  assert.ok(fs.existsSync(path.join(dir, 'imagegate.db')));
  // A server on that directory already has a key: it makes no first key.
  const s = await startServer({ dataDir: dir });
  assert.equal(s.key, undefined);
  assert.ok(!fs.existsSync(path.join(dir, 'first-key.txt')));
  const sub = await submit(s, { model: MODEL, prompt: 'hello' }, { key: r.stdout.trim() });
  assert.equal(sub.status, 200, sub.body);
});

test('offline mode is marked on the submit response and on the poll of a finished task', async () => {
  const s = await startServer();
  const r = await submit(s, { model: MODEL, prompt: 'an offline picture' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-imagegate-offline'], 'true');
  const done = await poll(s, r.json.id);
  assert.equal(done.json.status, 'completed');
  assert.equal(done.headers['x-imagegate-offline'], 'true');
  const img = await curl([done.json.output.image_urls[0]]);
  assert.equal(img.status, 200);
  assert.equal(img.headers['x-imagegate-offline'], 'true');
});

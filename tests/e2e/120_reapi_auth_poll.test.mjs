// 120: reAPI authentication (401, code 10003) and polling: ids in every accepted form,
// ownership, the processing and completed envelopes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, curl, submit, getTask, poll, auth, createKey, tmpDir, RE,
} from './lib/harness.mjs';

const MODEL = 'gemini-2.5-flash-image-preview';
let srv;        // the ordinary server
let keyB;       // a second key of srv's data directory, made before it started
let keyLate;    // a key made by the CLI while srv runs
let foreignKey; // a valid key of another data directory
let slow;       // a server whose tasks take 3 s
let doneTask;   // a completed task of srv's first key

before(async () => {
  const dir = tmpDir();
  // keys create on an empty directory: srv then makes no first key, so make key A too.
  const keyA = createKey(dir, 'A');
  keyB = createKey(dir, 'B');
  srv = await startServer({ dataDir: dir });
  srv.key = keyA;
  keyLate = createKey(dir, 'late');
  foreignKey = createKey(tmpDir(), 'elsewhere');
  slow = await startServer({ args: ['--offline-latency-ms', String(3000)] });
  const r = await submit(srv, { model: MODEL, prompt: 'a task to poll', n: 2 });
  assert.equal(r.status, 200, r.body);
  doneTask = (await poll(srv, r.json.id)).json;
});
after(cleanup);

function assert401(r, message) {
  assert.equal(r.status, 401, r.body);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.deepEqual(Object.keys(r.json.error), ['code', 'message', 'request_id']);
  assert.equal(r.json.error.code, 10003);
  assert.equal(r.json.error.message, message);
  assert.match(r.json.error.request_id, RE.requestId);
  assert.equal(r.json.error.request_id, r.headers['x-request-id']);
}

function assert404(r, id) {
  assert.equal(r.status, 404, r.body);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.deepEqual(Object.keys(r.json.error), ['code', 'message', 'request_id']);
  assert.equal(r.json.error.code, 20004);
  assert.equal(r.json.error.message, `task '${id}' not found`);
  assert.match(r.json.error.request_id, RE.requestId);
}

const MISSING = 'API key missing: send the header Authorization: Bearer <key>';
const INVALID = 'API key invalid';
const body = JSON.stringify({ model: MODEL, prompt: 'auth check' });

function post(headers) {
  const args = [`${srv.base}/api/v1/images/generations`];
  for (const h of headers) args.push('-H', h);
  args.push('--data-binary', '@-');
  return curl(args, { input: body });
}

test('401: no Authorization header (submit and poll)', async () => {
  assert401(await post([]), MISSING);
  assert401(await getTask(srv, doneTask.id, null), MISSING);
});

test('401: an empty bearer or another scheme counts as missing', async () => {
  assert401(await post(['Authorization: Bearer ']), MISSING);
  assert401(await post([`Authorization: Basic ${Buffer.from('a:b').toString('base64')}`]), MISSING);
  assert401(await post([`Authorization: ${srv.key}`]), MISSING);
});

test('401: "Bearer wrong"', async () => {
  assert401(await post(['Authorization: Bearer wrong']), INVALID);
  assert401(await getTask(srv, doneTask.id, 'wrong'), INVALID);
});

test('401: a well-formed-looking key with a bad checksum (last character changed)', async () => {
  const k = srv.key;
  const last = k.at(-1) === 'A' ? 'B' : 'A';
  const bad = k.slice(0, -1) + last;
  assert.match(bad, RE.key);
  assert401(await post([`Authorization: Bearer ${bad}`]), INVALID);
  assert401(await getTask(srv, doneTask.id, bad), INVALID);
});

test('401: a key that is one character short or long', async () => {
  assert401(await post([`Authorization: Bearer ${srv.key.slice(0, -1)}`]), INVALID);
  assert401(await post([`Authorization: Bearer ${srv.key}x`]), INVALID);
});

test('401: a valid key of another data directory', async () => {
  assert.match(foreignKey, RE.key);
  assert401(await post([`Authorization: Bearer ${foreignKey}`]), INVALID);
  assert401(await getTask(srv, doneTask.id, foreignKey), INVALID);
});

test('the scheme is case-insensitive and surrounding spaces are ignored', async () => {
  for (const h of [`authorization: bearer ${srv.key}`, `Authorization: BEARER ${srv.key}`,
    `Authorization: Bearer   ${srv.key}  `]) {
    const r = await post([h]);
    assert.equal(r.status, 200, `${h}: ${r.body}`);
  }
});

test('keys made by the CLI before and while the server runs both work', async () => {
  for (const k of [keyB, keyLate]) {
    const r = await post([`Authorization: Bearer ${k}`]);
    assert.equal(r.status, 200, r.body);
  }
});

test('poll of a finished task: exactly {id, model, status, created_at, output: {image_urls}, error: null}', async () => {
  const r = await getTask(srv, doneTask.id);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-request-id'], RE.requestId);
  assert.equal(r.headers['x-imagegate-offline'], 'true');
  const hex = doneTask.id.slice(5);
  assert.deepEqual(r.json, {
    id: doneTask.id,
    model: MODEL,
    status: 'completed',
    created_at: doneTask.created_at,
    output: { image_urls: [`${srv.base}/media/tasks/${hex}/0.png`, `${srv.base}/media/tasks/${hex}/1.png`] },
    error: null,
  });
  assert.deepEqual(Object.keys(r.json), ['id', 'model', 'status', 'created_at', 'output', 'error']);
});

test('poll while processing: {id, model, status: "processing", created_at, output: null, error: null}', async () => {
  const s = await submit(slow, { model: MODEL, prompt: 'slowly' });
  assert.equal(s.status, 200, s.body);
  const r = await getTask(slow, s.json.id);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, {
    id: s.json.id, model: MODEL, status: 'processing', created_at: s.json.created_at, output: null, error: null,
  });
  assert.deepEqual(Object.keys(r.json), ['id', 'model', 'status', 'created_at', 'output', 'error']);
  // ...and it does complete.
  const done = await poll(slow, s.json.id, slow.key, { timeoutMs: 20000 });
  assert.equal(done.json.status, 'completed');
  assert.equal(done.json.output.image_urls.length, 1);
});

test('poll: the id is accepted as task_<hex>, bare 32 hex and a dashed UUID', async () => {
  const hex = doneTask.id.slice(5);
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  for (const form of [doneTask.id, hex, uuid, `task_${uuid}`, hex.toUpperCase()]) {
    const r = await getTask(srv, form);
    assert.equal(r.status, 200, `${form}: ${r.body}`);
    assert.equal(r.json.id, doneTask.id, form);
    assert.equal(r.json.status, 'completed');
  }
});

test('poll: an unknown but well-formed id -> 404 code 20004', async () => {
  const id = 'task_0123456789abcdef0123456789abcdef';
  assert404(await getTask(srv, id), id);
  const hex = 'ffffffffffffffffffffffffffffffff';
  assert404(await getTask(srv, hex), hex);
});

test('poll: garbage ids -> 404', async () => {
  for (const id of ['nope', 'task_', 'task_xyz', 'task_0123456789abcdef0123456789abcde', // 31 hex
    'task_0123456789abcdef0123456789abcdef0', '0123456789abcdef0123456789abcdeg']) {
    assert404(await getTask(srv, id), id);
  }
});

test('poll: an overlong id -> 404 quoting at most 64 characters', async () => {
  const id = 'a'.repeat(300);
  const r = await getTask(srv, id);
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 20004);
  assert.equal(r.json.error.message, `task '${'a'.repeat(64)}' not found`);
});

test('poll: a task of key A polled with key B -> 404, the same answer as an unknown id', async () => {
  const r = await getTask(srv, doneTask.id, keyB);
  assert404(r, doneTask.id);
  // B's own task is B's alone.
  const s = await post([`Authorization: Bearer ${keyB}`]);
  assert.equal(s.status, 200);
  assert.equal((await getTask(srv, s.json.id, keyB)).status, 200);
  assert404(await getTask(srv, s.json.id, srv.key), s.json.id);
});

test('poll: a path with an extra segment is no task route -> generic 404', async () => {
  const r = await curl([`${srv.base}/api/v1/tasks/${doneTask.id}/extra`, ...auth(srv.key)]);
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 404);
  assert.equal(r.json.error.type, 'not_found');
});

test('poll: only GET; POST -> 405 with Allow: GET', async () => {
  const r = await curl(['-X', 'POST', `${srv.base}/api/v1/tasks/${doneTask.id}`, ...auth(srv.key)]);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'GET');
  assert.deepEqual(Object.keys(r.json.error), ['code', 'message', 'request_id']);
  assert.equal(r.json.error.code, 20003);
});

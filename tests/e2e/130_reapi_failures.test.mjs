// 130: tasks that fail: the provider fails (80003), references that 404, are not images,
// are too big, or sit at addresses the SSRF gate refuses (no connection may be opened).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, submit, poll, curl, RE } from './lib/harness.mjs';
import { startRefServer } from './lib/refserver.mjs';

const MODEL = 'gemini-2.5-flash-image-preview';
let failing;  // --offline-failure-rate 1
let fetching; // --fetch-allow-loopback, small --ref-max-bytes
let gated;    // default: loopback references refused
let ref;      // serves fetching
let untouched; // a reference server only `gated` is pointed at: must never see a connection

before(async () => {
  ref = await startRefServer();
  untouched = await startRefServer();
  [failing, fetching, gated] = await Promise.all([
    startServer({ args: ['--offline-failure-rate', '1'] }),
    startServer({ args: ['--fetch-allow-loopback', '--ref-max-bytes', String(2 * 1024 * 1024)] }),
    startServer(),
  ]);
});
after(async () => {
  await cleanup();
  await ref?.close();
  await untouched?.close();
});

/** Submit (must be accepted), poll to the end, check the failed envelope exactly. */
async function expectFailure(server, body, code, message) {
  const s = await submit(server, body);
  assert.equal(s.status, 200, s.body);
  const r = await poll(server, s.json.id, server.key, { timeoutMs: 40000 });
  assert.deepEqual(Object.keys(r.json), ['id', 'model', 'status', 'created_at', 'output', 'error']);
  assert.equal(r.json.id, s.json.id);
  assert.equal(r.json.model, body.model);
  assert.equal(r.json.created_at, s.json.created_at);
  assert.equal(r.json.status, 'failed', JSON.stringify(r.json));
  assert.equal(r.json.output, null);
  assert.deepEqual(Object.keys(r.json.error), ['code', 'message']);
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.message.length > 0);
  if (message instanceof RegExp) assert.match(r.json.error.message, message);
  else if (typeof message === 'string') assert.equal(r.json.error.message, message);
  return r.json;
}

test('--offline-failure-rate 1: the task fails with 80003 and a message; output null', async () => {
  const j = await expectFailure(failing, { model: MODEL, prompt: 'doomed' }, 80003, /injected failure/);
  // A failed task has no media.
  const m = await curl([`${failing.base}/media/tasks/${j.id.slice(5)}/0.png`]);
  assert.equal(m.status, 404);
});

test('--offline-failure-rate 1: every task fails, also with n=4 and on the official channel', async () => {
  await Promise.all([
    expectFailure(failing, { model: MODEL, prompt: 'four', n: 4 }, 80003),
    expectFailure(failing, { model: `${MODEL}-official`, prompt: 'official' }, 80003),
  ]);
});

test('a reference that answers 404 -> failed, 20003, message "image_urls[0]: ..."', async () => {
  await expectFailure(fetching, { model: MODEL, prompt: 'from a 404', image_urls: [ref.url('/404')] }, 20003,
    'image_urls[0]: reference answered HTTP 404');
});

test('the second reference failing names image_urls[1]', async () => {
  await expectFailure(fetching, { model: MODEL, prompt: 'one good one bad', image_urls: [ref.url('/a.png'), ref.url('/404')] },
    20003, /^image_urls\[1\]: /);
});

test('a reference that is HTML -> failed "image_urls[0]: not a PNG, JPEG, WebP, HEIF or AVIF image"', async () => {
  await expectFailure(fetching, { model: MODEL, prompt: 'from html', image_urls: [ref.url('/html')] }, 20003,
    'image_urls[0]: not a PNG, JPEG, WebP, HEIF or AVIF image');
});

test('a reference over --ref-max-bytes (announced or streamed) -> failed naming the limit', async () => {
  await Promise.all([
    expectFailure(fetching, { model: MODEL, prompt: 'huge', image_urls: [ref.url('/huge')] }, 20003,
      `image_urls[0]: reference exceeds ${2 * 1024 * 1024} bytes`),
    expectFailure(fetching, { model: MODEL, prompt: 'huge chunked', image_urls: [ref.url('/huge-chunked')] }, 20003,
      `image_urls[0]: reference exceeds ${2 * 1024 * 1024} bytes`),
  ]);
});

test('a reference on a port where nothing listens -> failed, could not connect', async () => {
  // A port that was just free: bind, note, close.
  const tmp = await startRefServer();
  const url = tmp.url('/a.png');
  await tmp.close();
  await expectFailure(fetching, { model: MODEL, prompt: 'nobody home', image_urls: [url] }, 20003,
    /^image_urls\[0\]: could not connect to host 127\.0\.0\.1$/);
});

test('SSRF: a loopback reference without --fetch-allow-loopback fails and opens no connection', async () => {
  await expectFailure(gated, { model: MODEL, prompt: 'loopback', image_urls: [untouched.url('/a.png')] }, 20003,
    'image_urls[0]: address 127.0.0.1 is loopback');
  await expectFailure(gated, { model: MODEL, prompt: 'localhost', image_urls: [`http://localhost:${untouched.port}/a.png`] },
    20003, /^image_urls\[0\]: address (127\.0\.0\.1|::1) is loopback$/);
  await expectFailure(gated, { model: MODEL, prompt: 'v6 loopback', image_urls: [`http://[::1]:${untouched.port}/a.png`] },
    20003, 'image_urls[0]: address ::1 is loopback');
  await expectFailure(gated, { model: MODEL, prompt: 'decimal', image_urls: [`http://2130706433:${untouched.port}/a.png`] },
    20003, 'image_urls[0]: address 127.0.0.1 is loopback');
  assert.equal(untouched.requests, 0, 'the reference server served no request');
  assert.equal(untouched.connections, 0, 'the reference server saw no connection');
});

test('SSRF: private, link-local and unspecified addresses are refused', async () => {
  await Promise.all([
    expectFailure(gated, { model: MODEL, prompt: 'metadata', image_urls: ['http://169.254.169.254/latest/meta-data'] },
      20003, 'image_urls[0]: address 169.254.169.254 is link-local'),
    expectFailure(gated, { model: MODEL, prompt: 'rfc1918', image_urls: ['http://10.0.0.1/x.png'] },
      20003, 'image_urls[0]: address 10.0.0.1 is private'),
    expectFailure(gated, { model: MODEL, prompt: 'zero', image_urls: [`http://0.0.0.0:${untouched.port}/a.png`] },
      20003, 'image_urls[0]: address 0.0.0.0 is unspecified'),
  ]);
  assert.equal(untouched.connections, 0);
});

test('the servers stay healthy after the failures', async () => {
  for (const s of [failing, fetching, gated]) {
    const r = await curl([`${s.base}/healthz`]);
    assert.equal(r.status, 200);
    assert.match(r.headers['x-request-id'], RE.requestId);
  }
});

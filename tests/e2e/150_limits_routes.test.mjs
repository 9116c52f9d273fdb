// 150: request limits (--max-body-bytes, --max-header-bytes), unknown routes and methods: every
// refusal is JSON, and the server stays healthy after each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, cleanup, curl, auth, submit, RE, t } from './lib/harness.mjs';

const MODEL = 'gemini-2.5-flash-image-preview';
const BODY_LIMIT = 2048;
const HEADER_LIMIT = 2048;
let srv;

before(async () => {
  srv = await startServer({
    args: ['--max-body-bytes', String(BODY_LIMIT), '--max-header-bytes', String(HEADER_LIMIT)],
  });
});
after(cleanup);

async function assertHealthy() {
  const r = await curl([`${srv.base}/healthz`]);
  assert.equal(r.status, 200, 'the server answers /healthz afterwards');
  assert.deepEqual(r.json, { status: 'ok', offline: true });
}

/** A too-large refusal: 413, JSON, the message names the limit. */
function assert413(r, limit) {
  assert.equal(r.status, 413, `expected 413, got ${r.status}: ${r.body}`);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-request-id'], RE.requestId);
  assert.deepEqual(Object.keys(r.json.error), ['code', 'type', 'message', 'request_id']);
  assert.equal(r.json.error.code, 413);
  assert.equal(r.json.error.type, 'too_large');
  assert.ok(r.json.error.message.includes(String(limit)), `message names ${limit}: ${r.json.error.message}`);
  assert.equal(r.json.error.request_id, r.headers['x-request-id']);
}

/** Raw bytes to the server; resolves with everything it answered before closing. */
function raw(bytes, timeoutMs = t(5000)) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const sock = net.connect(srv.port, '127.0.0.1', () => sock.end(bytes));
    const timer = setTimeout(() => { sock.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); }, timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (e) => { clearTimeout(timer); if (chunks.length) resolve(Buffer.concat(chunks).toString('latin1')); else reject(e); });
    sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
  });
}

function padded(total) {
  // A valid submit body of exactly `total` bytes.
  const head = JSON.stringify({ model: MODEL, prompt: 'padded', pad: '' });
  const body = head.replace('"pad":""', `"pad":"${'x'.repeat(total - head.length)}"`);
  assert.equal(Buffer.byteLength(body), total);
  return body;
}

test('a body larger than --max-body-bytes (4096 > 2048) -> 413 JSON naming the limit', async () => {
  const r = await submit(srv, 'a'.repeat(4096));
  assert413(r, BODY_LIMIT);
  await assertHealthy();
});

test('a body of exactly --max-body-bytes is accepted; one byte more is 413', async () => {
  const ok = await submit(srv, padded(BODY_LIMIT));
  assert.equal(ok.status, 200, ok.body);
  assert.match(ok.json.id, RE.taskId);
  const over = await submit(srv, padded(BODY_LIMIT + 1));
  assert413(over, BODY_LIMIT);
  await assertHealthy();
});

test('a chunked body over the limit -> 413 JSON', async () => {
  const r = await submit(srv, 'b'.repeat(8192), { extra: ['-H', 'Transfer-Encoding: chunked'] });
  assert413(r, BODY_LIMIT);
  await assertHealthy();
});

/** libevent 2.1 reports headers over its limit like a malformed request: 400, JSON, and the
 * message names the header limit (docs/operations.md, "Limits"). */
function assertHeaderRefusal(r) {
  assert.equal(r.status, 400, `expected 400, got ${r.status}: ${r.body}`);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(Object.keys(r.json.error), ['code', 'type', 'message', 'request_id']);
  assert.equal(r.json.error.code, 400);
  assert.equal(r.json.error.type, 'invalid_request');
  assert.ok(r.json.error.message.includes(String(HEADER_LIMIT)), r.json.error.message);
  assert.equal(r.json.error.request_id, r.headers['x-request-id']);
}

test('headers larger than --max-header-bytes -> 400 JSON naming the limit', async () => {
  const r = await curl([`${srv.base}/healthz`, '-H', `X-Big: ${'h'.repeat(4096)}`]);
  assertHeaderRefusal(r);
  await assertHealthy();
});

test('a request line longer than --max-header-bytes -> a well-formed 400 JSON reply', async () => {
  const reply = await raw(`GET /healthz?${'q'.repeat(4096)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  // A valid HTTP/1.x status line (curl refuses anything else), a JSON body naming the limit...
  assert.match(reply, /^HTTP\/1\.[01] \d{3} /, `status line: ${JSON.stringify(reply.slice(0, 40))}`);
  const head = reply.slice(0, reply.indexOf('\r\n\r\n'));
  assert.match(head, /\r\ncontent-type: application\/json\r\n/i);
  const j = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
  assert.ok(j.error.message.includes(String(HEADER_LIMIT)), j.error.message);
  assert.match(j.error.request_id, RE.requestId);
  // ...and the status libevent 2.1 gives it (it cannot tell it from a malformed request).
  assert.match(reply, /^HTTP\/1\.1 400 /, `status line: ${JSON.stringify(reply.slice(0, 40))}`);
  assert.equal(j.error.code, 400);
  await assertHealthy();
});

test('headers just under the limit are fine', async () => {
  const r = await curl([`${srv.base}/healthz`, '-H', `X-Pad: ${'p'.repeat(HEADER_LIMIT - 300)}`]);
  assert.equal(r.status, 200);
});

test('unknown route -> 404 JSON {error:{code:404,type:"not_found",message,param,request_id}}', async () => {
  for (const p of ['/', '/nope', '/api/v1/images', '/api/v2/images/generations', '/healthz/x']) {
    const r = await curl([`${srv.base}${p}`, ...auth(srv.key)]);
    assert.equal(r.status, 404, p);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(r.json, {
      error: { code: 404, type: 'not_found', message: `no route for ${p}`, param: 'path', request_id: r.headers['x-request-id'] },
    });
    assert.match(r.json.error.request_id, RE.requestId);
  }
  await assertHealthy();
});

test('a POST to an unknown route -> 404 JSON', async () => {
  const r = await curl([`${srv.base}/v1/images/generations`, ...auth(srv.key), '-d', '{}']);
  assert.equal(r.status, 404);
  assert.equal(r.json.error.type, 'not_found');
});

test('GET /api/v1/images/generations -> 405, Allow: POST, reAPI-shaped error', async () => {
  const r = await curl([`${srv.base}/api/v1/images/generations`, ...auth(srv.key)]);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'POST');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(r.json, {
    error: { code: 20003, message: '/api/v1/images/generations accepts POST only', request_id: r.headers['x-request-id'] },
  });
  await assertHealthy();
});

test('PUT/DELETE/PATCH on the submit route -> 405 Allow: POST', async () => {
  for (const m of ['PUT', 'DELETE', 'PATCH']) {
    const r = await curl(['-X', m, `${srv.base}/api/v1/images/generations`, ...auth(srv.key)]);
    assert.equal(r.status, 405, m);
    assert.equal(r.headers.allow, 'POST', m);
    assert.equal(r.json.error.code, 20003, m);
  }
});

test('DELETE /healthz -> 405 Allow: GET, HEAD in the generic shape', async () => {
  const r = await curl(['-X', 'DELETE', `${srv.base}/healthz`]);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'GET, HEAD');
  assert.deepEqual(r.json, {
    error: { code: 405, type: 'method_not_allowed', message: '/healthz accepts GET, HEAD only', param: 'method', request_id: r.headers['x-request-id'] },
  });
});

test('a method the server does not take at all (TRACE) -> a JSON error', async () => {
  const r = await curl(['-X', 'TRACE', `${srv.base}/healthz`]);
  assert.ok(r.status === 405 || r.status === 501, `status ${r.status}`);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.json.error.code, r.status);
  await assertHealthy();
});

test('a path with an encoded NUL -> 400 JSON', async () => {
  const r = await curl([`${srv.base}/healthz%00x`]);
  assert.equal(r.status, 400);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.json.error.message, 'the request path is malformed or too long');
  await assertHealthy();
});

test('a malformed request line -> 400 JSON', async () => {
  const reply = await raw('NONSENSE\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.[01] 400 /, JSON.stringify(reply.slice(0, 40)));
  const j = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
  assert.equal(j.error.code, 400);
  assert.match(j.error.request_id, RE.requestId);
  await assertHealthy();
});

test('percent-encoded route paths are decoded before routing', async () => {
  const r = await curl([`${srv.base}/health%7A`]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok', offline: true });
});

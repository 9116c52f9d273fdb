// 140: the result URLs: GET, HEAD, Range, If-None-Match, unknown paths.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, cleanup, submit, poll, curl, pngSize, RE } from './lib/harness.mjs';

const MODEL = 'gemini-2.5-flash-image-preview';
let srv;
let url;   // a result image URL
let hex;   // its task's hex id
let full;  // the full bytes

before(async () => {
  srv = await startServer();
  const s = await submit(srv, { model: MODEL, prompt: 'media tests', size: '21:9' });
  assert.equal(s.status, 200, s.body);
  const r = await poll(srv, s.json.id);
  assert.equal(r.json.status, 'completed');
  url = r.json.output.image_urls[0];
  hex = s.json.id.slice(5);
});
after(cleanup);

function assertImageHeaders(h, length) {
  assert.equal(h['content-type'], 'image/png');
  assert.equal(h['content-length'], String(length));
  assert.match(h.etag, RE.etag);
  assert.match(h['cache-control'], /(^|[ ,])max-age=\d+/);
  assert.match(h['cache-control'], /public/);
  assert.equal(h['accept-ranges'], 'bytes');
  assert.match(h['x-request-id'], RE.requestId);
  assert.equal(h['x-imagegate-offline'], 'true');
}

test('GET a result URL (no auth): 200, image/png, content-length = bytes, quoted sha-256 etag, max-age', async () => {
  const r = await curl([url]);
  assert.equal(r.status, 200);
  full = r.bodyBuf;
  assertImageHeaders(r.headers, full.length);
  assert.deepEqual(pngSize(full), { width: 1536, height: 672 });
  // The ETag is the SHA-256 of the content.
  const sha = crypto.createHash('sha256').update(full).digest('hex');
  assert.equal(r.headers.etag, `"${sha}"`);
  // Valid for the reAPI default of 7 days: max-age close to 604800.
  const maxAge = Number(/max-age=(\d+)/.exec(r.headers['cache-control'])[1]);
  assert.ok(maxAge > 604800 - 120 && maxAge <= 604800, `max-age ${maxAge}`);
});

test('the same URL gives the same bytes every time', async () => {
  const r = await curl([url]);
  assert.ok(r.bodyBuf.equals(full));
});

test('HEAD: the same headers, no body', async () => {
  const g = await curl([url]);
  const h = await curl(['-I', url]);
  assert.equal(h.status, 200);
  assertImageHeaders(h.headers, full.length);
  assert.equal(h.headers.etag, g.headers.etag);
  assert.equal(h.bodyBuf.length, 0);
});

test('Range bytes=0-9 -> 206, content-range "bytes 0-9/<size>", 10 bytes', async () => {
  const r = await curl(['-H', 'Range: bytes=0-9', url]);
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes 0-9/${full.length}`);
  assert.equal(r.headers['content-length'], '10');
  assert.equal(r.bodyBuf.length, 10);
  assert.ok(r.bodyBuf.equals(full.subarray(0, 10)));
  assert.equal(r.headers['content-type'], 'image/png');
  assert.match(r.headers.etag, RE.etag);
});

test('Range: an open end, a suffix, and an end past the size are clamped', async () => {
  const size = full.length;
  let r = await curl(['-H', `Range: bytes=${size - 5}-`, url]);
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes ${size - 5}-${size - 1}/${size}`);
  assert.ok(r.bodyBuf.equals(full.subarray(size - 5)));
  r = await curl(['-H', 'Range: bytes=-7', url]);
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes ${size - 7}-${size - 1}/${size}`);
  assert.ok(r.bodyBuf.equals(full.subarray(size - 7)));
  r = await curl(['-H', `Range: bytes=100-${size + 1000}`, url]);
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes 100-${size - 1}/${size}`);
  assert.equal(r.bodyBuf.length, size - 100);
});

test('Range bytes=<size>- -> 416 with content-range "bytes */<size>" and a JSON error', async () => {
  const r = await curl(['-H', `Range: bytes=${full.length}-`, url]);
  assert.equal(r.status, 416);
  assert.equal(r.headers['content-range'], `bytes */${full.length}`);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.json.error.code, 416);
  assert.match(r.json.error.message, new RegExp(`${full.length}`));
  assert.match(r.json.error.request_id, RE.requestId);
});

test('Range: multiple ranges or another unit -> the whole image, 200', async () => {
  for (const h of ['Range: bytes=0-1,5-6', 'Range: items=0-1', 'Range: bytes=9-2']) {
    const r = await curl(['-H', h, url]);
    assert.equal(r.status, 200, h);
    assert.equal(r.bodyBuf.length, full.length, h);
  }
});

test('If-None-Match with the etag -> 304, no body; another etag -> 200', async () => {
  const g = await curl(['-I', url]);
  const r = await curl(['-H', `If-None-Match: ${g.headers.etag}`, url]);
  assert.equal(r.status, 304);
  assert.equal(r.bodyBuf.length, 0);
  assert.equal(r.headers.etag, g.headers.etag);
  const star = await curl(['-H', 'If-None-Match: *', url]);
  assert.equal(star.status, 304);
  const other = await curl(['-H', `If-None-Match: "${'0'.repeat(64)}"`, url]);
  assert.equal(other.status, 200);
  assert.equal(other.bodyBuf.length, full.length);
});

test('unknown media paths -> 404 JSON', async () => {
  const paths = [
    `/media/tasks/${hex}/1.png`,           // index past the outputs
    `/media/tasks/${hex}/0.jpg`,           // wrong extension
    `/media/tasks/${'f'.repeat(32)}/0.png`, // unknown task
    `/media/tasks/${hex}/-1.png`,
    `/media/tasks/${hex}/0.png/extra`,
    `/media/tasks/${hex}`,
    '/media/tasks/nothing',
    `/media/tasks/${hex.toUpperCase()}/0.png`,
  ];
  for (const p of paths) {
    const r = await curl([`${srv.base}${p}`]);
    assert.equal(r.status, 404, `${p}: ${r.body}`);
    assert.equal(r.headers['content-type'], 'application/json', p);
    assert.deepEqual(r.json, {
      error: { code: 404, type: 'not_found', message: 'no such media', param: 'path', request_id: r.headers['x-request-id'] },
    }, p);
  }
});

test('media accepts GET and HEAD only: POST -> 405 Allow: GET, HEAD', async () => {
  const r = await curl(['-X', 'POST', url]);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'GET, HEAD');
  assert.equal(r.json.error.code, 405);
});

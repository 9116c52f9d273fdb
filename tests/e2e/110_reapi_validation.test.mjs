// 110: reAPI submit validation (seed 000), every rule at its edges: 400 with exactly
// {"error":{"code":20003,"message":<names the field>,"request_id":"req_..."}}.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, submit, curl, auth, RE } from './lib/harness.mjs';
import { startRefServer } from './lib/refserver.mjs';

const MODEL = 'gemini-2.5-flash-image-preview';
let srv;
let ref;

before(async () => {
  ref = await startRefServer();
  srv = await startServer({ args: ['--fetch-allow-loopback'] });
});
after(async () => {
  await cleanup();
  await ref?.close();
});

/** A 400 in the reAPI shape whose message passes `msg` (RegExp, exact string or fn). */
function assert400(r, msg) {
  assert.equal(r.status, 400, `expected 400, got ${r.status}: ${r.body}`);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-request-id'], RE.requestId);
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.deepEqual(Object.keys(r.json.error), ['code', 'message', 'request_id']);
  assert.equal(r.json.error.code, 20003);
  assert.equal(typeof r.json.error.message, 'string');
  if (msg instanceof RegExp) assert.match(r.json.error.message, msg);
  else if (typeof msg === 'string') assert.equal(r.json.error.message, msg);
  assert.match(r.json.error.request_id, RE.requestId);
  assert.equal(r.json.error.request_id, r.headers['x-request-id']);
  assert.equal(r.headers['x-imagegate-offline'], undefined);
}

function assertAccepted(r, model = MODEL) {
  assert.equal(r.status, 200, r.body);
  assert.match(r.json.id, RE.taskId);
  assert.equal(r.json.model, model);
  assert.equal(r.json.status, 'processing');
}

const base = (extra) => ({ model: MODEL, prompt: 'a red fox in snow', ...extra });

test('prompt: missing -> 400 naming prompt', async () => {
  assert400(await submit(srv, { model: MODEL }), 'prompt is required');
  assert400(await submit(srv, { model: MODEL, prompt: null }), 'prompt is required');
});

test('prompt: "" -> 400', async () => {
  assert400(await submit(srv, base({ prompt: '' })), /^prompt must be 1 to 1000 characters, got 0$/);
});

test('prompt: not a string -> 400', async () => {
  assert400(await submit(srv, base({ prompt: 42 })), /prompt must be a string/);
  assert400(await submit(srv, base({ prompt: ['a'] })), /prompt must be a string/);
});

test('prompt: counts characters, not bytes: 1000 × "月" (3000 bytes) OK, 1001 -> 400', async () => {
  const p1000 = '月'.repeat(1000);
  assert.equal(Buffer.byteLength(p1000), 3000);
  assertAccepted(await submit(srv, base({ prompt: p1000 })));
  assert400(await submit(srv, base({ prompt: '月'.repeat(1001) })), /^prompt must be 1 to 1000 characters, got 1001$/);
});

test('prompt: 1 ASCII character OK; 1000 OK, 1001 -> 400', async () => {
  assertAccepted(await submit(srv, base({ prompt: 'x' })));
  assertAccepted(await submit(srv, base({ prompt: 'a'.repeat(1000) })));
  assert400(await submit(srv, base({ prompt: 'a'.repeat(1001) })), /^prompt must be 1 to 1000 characters, got 1001$/);
});

test('prompt: invalid UTF-8 -> 400', async () => {
  const body = Buffer.concat([
    Buffer.from(`{"model":"${MODEL}","prompt":"bad `), Buffer.from([0xff, 0xfe]), Buffer.from('"}'),
  ]);
  const r = await submit(srv, body);
  assert400(r, /prompt|JSON/);
});

test('size: "1:3" and 16 (a number) -> 400 naming size', async () => {
  const list = 'size must be one of 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9';
  assert400(await submit(srv, base({ size: '1:3' })), list);
  assert400(await submit(srv, base({ size: 16 })), list);
  assert400(await submit(srv, base({ size: '16x9' })), list);
  assert400(await submit(srv, base({ size: '' })), list);
});

test('resolution: "2K" and "4K" on 2.5 -> 400 with the exact message; "1K" OK', async () => {
  const msg = 'gemini-2.5-flash-image-preview: only resolution=1K is supported';
  assert400(await submit(srv, base({ resolution: '2K' })), msg);
  assert400(await submit(srv, base({ resolution: '4K' })), msg);
  assert400(await submit(srv, base({ resolution: 1 })), msg);
  assertAccepted(await submit(srv, base({ resolution: '1K' })));
});

test('resolution: a bad value on 3-pro lists the ones it has', async () => {
  assert400(await submit(srv, base({ model: 'gemini-3-pro-image-preview', resolution: '8K' })),
    'gemini-3-pro-image-preview: resolution must be one of 1K, 2K, 4K');
});

test('n: 0, 5, 1.5, -1 -> 400; "2" (a string) -> 400 saying string; 1 and 4 OK', async () => {
  for (const n of [0, 5, 1.5, -1, 100])
    assert400(await submit(srv, base({ n })), 'n must be a whole number from 1 to 4');
  const s = await submit(srv, base({ n: '2' }));
  assert400(s, /^n must be a number, not a string$/);
  assert400(await submit(srv, base({ n: true })), /^n must be a number/);
  assertAccepted(await submit(srv, base({ n: 1 })));
  assertAccepted(await submit(srv, base({ n: 4 })));
});

test('image_urls: 14 accepted, 15 -> 400', async () => {
  const urls = (k) => Array.from({ length: k }, (_, i) => ref.url(`/img/${i}.png`));
  assertAccepted(await submit(srv, base({ image_urls: urls(14) })));
  assert400(await submit(srv, base({ image_urls: urls(15) })), 'image_urls may hold at most 14 URLs, got 15');
});

test('image_urls: an empty array is text-to-image', async () => {
  assertAccepted(await submit(srv, base({ image_urls: [] })));
});

test('image_urls: a string instead of an array -> 400', async () => {
  assert400(await submit(srv, base({ image_urls: ref.url('/a.png') })), 'image_urls must be an array of URLs');
});

test('image_urls: [123] -> 400', async () => {
  assert400(await submit(srv, base({ image_urls: [123] })), 'image_urls[0] must be a string');
  assert400(await submit(srv, base({ image_urls: [ref.url('/a.png'), null] })), 'image_urls[1] must be a string');
});

test('image_urls: data: URI / base64 -> 400', async () => {
  assert400(await submit(srv, base({ image_urls: ['data:image/png;base64,iVBORw0KGgo='] })),
    /^image_urls\[0\] must be a public http\(s\) URL; data: URIs and base64 are not accepted/);
  assert400(await submit(srv, base({ image_urls: ['DATA:image/png;base64,iVBORw0KGgo='] })), /^image_urls\[0\]/);
  assert400(await submit(srv, base({ image_urls: ['iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'] })),
    /^image_urls\[0\] must be a public http\(s\) URL/);
});

test('image_urls: ftp://x -> 400', async () => {
  assert400(await submit(srv, base({ image_urls: ['ftp://x/a.png'] })), /^image_urls\[0\]/);
  assert400(await submit(srv, base({ image_urls: ['ftp://x'] })), /^image_urls\[0\]/);
  assert400(await submit(srv, base({ image_urls: ['httpx://example.com/a.png'] })), 'image_urls[0]: url scheme must be http or https');
  assert400(await submit(srv, base({ image_urls: ['http://'] })), /^image_urls\[0\]: url/);
});

test('image_urls: a user name or password in the URL -> 400', async () => {
  assert400(await submit(srv, base({ image_urls: ['http://user:pw@host/x.png'] })),
    'image_urls[0]: url must not contain a user name or password');
  assert400(await submit(srv, base({ image_urls: [ref.url('/a.png'), 'https://user@example.com/x.png'] })),
    'image_urls[1]: url must not contain a user name or password');
});

test('image_urls: a URL over 4096 bytes -> 400', async () => {
  const long = `http://example.com/${'a'.repeat(4100)}.png`;
  assert400(await submit(srv, base({ image_urls: [long] })), 'image_urls[0] is longer than 4096 bytes');
});

test('image_urls without a prompt -> 400 naming prompt', async () => {
  assert400(await submit(srv, { model: MODEL, image_urls: [ref.url('/a.png')] }),
    /^prompt is required: image-to-image \(image_urls\) needs a prompt/);
});

test('model: unknown, missing or not a string -> 400 naming model', async () => {
  assert400(await submit(srv, { model: 'dall-e-3', prompt: 'x' }), /^model 'dall-e-3' is not available; use gemini-2\.5-flash-image-preview/);
  assert400(await submit(srv, { prompt: 'x' }), 'model is required');
  assert400(await submit(srv, { model: 7, prompt: 'x' }), 'model must be a string');
  assert400(await submit(srv, { model: 'Gemini-2.5-Flash-Image-Preview', prompt: 'x' }), /^model 'Gemini-2\.5-Flash-Image-Preview' is not available/);
});

test('model: the first error wins over later ones (model before prompt)', async () => {
  assert400(await submit(srv, { model: 'nope', prompt: '' }), /^model 'nope' is not available/);
});

test('body: invalid JSON, a JSON array, a JSON string, an empty body -> 400', async () => {
  assert400(await submit(srv, '{"model": "gemini-2.5-flash-image-preview", "prompt": '), 'the request body is not valid JSON');
  assert400(await submit(srv, [{ model: MODEL, prompt: 'x' }]), 'the request body must be a JSON object');
  assert400(await submit(srv, '"just a string"'), 'the request body must be a JSON object');
  assert400(await submit(srv, ''), 'the request body is not valid JSON');
});

test('body: a valid object followed by more data is not valid JSON -> 400', async () => {
  // RFC 8259: a JSON text is one value; "{...} trailing" and "{...}{...}" are not JSON.
  assert400(await submit(srv, JSON.stringify(base({})) + ' trailing'), 'the request body is not valid JSON');
  assert400(await submit(srv, JSON.stringify(base({})) + JSON.stringify(base({}))), 'the request body is not valid JSON');
});

test('body: whitespace around the object is fine', async () => {
  assertAccepted(await submit(srv, `\n  ${JSON.stringify(base({}))}  \r\n`));
});

test('body: the Content-Type header does not matter (the page sends none)', async () => {
  const body = JSON.stringify(base({}));
  assertAccepted(await submit(srv, body, { contentType: null }));
  assertAccepted(await submit(srv, body, { contentType: 'text/plain' }));
});

test('unknown fields are ignored', async () => {
  assertAccepted(await submit(srv, base({ style: 'vivid', quality: 'hd' })));
});

test('an invalid request needs a valid key first: no key -> 401, not 400', async () => {
  const r = await curl([`${srv.base}/api/v1/images/generations`, '--data-binary', '@-'], { input: 'not json' });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, 10003);
});

test('the server stays healthy after all of this', async () => {
  const r = await curl([`${srv.base}/healthz`]);
  assert.equal(r.status, 200);
  // And it still takes a good request with the key.
  assertAccepted(await curl([`${srv.base}/api/v1/images/generations`, ...auth(srv.key), '-d', JSON.stringify(base({}))]));
});

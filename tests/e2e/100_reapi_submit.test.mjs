// 100: reAPI submit (seed 000): the success envelope, the page's six use cases sent the way
// the page sends them, every ratio's output size, and the other models' sizes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, curl, submit, poll, download, pngSize, auth, RE, pmap,
} from './lib/harness.mjs';
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

function assertSubmitted(r, model, startedS) {
  assert.equal(r.status, 200, r.body);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-request-id'], RE.requestId);
  assert.deepEqual(Object.keys(r.json).sort(), ['created_at', 'id', 'model', 'status']);
  assert.match(r.json.id, RE.taskId);
  assert.equal(r.json.model, model);
  assert.equal(r.json.status, 'processing');
  assert.ok(Number.isInteger(r.json.created_at), 'created_at is whole seconds');
  const now = Date.now() / 1000;
  assert.ok(Math.abs(r.json.created_at - now) <= 5, `created_at ${r.json.created_at} vs now ${now}`);
  if (startedS !== undefined) assert.ok(r.json.created_at >= Math.floor(startedS) - 1);
}

/** Poll to completion and check the finished envelope exactly; returns the image URLs. */
async function assertCompleted(id, model, n, createdAt) {
  const r = await poll(srv, id);
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.json).sort(), ['created_at', 'error', 'id', 'model', 'output', 'status']);
  assert.equal(r.json.status, 'completed', JSON.stringify(r.json));
  assert.equal(r.json.id, id);
  assert.equal(r.json.model, model);
  if (createdAt !== undefined) assert.equal(r.json.created_at, createdAt);
  assert.equal(r.json.error, null);
  assert.deepEqual(Object.keys(r.json.output), ['image_urls']);
  const urls = r.json.output.image_urls;
  assert.equal(urls.length, n);
  const hex = id.slice(5);
  urls.forEach((u, i) => assert.equal(u, `${srv.base}/media/tasks/${hex}/${i}.png`));
  return urls;
}

/** Download (no auth) and return the PNG sizes and bytes. */
async function fetchImages(urls) {
  return Promise.all(urls.map(async (u) => {
    const r = await download(u);
    assert.equal(r.status, 200, `${u}: ${r.body.slice(0, 200)}`);
    assert.equal(r.headers['content-type'], 'image/png');
    return { ...pngSize(r.bodyBuf), bytes: r.bodyBuf };
  }));
}

test('submit success: exactly {id, model, status: processing, created_at}', async () => {
  const started = Date.now() / 1000;
  const r = await submit(srv, { model: MODEL, prompt: 'moonlight on a bamboo path, ink wash painting', size: '16:9' });
  assertSubmitted(r, MODEL, started);
  assert.match(r.body, /^\{"id":"task_[0-9a-f]{32}","model":"gemini-2\.5-flash-image-preview","status":"processing","created_at":\d+\}$/);
  await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
});

test('task ids are distinct across submits', async () => {
  const rs = await Promise.all([1, 2, 3, 4].map(() => submit(srv, { model: MODEL, prompt: 'same prompt' })));
  const ids = new Set(rs.map((r) => r.json.id));
  assert.equal(ids.size, 4);
});

// The page's use cases, sent like the page: curl -H "Authorization: ..." -d '...' (no
// Content-Type header of our own: curl then says application/x-www-form-urlencoded).
function pageCurl(body) {
  return curl([`${srv.base}/api/v1/images/generations`, ...auth(srv.key), '-d', body]);
}

test('use case 1: text-to-image (minimal) -> one 1:1 image, 1024x1024', async () => {
  const r = await pageCurl(`{
"model": "gemini-2.5-flash-image-preview",
"prompt": "moonlight on a bamboo path, ink wash painting"
}`);
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1024, 1024]);
});

test('use case 2: text-to-image, widescreen -> 16:9, 1344x768', async () => {
  const r = await pageCurl(`{
"model": "gemini-2.5-flash-image-preview",
"prompt": "a corgi astronaut on the moon, cinematic",
"size": "16:9"
}`);
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1344, 768]);
});

test('use case 3: four variations -> 4 distinct 896x1152 images', async () => {
  const r = await pageCurl(`{
"model": "gemini-2.5-flash-image-preview",
"prompt": "vintage botanical illustration, hibiscus",
"size": "4:5",
"n": 4
}`);
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 4, r.json.created_at);
  assert.equal(new Set(urls).size, 4);
  const imgs = await fetchImages(urls);
  for (const img of imgs) assert.deepEqual([img.width, img.height], [896, 1152]);
  const distinct = new Set(imgs.map((i) => i.bytes.toString('base64')));
  assert.equal(distinct.size, 4, 'the four images differ');
});

test('use case 4: image-to-image, one reference 640x480 without size -> inherits 4:3, 1184x864', async () => {
  const r = await pageCurl(`{
"model": "gemini-2.5-flash-image-preview",
"prompt": "turn this photo into a watercolor painting",
"image_urls": ["${ref.url('/a.png')}"]
}`);
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1184, 864]);
});

test('use case 5: multi-reference fusion with size 4:3 -> 1184x864', async () => {
  const r = await pageCurl(`{
"model": "gemini-2.5-flash-image-preview",
"prompt": "blend these two photos into a poster",
"size": "4:3",
"image_urls": [
"${ref.url('/b.png')}",
"${ref.url('/a.png')}"
]
}`);
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1184, 864]);
});

test('use case 6: the official channel -> model echoed as sent, 1024x1024', async () => {
  const official = 'gemini-2.5-flash-image-preview-official';
  const r = await pageCurl(`{
"model": "gemini-2.5-flash-image-preview-official",
"prompt": "studio portrait of a tabby cat, soft light",
"size": "1:1"
}`);
  assertSubmitted(r, official);
  const urls = await assertCompleted(r.json.id, official, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1024, 1024]);
});

test('image-to-image: a 300x600 (1:2) reference without size -> the nearest ratio 9:16, 768x1344', async () => {
  const r = await submit(srv, { model: MODEL, prompt: 'make it a poster', image_urls: [ref.url('/b.png')] });
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [768, 1344]);
});

test('image-to-image: the first reference decides the inherited ratio', async () => {
  const r = await submit(srv, {
    model: MODEL, prompt: 'fuse', image_urls: [ref.url('/a.png'), ref.url('/b.png')],
  });
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1184, 864]);
});

test('image-to-image: a reference behind a redirect is followed', async () => {
  const r = await submit(srv, { model: MODEL, prompt: 'watercolor', image_urls: [ref.url('/redirect')] });
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1, r.json.created_at);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1184, 864]);
});

const RATIOS_25 = {
  '1:1': [1024, 1024], '2:3': [832, 1248], '3:2': [1248, 832], '3:4': [864, 1184],
  '4:3': [1184, 864], '4:5': [896, 1152], '5:4': [1152, 896], '9:16': [768, 1344],
  '16:9': [1344, 768], '21:9': [1536, 672],
};

test('gemini-2.5-flash-image: all 10 ratios give the documented sizes', async () => {
  const entries = Object.entries(RATIOS_25);
  const subs = await Promise.all(entries.map(([size]) =>
    submit(srv, { model: MODEL, prompt: `ratio ${size}`, size })));
  subs.forEach((r) => assertSubmitted(r, MODEL));
  await pmap(entries, 4, async ([size, want], i) => {
    const urls = await assertCompleted(subs[i].json.id, MODEL, 1);
    const [img] = await fetchImages(urls);
    assert.deepEqual([img.width, img.height], want, `size ${size}`);
  });
});

test('resolution "1K" is accepted on gemini-2.5 (the only one)', async () => {
  const r = await submit(srv, { model: MODEL, prompt: 'explicit 1K', resolution: '1K', size: '3:2' });
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1248, 832]);
});

test('gemini-3-pro-image-preview: resolution 2K, size 16:9 -> 2752x1536', async () => {
  const model = 'gemini-3-pro-image-preview';
  const r = await submit(srv, { model, prompt: 'a 2K widescreen', resolution: '2K', size: '16:9' });
  assertSubmitted(r, model);
  const urls = await assertCompleted(r.json.id, model, 1);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [2752, 1536]);
});

test('gemini-3.1-flash-image-preview accepts size 4:1 (1K: 2048x512); gemini-2.5 rejects it', async () => {
  const model = 'gemini-3.1-flash-image-preview';
  const r = await submit(srv, { model, prompt: 'a panorama', size: '4:1' });
  assertSubmitted(r, model);
  const urls = await assertCompleted(r.json.id, model, 1);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [2048, 512]);

  const bad = await submit(srv, { model: MODEL, prompt: 'a panorama', size: '4:1' });
  assert.equal(bad.status, 400);
  assert.deepEqual(Object.keys(bad.json.error), ['code', 'message', 'request_id']);
  assert.equal(bad.json.error.code, 20003);
  assert.equal(bad.json.error.message, 'size must be one of 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9');
});

test('null optional fields count as absent', async () => {
  const r = await submit(srv, { model: MODEL, prompt: 'nulls', size: null, resolution: null, n: null, image_urls: null });
  assertSubmitted(r, MODEL);
  const urls = await assertCompleted(r.json.id, MODEL, 1);
  const [img] = await fetchImages(urls);
  assert.deepEqual([img.width, img.height], [1024, 1024]);
});

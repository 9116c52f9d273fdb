// 300: a Gemini channel from the config file (and from GEMINI_API_KEY / GEMINI_BASE_URL): the
// exact upstream request, the fake's PNG bytes served back, n, references, several images in
// one reply, retries of 503 and 429, the -official pin, and models no channel serves staying
// offline (and marked).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, submit, poll, download, curl } from './lib/harness.mjs';
import { startRefServer, PNG_640x480, PNG_300x600 } from './lib/refserver.mjs';
import { startFakeGemini, promptOf } from './lib/fakegemini.mjs';
import {
  MODEL, OFFICIAL, CATALOG_ID, fastRouter, geminiChannel, writeConfig, sha256, uniquePrompt,
  expectCompleted, assertGeminiRequest, run,
} from './lib/upstream.mjs';

let fake;  // gem-a's upstream
let ref;   // reference images
let srv;   // one channel gem-a (2.5 only), loopback references allowed

before(async () => {
  [fake, ref] = await Promise.all([startFakeGemini(), startRefServer()]);
  const cfg = writeConfig([geminiChannel('gem-a', fake)]);
  srv = await startServer({ args: ['--config', cfg, '--fetch-allow-loopback', ...fastRouter()] });
});
after(async () => {
  await cleanup();
  await fake?.close();
  await ref?.close();
});

/** The fake's reply images of the requests with this prompt, as sha256s, in arrival order. */
function sentShas(prompt) {
  return fake.callsFor(prompt).flatMap((r) => (r.reply?.images ?? []).map(sha256));
}

test('the server does not claim OFFLINE MODE for a model a channel serves', () => {
  const err = srv.stderr();
  assert.doesNotMatch(err, /no upstream channel is configured/);
  for (const line of err.split('\n').filter((l) => /offline mode/i.test(l)))
    assert.ok(!line.includes(CATALOG_ID), `an OFFLINE MODE line names the served model: ${line}`);
  assert.ok(!err.includes('test-key-a'), 'the channel key is never logged');
});

test('text-to-image: one exact upstream request; the image URL serves the fake\'s PNG bytes', async () => {
  const prompt = uniquePrompt('a corgi astronaut on the moon, cinematic');
  const { task, images } = await expectCompleted(srv, { model: MODEL, prompt, size: '16:9' });
  assert.equal(task.model, MODEL);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGeminiRequest(calls[0], { prompt, ratio: '16:9' });
  assert.equal(sha256(images[0]), sha256(calls[0].reply.images[0]), 'the stored image is the upstream bytes, unchanged');
});

test('no size: aspectRatio 1:1 is sent (reAPI\'s default)', async () => {
  const prompt = uniquePrompt('vintage botanical illustration, hibiscus');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt });
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGeminiRequest(calls[0], { prompt, ratio: '1:1' });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('n=2: two upstream requests, two images, each the bytes one request returned', async () => {
  const prompt = uniquePrompt('two variations [[ok]]');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, size: '4:5', n: 2 }, 2);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 2);
  for (const c of calls) assertGeminiRequest(c, { prompt, ratio: '4:5' });
  assert.deepEqual(images.map(sha256).sort(), sentShas(prompt).sort());
});

test('image_urls: each reference goes up as inlineData with its exact bytes, in order; the ratio is inherited', async () => {
  const prompt = uniquePrompt('blend these two photos into a poster');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, image_urls: [ref.url('/a.png'), ref.url('/b.png')] });
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  // The first reference is 640x480: 4:3.
  assertGeminiRequest(calls[0], { prompt, ratio: '4:3', refs: [PNG_640x480, PNG_300x600] });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('image_urls with size: the given ratio wins over the reference\'s', async () => {
  const prompt = uniquePrompt('turn this photo into a watercolor painting');
  await expectCompleted(srv, { model: MODEL, prompt, size: '9:16', image_urls: [ref.url('/a.png')] });
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGeminiRequest(calls[0], { prompt, ratio: '9:16', refs: [PNG_640x480] });
});

test('two images in one reply: both kept, in order', async () => {
  const prompt = uniquePrompt('a pair [[two-images]]');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, size: '1:1' }, 2);
  assert.equal(fake.callsFor(prompt).length, 1);
  assert.deepEqual(images.map(sha256), sentShas(prompt));
  assert.notEqual(sha256(images[0]), sha256(images[1]));
});

test('503 twice, then success: completed after exactly 3 upstream calls', async () => {
  const prompt = uniquePrompt('overloaded twice [[503x2]]');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, size: '3:2' });
  const calls = fake.callsFor(prompt);
  assert.deepEqual(calls.map((c) => c.reply.status), [503, 503, 200]);
  for (const c of calls) assertGeminiRequest(c, { prompt, ratio: '3:2' });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('n=2 where one of the two calls gets a 503: that call is retried; 2 images', async () => {
  const prompt = uniquePrompt('one of two overloaded [[503x1]]');
  const { images, task } = await expectCompleted(srv, { model: MODEL, prompt, n: 2 }, 2);
  const calls = fake.callsFor(prompt);
  assert.deepEqual(calls.map((c) => c.reply.status).sort(), [200, 200, 503], JSON.stringify(task));
  assert.deepEqual(images.map(sha256).sort(), sentShas(prompt).sort());
});

test('429 with Retry-After: 1: completed; the retry came no sooner than ~1 s later', async () => {
  const prompt = uniquePrompt('quota [[429-retry-after-1]]');
  await expectCompleted(srv, { model: MODEL, prompt });
  const calls = fake.callsFor(prompt);
  assert.deepEqual(calls.map((c) => c.reply.status), [429, 200]);
  // From when the fake sent the 429 to when the retry arrived.
  const gap = calls[1].at - calls[0].reply.at;
  assert.ok(gap >= 980, `the retry came ${gap} ms after the 429 (Retry-After: 1)`);
});

test('a model no channel serves still goes offline, and is marked', async () => {
  const before = fake.requests.length;
  const s = await submit(srv, { model: 'gemini-3-pro-image-preview', prompt: uniquePrompt('not mapped') });
  assert.equal(s.status, 200, s.body);
  assert.equal(s.headers['x-imagegate-offline'], 'true', 'the submit says offline');
  const r = await poll(srv, s.json.id);
  assert.equal(r.json.status, 'completed', JSON.stringify(r.json));
  assert.equal(r.headers['x-imagegate-offline'], 'true', 'the poll says offline');
  const img = await download(r.json.output.image_urls[0]);
  assert.equal(img.status, 200);
  assert.equal(img.headers['x-imagegate-offline'], 'true', 'the image says offline');
  assert.equal(fake.requests.length, before, 'the fake was not asked');
});

test('-official pins the official channel; the plain name follows priority', async (t) => {
  const [fa, fb] = await Promise.all([startFakeGemini(), startFakeGemini()]);
  t.after(() => Promise.all([fa.close(), fb.close()]));
  const cfg = writeConfig([
    geminiChannel('gem-a', fa, { priority: 10, official: false }),
    geminiChannel('gem-b', fb, { priority: 5, official: true }),
  ]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  for (let i = 0; i < 3; i++) {
    const po = uniquePrompt(`official ${i}`);
    const pp = uniquePrompt(`plain ${i}`);
    await Promise.all([
      expectCompleted(s, { model: OFFICIAL, prompt: po }),
      expectCompleted(s, { model: MODEL, prompt: pp }),
    ]);
    assert.equal(fb.callsFor(po).length, 1, 'official -> gem-b');
    assert.equal(fa.callsFor(po).length, 0, 'official never -> gem-a (not official)');
    assert.equal(fa.callsFor(pp).length, 1, 'plain -> gem-a (higher priority)');
    assert.equal(fb.callsFor(pp).length, 0);
    assertGeminiRequest(fb.callsFor(po)[0], { prompt: po, key: 'test-key-b' });
    assertGeminiRequest(fa.callsFor(pp)[0], { prompt: pp, key: 'test-key-a' });
  }
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('a channel with several keys uses them in turn; "models" names the upstream model', async (t) => {
  const fk = await startFakeGemini();
  t.after(() => fk.close());
  const cfg = writeConfig([geminiChannel('gem-k', fk, {
    keys: ['key-one', 'key-two'], models: { [CATALOG_ID]: 'gemini-2.5-flash-image-preview' },
  })]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  for (let i = 0; i < 4; i++) await expectCompleted(s, { model: MODEL, prompt: uniquePrompt(`keys ${i}`) });
  assert.ok(fk.requests.every((r) => r.path === '/v1beta/models/gemini-2.5-flash-image-preview:generateContent'),
    fk.requests.map((r) => r.path).join(' '));
  const used = fk.requests.map((r) => r.headers['x-goog-api-key']);
  assert.equal(used.length, 4);
  assert.deepEqual(used.filter((k) => k === 'key-one').length, 2, used.join(','));
  assert.deepEqual(used.filter((k) => k === 'key-two').length, 2, used.join(','));
  assert.ok(!/key-one|key-two/.test(s.stderr()), 'keys are never logged');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('-official with no official channel for the model fails (80001); it is never sent to a non-official one', async (t) => {
  const fo = await startFakeGemini();
  t.after(() => fo.close());
  const cfg = writeConfig([geminiChannel('gem-a', fo, { official: false })]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  const { task } = await run(s, { model: OFFICIAL, prompt: uniquePrompt('official, but none is') });
  assert.equal(task.status, 'failed', JSON.stringify(task));
  assert.equal(task.error.code, 80001);
  assert.match(task.error.message, /official/);
  assert.equal(fo.requests.length, 0);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('GEMINI_API_KEY + GEMINI_BASE_URL make an official channel for every model', async (t) => {
  const fe = await startFakeGemini();
  t.after(() => fe.close());
  const s = await startServer({ env: { GEMINI_API_KEY: 'env-key-1', GEMINI_BASE_URL: fe.base }, args: fastRouter() });
  assert.doesNotMatch(s.stderr(), /OFFLINE MODE/);
  assert.ok(!s.stderr().includes('env-key-1'), 'the key is never logged');

  const p1 = uniquePrompt('env channel');
  const { images } = await expectCompleted(s, { model: MODEL, prompt: p1, size: '21:9' });
  assert.equal(fe.callsFor(p1).length, 1);
  assertGeminiRequest(fe.callsFor(p1)[0], { prompt: p1, ratio: '21:9', key: 'env-key-1' });
  assert.equal(sha256(images[0]), sha256(fe.callsFor(p1)[0].reply.images[0]));

  // -official is served too: the env channel is official.
  const p2 = uniquePrompt('env channel official');
  await expectCompleted(s, { model: OFFICIAL, prompt: p2 });
  assert.equal(fe.callsFor(p2).length, 1);

  // Every catalog model, with its own upstream name; 3 Pro is sent its resolution.
  const p3 = uniquePrompt('env channel 3 pro');
  await expectCompleted(s, { model: 'gemini-3-pro-image-preview', prompt: p3, size: '16:9', resolution: '2K' });
  assert.equal(fe.callsFor(p3).length, 1);
  assertGeminiRequest(fe.callsFor(p3)[0], { prompt: p3, ratio: '16:9', key: 'env-key-1', model: 'gemini-3-pro-image-preview', imageSize: '2K' });
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('the server is healthy and never logged the key', async () => {
  const h = await curl([`${srv.base}/healthz`]);
  assert.equal(h.status, 200);
  assert.ok(!srv.stderr().includes('test-key-a'));
  // Nor the images' base64 (a fragment of the PNG the fake sent).
  const someB64 = fake.requests.find((r) => r.reply?.images?.length)?.reply.images[0].toString('base64').slice(100, 160);
  assert.ok(someB64 && !srv.stderr().includes(someB64), 'no base64 in the log');
  assert.ok(fake.requests.every((r) => promptOf(r) !== undefined), 'every upstream request had a prompt');
});

/** Start a server on this config; null when it started (then stopped), else why it did not. */
async function refused(channels) {
  try {
    const s = await startServer({ args: ['--config', writeConfig(channels)] });
    await s.stop();
    return null;
  } catch (e) {
    return e.message;
  }
}

test('channel config errors: exit 1 naming the problem, never a crash', async () => {
  const ch = { name: 'x', type: 'gemini', base_url: fake.base, keys: ['k'] };
  const cases = [
    [[{ ...ch, type: 'bogus' }], /channels\[0\]\.type/],
    [[{ ...ch, keys: undefined }], /channels\[0\].*keys/],
    [[ch, { ...ch }], /two channels are named 'x'/],
    // Configuration mistakes that would otherwise pass silently:
    [[{ ...ch, models: { 'no-such-model': 'm' } }], /no-such-model/],  // a typo: the channel would serve nothing
    [[{ ...ch, priorty: 3 }], /priorty/],                              // a typo: top-level options reject unknown names too
  ];
  const problems = [];
  for (const [channels, re] of cases) {
    const why = await refused(channels);
    if (why === null) problems.push(`started with ${JSON.stringify(channels)}`);
    else if (!/exited \(code 1, signal null\)/.test(why) || !re.test(why)) problems.push(`${JSON.stringify(channels)}: ${why.slice(0, 400)}`);
  }
  // "openai" is a type the loader accepts: the server must either serve it or refuse it
  // cleanly, not abort.
  const why = await refused([{ ...ch, type: 'openai' }]);
  if (why !== null && !/exited \(code 1, signal null\)/.test(why)) problems.push(`type openai: ${why.slice(0, 400)}`);
  assert.deepEqual(problems, []);
});


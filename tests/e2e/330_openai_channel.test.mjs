// 330: an "openai" channel (OpenAI Images API) from the config file, against a loopback fake:
// the exact generations request (path, Bearer key, every JSON field with the model mapped
// through "models"; n in one call), the multipart edits request with the references' bytes in
// order (a 4 MB one too), the fake's PNG bytes served back, url results downloaded (from a
// loopback channel even without --fetch-allow-loopback), fewer images than asked, content-policy
// refusals, 400s, empty and malformed answers (80003, not retried), 500 (80001, not retried),
// 503s and 429s retried (Retry-After, retry-after-ms) and recorded attempt by attempt, a stall
// (80002), a refused key (401/403: the channel is disabled, the task fails over), keys used in
// turn and never logged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, curl, pngSize, t as scaled } from './lib/harness.mjs';
import http from 'node:http';
import { startRefServer, makePng, PNG_640x480, PNG_300x600 } from './lib/refserver.mjs';
import { startFakeOpenAI, openaiPromptOf, openaiPng } from './lib/fakeopenai.mjs';
import {
  MODEL, CATALOG_ID, fastRouter, writeConfig, sha256, uniquePrompt, expectCompleted, expectFailed, run,
  attemptLog, haveSqlite, storedUpstream,
} from './lib/upstream.mjs';

const UPSTREAM_MODEL = 'gpt-image-1';
const KEY_A = 'sk-test-oa-a-0123456789abcdef';
const KEY_B = 'sk-test-oa-b-fedcba9876543210';
const ATTEMPTS = 3;

/** An openai channel object pointing at a fake (generous timeouts, as geminiChannel's). */
function openaiChannel(name, fake, over = {}) {
  return {
    name, type: 'openai', base_url: fake.base, keys: [KEY_A],
    priority: 10, weight: 1, timeout_ms: scaled(15000), connect_timeout_ms: scaled(5000),
    max_response_bytes: 20000000, models: { [CATALOG_ID]: UPSTREAM_MODEL },
    ...over,
  };
}

let fake;    // oa-a's upstream
let ref;     // reference images
let srv;     // one channel oa-a, loopback references allowed, debug logging
let plain;   // the same channel, loopback references NOT allowed (url results still are)
let staller; // oa-a with timeout_ms 600

before(async () => {
  [fake, ref] = await Promise.all([startFakeOpenAI(), startRefServer()]);
  const cfg = writeConfig([openaiChannel('oa-a', fake)]);
  const stallCfg = writeConfig([openaiChannel('oa-a', fake, { timeout_ms: 600 })]);
  [srv, plain, staller] = await Promise.all([
    startServer({ args: ['--config', cfg, '--fetch-allow-loopback', ...fastRouter({ attempts: ATTEMPTS }), '--log-level', 'debug'] }),
    startServer({ args: ['--config', cfg, ...fastRouter({ attempts: ATTEMPTS })] }),
    startServer({ args: ['--config', stallCfg, ...fastRouter({ attempts: ATTEMPTS })] }),
  ]);
});
after(async () => {
  await cleanup();
  await fake?.close();
  await ref?.close();
});

/** The images the fake sent for this prompt, as sha256s, in request order. */
function sentShas(prompt) {
  return fake.callsFor(prompt).flatMap((r) => (r.reply?.images ?? []).map(sha256));
}

/** The request is exactly the generations request for these values. */
function assertGenerations(rec, { prompt, n = 1, size = '1024x1024', key = KEY_A, model = UPSTREAM_MODEL }) {
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/images/generations');
  assert.equal(rec.headers.authorization, `Bearer ${key}`);
  assert.equal(rec.headers['content-type'], 'application/json');
  assert.equal(rec.headers.accept, 'application/json');
  assert.equal(rec.headers['x-goog-api-key'], undefined);
  assert.deepEqual(rec.body, { model, prompt, n, size, response_format: 'b64_json' });
}

/** The request is exactly the edits request: the fields, then the references' bytes in order. */
function assertEdits(rec, { prompt, n = 1, size, refs, key = KEY_A, model = UPSTREAM_MODEL }) {
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, '/v1/images/edits');
  assert.equal(rec.headers.authorization, `Bearer ${key}`);
  assert.match(rec.headers['content-type'], /^multipart\/form-data; boundary=\S+$/);
  assert.equal(rec.formError, undefined);
  const fileName = refs.length === 1 ? 'image' : 'image[]';
  assert.deepEqual(rec.parts.map((p) => p.name),
    ['model', 'prompt', 'n', 'size', 'response_format', ...refs.map(() => fileName)], 'the parts, in order');
  assert.deepEqual(rec.fields, { model, prompt, n: String(n), size, response_format: 'b64_json' });
  for (const p of rec.parts.slice(0, 5)) {
    assert.equal(p.filename, undefined, `field ${p.name} is not a file`);
    assert.equal(p.contentType, undefined, `field ${p.name} has no Content-Type`);
  }
  assert.equal(rec.files.length, refs.length);
  rec.files.forEach((f, i) => {
    assert.equal(f.filename, `image-${i}.png`);
    assert.equal(f.contentType, 'image/png');
    assert.equal(sha256(f.data), sha256(refs[i]), `reference ${i}: its exact bytes`);
  });
  // Node's own multipart parser reads the same body the same way.
  assert.ok(Array.isArray(rec.undici), JSON.stringify(rec.undici));
  assert.deepEqual(rec.undici.map((e) => [e.name, e.filename, sha256(e.data)]),
    rec.parts.map((p) => [p.name, p.filename, sha256(p.data)]));
}

test('startup: the mapped model is served by the channel (no OFFLINE claim); the key is not logged', () => {
  for (const s of [srv, plain, staller]) {
    const err = s.stderr();
    assert.doesNotMatch(err, /no upstream channel is configured/);
    for (const line of err.split('\n').filter((l) => /offline mode/i.test(l)))
      assert.ok(!line.includes(CATALOG_ID), `an OFFLINE MODE line names the served model: ${line}`);
    assert.ok(!err.includes(KEY_A), 'the channel key is never logged');
  }
});

test('text-to-image: one exact generations request; the stored image is the fake\'s bytes', async () => {
  const prompt = uniquePrompt('a lighthouse in a storm, oil painting');
  const { task, images } = await expectCompleted(srv, { model: MODEL, prompt, size: '16:9' });
  assert.equal(task.model, MODEL);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGenerations(calls[0], { prompt, size: '1344x768' });
  assert.equal(calls[0].reply.status, 200);
  assert.equal(sha256(images[0]), sha256(calls[0].reply.images[0]), 'the upstream bytes, unchanged');
  assert.deepEqual(pngSize(images[0]), { width: 1344, height: 768 });
});

test('no size: 1024x1024 (1:1) is asked', async () => {
  const prompt = uniquePrompt('a bowl of ramen, top view');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt });
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGenerations(calls[0], { prompt, size: '1024x1024' });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('n=3: ONE request with n 3; three different images, in the order of data[]', async () => {
  const prompt = uniquePrompt('three variations of a logo');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, size: '3:4', n: 3 }, 3);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1, 'the Images API takes a count: one call');
  assertGenerations(calls[0], { prompt, n: 3, size: '864x1184' });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
  assert.equal(new Set(images.map(sha256)).size, 3);
});

test('two references: one multipart edits request, image[] parts with the exact bytes in order', async () => {
  const prompt = uniquePrompt('blend these two photos into a poster');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, image_urls: [ref.url('/a.png'), ref.url('/b.png')] });
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  // The first reference is 640x480: 4:3, 1184x864.
  assertEdits(calls[0], { prompt, size: '1184x864', refs: [PNG_640x480, PNG_300x600] });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('one reference and a size: one "image" part; the given size wins', async () => {
  const prompt = uniquePrompt('make it a watercolor');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, size: '9:16', n: 2, image_urls: [ref.url('/b.png')] }, 2);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertEdits(calls[0], { prompt, n: 2, size: '768x1344', refs: [PNG_300x600] });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('a 4 MB reference goes up whole in the multipart body', async (t) => {
  const noise = makePng(1100, 1100, () => [Math.random() * 256 | 0, Math.random() * 256 | 0, Math.random() * 256 | 0]);
  const big = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': noise.length });
    res.end(noise);
  });
  await new Promise((r) => big.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => big.close(r)));
  const prompt = uniquePrompt('a big noisy reference');
  await expectCompleted(srv, { model: MODEL, prompt, image_urls: [`http://127.0.0.1:${big.address().port}/noise.png`, ref.url('/a.png')] });
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assert.ok(noise.length > 3500000, `${noise.length} bytes`);
  assertEdits(calls[0], { prompt, size: '1024x1024', refs: [noise, PNG_640x480] });
  assert.ok(calls[0].bytes > noise.length + PNG_640x480.length);
});

test('url results: downloaded from the channel\'s own (loopback) host, even without --fetch-allow-loopback', async () => {
  const prompt = uniquePrompt('two url results [[url]]');
  const { images } = await expectCompleted(plain, { model: MODEL, prompt, size: '4:3', n: 2 }, 2);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGenerations(calls[0], { prompt, n: 2, size: '1184x864' });
  assert.equal(calls[0].reply.urls.length, 2);
  assert.ok(calls[0].reply.json.data.every((d) => d.url && !d.b64_json));
  const dl = fake.downloadsFor(calls[0]);
  assert.equal(dl.length, 2, 'each URL downloaded once');
  assert.ok(dl.every((d) => d.status === 200 && d.headers.authorization === undefined), 'without the key');
  assert.deepEqual(images.map(sha256), sentShas(prompt));
  assert.notEqual(sha256(images[0]), sha256(images[1]));
});

test('b64_json and url results in one answer: both kept, in order', async () => {
  const prompt = uniquePrompt('mixed results [[mixed]]');
  const { images } = await expectCompleted(srv, { model: MODEL, prompt, n: 3 }, 3);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].reply.json.data.map((d) => (d.b64_json ? 'b64' : 'url')), ['b64', 'url', 'url']);
  assert.equal(fake.downloadsFor(calls[0]).length, 2);
  assert.deepEqual(images.map(sha256), sentShas(prompt));
});

test('a result URL that answers 404: failed 80003, the call is not repeated (it ran upstream)', async () => {
  const prompt = uniquePrompt('lost result [[url-404]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003, /could not be downloaded/);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  const dl = fake.downloadsFor(calls[0]);
  assert.equal(dl.length, 1);
  assert.equal(dl[0].status, 404);
});

test('content_policy_violation: failed 80003 (moderated) with the upstream message; not retried', async () => {
  const prompt = uniquePrompt('something not allowed [[content-policy]]');
  const task = await expectFailed(srv, { model: MODEL, prompt }, 80003, /safety system/);
  assert.match(task.error.message, /^upstream 400: Your request was rejected/);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGenerations(calls[0], { prompt });
  assert.deepEqual(attemptLog(srv, task.id).map((a) => [a.channel, a.attempt, a.status, a.result]),
    [['oa-a', 1, 400, 'moderated']], 'recorded as moderated, not as a failure of the upstream');
});

test('400 invalid_request_error: failed 80003 with the upstream message; not retried', async () => {
  const prompt = uniquePrompt('bad size [[400]]');
  const task = await expectFailed(srv, { model: MODEL, prompt }, 80003, /Invalid value for 'size'/);
  assert.equal(fake.callsFor(prompt).length, 1);
  assert.deepEqual(attemptLog(srv, task.id).map((a) => [a.attempt, a.status, a.result]), [[1, 400, 'provider_failed']]);
});

test('a malformed 200 and a bad b64_json: failed 80003; not retried', async () => {
  for (const marker of ['malformed', 'bad-b64']) {
    const prompt = uniquePrompt(`garbage [[${marker}]]`);
    await expectFailed(srv, { model: MODEL, prompt }, 80003, marker === 'bad-b64' ? /base64/ : /malformed/);
    assert.equal(fake.callsFor(prompt).length, 1, marker);
  }
});

test('fewer images than n: completed with the ones that came; the call is not repeated (it ran upstream)', async () => {
  const prompt = uniquePrompt('asked for three, got one');
  fake.script((rec) => (openaiPromptOf(rec) === prompt ? { ok: true, images: [openaiPng(1024, 1024, 7)] } : undefined));
  let r;
  try {
    r = await expectCompleted(srv, { model: MODEL, prompt, n: 3 }, 1);
  } finally {
    fake.script(null);
  }
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGenerations(calls[0], { prompt, n: 3 });
  assert.equal(sha256(r.images[0]), sha256(openaiPng(1024, 1024, 7)));
  assert.deepEqual(attemptLog(srv, r.task.id).map((a) => [a.attempt, a.status, a.result]), [[1, 200, 'ok']]);
});

test('a 200 with an empty data[]: failed 80003 "no image"; a 500: failed 80001, not retried (it may have run)', async () => {
  const empty = uniquePrompt('nothing in data');
  const boom = uniquePrompt('internal error upstream');
  fake.script((rec) => {
    if (openaiPromptOf(rec) === empty) return { status: 200, json: { created: 1, data: [] } };
    if (openaiPromptOf(rec) === boom) return { error: [500, null, 'The server had an error while processing your request.', 'server_error'] };
    return undefined;
  });
  try {
    await expectFailed(srv, { model: MODEL, prompt: empty }, 80003, /^upstream returned no image$/);
    const t5 = await expectFailed(srv, { model: MODEL, prompt: boom }, 80001, /^upstream 500: The server had an error/);
    assert.deepEqual(attemptLog(srv, t5.id).map((a) => [a.attempt, a.status, a.result]), [[1, 500, 'provider_submit_failed']]);
  } finally {
    fake.script(null);
  }
  assert.equal(fake.callsFor(empty).length, 1);
  assert.equal(fake.callsFor(boom).length, 1);
});

test('503 twice, then success: completed after exactly 3 calls; the 3 attempts are logged and recorded', async () => {
  const prompt = uniquePrompt('overloaded twice [[503x2]]');
  const { task, images } = await expectCompleted(srv, { model: MODEL, prompt, size: '3:2' });
  const calls = fake.callsFor(prompt);
  assert.deepEqual(calls.map((c) => c.reply.status), [503, 503, 200]);
  for (const c of calls) assertGenerations(c, { prompt, size: '1248x832' });
  assert.deepEqual(images.map(sha256), sentShas(prompt));
  assert.deepEqual(attemptLog(srv, task.id).map((a) => [a.channel, a.attempt, a.status, a.result]),
    [['oa-a', 1, 503, 'provider_submit_failed'], ['oa-a', 2, 503, 'provider_submit_failed'], ['oa-a', 3, 200, 'ok']]);
  if (haveSqlite()) {
    const up = storedUpstream(srv, task.id);
    assert.deepEqual(up.attempts.map((a) => [a.channel, a.status, a.result]),
      [['oa-a', 503, 'provider_submit_failed'], ['oa-a', 503, 'provider_submit_failed'], ['oa-a', 200, 'ok']]);
    assert.ok(up.attempts.every((a) => Number.isInteger(a.latency_ms) && a.latency_ms >= 0 && a.bytes > 0), JSON.stringify(up));
    assert.ok(up.attempts[2].bytes > images[0].length, 'the last attempt read the base64 answer');
  }
});

test('503 on every call: failed 80001 after exactly --upstream-max-attempts calls', async () => {
  const prompt = uniquePrompt('overloaded forever [[always503]]');
  const task = await expectFailed(srv, { model: MODEL, prompt }, 80001, /503/);
  assert.equal(fake.callsFor(prompt).length, ATTEMPTS);
  assert.equal(attemptLog(srv, task.id).length, ATTEMPTS);
});

test('429 with Retry-After: 1: completed; the retry came no sooner than ~1 s later', async () => {
  const prompt = uniquePrompt('rate limited [[429-retry-after-1]]');
  await expectCompleted(srv, { model: MODEL, prompt });
  const calls = fake.callsFor(prompt);
  assert.deepEqual(calls.map((c) => c.reply.status), [429, 200]);
  const gap = calls[1].at - calls[0].reply.at;
  assert.ok(gap >= 980, `the retry came ${gap} ms after the 429 (Retry-After: 1)`);
});

test('retry-after-ms (OpenAI\'s own header) is honoured over a short Retry-After', async () => {
  const prompt = uniquePrompt('rate limited, in ms');
  let seen = 0;
  fake.script((rec) => (openaiPromptOf(rec) === prompt && ++seen === 1
    ? { headers: { 'Retry-After': '0', 'retry-after-ms': '1200' },
      error: [429, 'rate_limit_exceeded', 'Rate limit reached for images per min.', 'requests'] } : undefined));
  try {
    await expectCompleted(srv, { model: MODEL, prompt });
  } finally {
    fake.script(null);
  }
  const calls = fake.callsFor(prompt);
  assert.deepEqual(calls.map((c) => c.reply.status), [429, 200]);
  const gap = calls[1].at - calls[0].reply.at;
  assert.ok(gap >= 1180, `the retry came ${gap} ms after the 429 (retry-after-ms: 1200)`);
});

test('a stall past timeout_ms: failed 80002 after one call (it may have run: not retried)', async () => {
  const prompt = uniquePrompt('stall [[stall]]');
  const t0 = Date.now();
  await expectFailed(staller, { model: MODEL, prompt }, 80002, /600 ms/);
  assert.equal(fake.callsFor(prompt).length, 1);
  assert.ok(Date.now() - t0 < scaled(5000), `took ${Date.now() - t0} ms with timeout_ms 600`);
});

test('an upstream message quoting the key is withheld', async () => {
  const prompt = uniquePrompt('quotes the key');
  fake.script((rec) => (openaiPromptOf(rec) === prompt
    ? { error: [400, 'invalid_value', `Project for key ${KEY_A} may not use ${UPSTREAM_MODEL}`, 'invalid_request_error'] } : undefined));
  try {
    const task = await expectFailed(srv, { model: MODEL, prompt }, 80003);
    assert.ok(!task.error.message.includes(KEY_A), task.error.message);
    assert.match(task.error.message, /withheld/);
  } finally {
    fake.script(null);
  }
});

test('401 on oa-a: the task fails over to oa-b at once; oa-a is disabled and never asked again', async (t) => {
  const [fa, fb] = await Promise.all([startFakeOpenAI(), startFakeOpenAI()]);
  t.after(() => Promise.all([fa.close(), fb.close()]));
  fa.script(() => ({ error: [401, 'invalid_api_key', 'Incorrect API key provided: sk-test-***cdef.', 'invalid_request_error'] }));
  const cfg = writeConfig([
    openaiChannel('oa-a', fa, { priority: 10, keys: [KEY_A] }),
    openaiChannel('oa-b', fb, { priority: 5, keys: [KEY_B], models: { [CATALOG_ID]: 'dall-e-3' } }),
  ]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter({ attempts: 5 }), '--log-level', 'debug'] });

  const p1 = uniquePrompt('first, key refused on oa-a');
  const { task, images } = await expectCompleted(s, { model: MODEL, prompt: p1 });
  assert.equal(fa.requests.length, 1, 'oa-a asked once');
  assertGenerations(fa.requests[0], { prompt: p1, key: KEY_A });
  assert.equal(fb.callsFor(p1).length, 1);
  assertGenerations(fb.callsFor(p1)[0], { prompt: p1, key: KEY_B, model: 'dall-e-3' });
  assert.equal(sha256(images[0]), sha256(fb.callsFor(p1)[0].reply.images[0]));
  assert.deepEqual(attemptLog(s, task.id).map((a) => [a.channel, a.attempt, a.status, a.result]),
    [['oa-a', 1, 401, 'provider_submit_failed'], ['oa-b', 2, 200, 'ok']]);
  if (haveSqlite())
    assert.deepEqual(storedUpstream(s, task.id).attempts.map((a) => [a.channel, a.status]), [['oa-a', 401], ['oa-b', 200]]);
  assert.match(s.stderr(), /channel oa-a disabled/);

  for (let i = 0; i < 3; i++) {
    const p = uniquePrompt(`later ${i}`);
    const r = await expectCompleted(s, { model: MODEL, prompt: p });
    assert.equal(fb.callsFor(p).length, 1, 'straight to oa-b');
    assert.deepEqual(attemptLog(s, r.task.id).map((a) => a.channel), ['oa-b']);
  }
  assert.equal(fa.requests.length, 1, 'the disabled oa-a got no more requests');
  assert.ok(!s.stderr().includes(KEY_A) && !s.stderr().includes(KEY_B), 'keys are never logged');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('401 on the only channel: failed 80001 without the key; later tasks fail without asking it', async (t) => {
  const f = await startFakeOpenAI();
  t.after(() => f.close());
  const s = await startServer({ args: ['--config', writeConfig([openaiChannel('oa-a', f)]), ...fastRouter()] });
  const prompt = uniquePrompt('refused [[401]]');
  const task = await expectFailed(s, { model: MODEL, prompt }, 80001, /refused the API key of channel oa-a/);
  assert.ok(!task.error.message.includes(KEY_A));
  assert.equal(f.callsFor(prompt).length, 1);
  await expectFailed(s, { model: MODEL, prompt: uniquePrompt('after the refusal') }, 80001, /no channel is available/);
  assert.equal(f.requests.length, 1, 'the disabled channel was not asked again');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('403 (a key the upstream forbids) disables the channel like a 401', async (t) => {
  const f = await startFakeOpenAI();
  t.after(() => f.close());
  f.script(() => ({ error: [403, 'unsupported_country_region_territory', 'Country, region, or territory not supported', 'request_forbidden'] }));
  const s = await startServer({ args: ['--config', writeConfig([openaiChannel('oa-a', f)]), ...fastRouter()] });
  const prompt = uniquePrompt('forbidden');
  await expectFailed(s, { model: MODEL, prompt }, 80001, /refused the API key of channel oa-a \(HTTP 403\)/);
  assert.equal(f.callsFor(prompt).length, 1);
  assert.match(s.stderr(), /channel oa-a disabled: the upstream refused its key \(HTTP 403\)/);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('several keys are used in turn', async (t) => {
  const f = await startFakeOpenAI();
  t.after(() => f.close());
  const s = await startServer({ args: ['--config', writeConfig([openaiChannel('oa-k', f, { keys: ['sk-one-111', 'sk-two-222'] })]), ...fastRouter()] });
  for (let i = 0; i < 4; i++) await expectCompleted(s, { model: MODEL, prompt: uniquePrompt(`keys ${i}`) });
  const used = f.requests.map((r) => r.headers.authorization);
  assert.equal(used.length, 4);
  assert.equal(used.filter((k) => k === 'Bearer sk-one-111').length, 2, used.join(','));
  assert.equal(used.filter((k) => k === 'Bearer sk-two-222').length, 2, used.join(','));
  assert.ok(!/sk-one-111|sk-two-222/.test(s.stderr()), 'keys are never logged');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('after all that the servers are healthy; neither the key nor base64 was ever logged', async () => {
  for (const s of [srv, plain, staller]) {
    const h = await curl([`${s.base}/healthz`]);
    assert.equal(h.status, 200);
    const prompt = uniquePrompt('still fine');
    const { images } = await expectCompleted(s, { model: MODEL, prompt });
    assert.equal(sha256(images[0]), sha256(fake.callsFor(prompt)[0].reply.images[0]));
    assert.ok(!s.stderr().includes(KEY_A), 'the key is never logged');
  }
  assert.match(srv.stderr(), /openai: channel oa-a/, 'debug logging was on for srv');
  const someB64 = fake.requests.find((r) => r.reply?.images?.length)?.reply.images[0].toString('base64').slice(100, 160);
  assert.ok(someB64 && !srv.stderr().includes(someB64), 'no base64 in the log');
  assert.ok(fake.requests.every((r) => r.formError === undefined), 'every multipart body parsed');
});

// 310: a Gemini upstream that fails. Connection resets: retried up to --upstream-max-attempts
// (then 80001) when the request provably did not arrive whole; once it did, it may have run and
// is retried only with --upstream-retry-maybe-executed. Refused connections fail over. Stalls
// (80002, not retried by default), safety blocks, refusals and 400s (80003, not retried),
// replies that are malformed, truncated or too big, a refused key (the channel is disabled, the
// task fails over) and 503s (failover).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, curl, t as scaled } from './lib/harness.mjs';
import http from 'node:http';
import { startFakeGemini } from './lib/fakegemini.mjs';
import { makePng } from './lib/refserver.mjs';
import {
  MODEL, fastRouter, geminiChannel, writeConfig, sha256, uniquePrompt,
  expectCompleted, expectFailed, assertGeminiRequest, run,
} from './lib/upstream.mjs';

const ATTEMPTS = 3;
const MAX_RESPONSE = 1000000;

let fake;    // upstream of all the servers below
let srv;     // gem-a: max_response_bytes 1 MB; 3 attempts
let retrier; // the same with --upstream-retry-maybe-executed
let staller; // gem-a with timeout_ms 500
let stallRetrier; // the same with --upstream-retry-maybe-executed

let bigRef; // serves /noise.png: 1200x1200 of noise, ~4.3 MB

before(async () => {
  const noise = makePng(1200, 1200, () => [Math.random() * 256 | 0, Math.random() * 256 | 0, Math.random() * 256 | 0]);
  bigRef = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': noise.length });
    res.end(noise);
  });
  await new Promise((r) => bigRef.listen(0, '127.0.0.1', r));
  bigRef.base = `http://127.0.0.1:${bigRef.address().port}`;
  fake = await startFakeGemini({ hugeBytes: 3 * MAX_RESPONSE });
  const cfg = writeConfig([geminiChannel('gem-a', fake, { max_response_bytes: MAX_RESPONSE })]);
  const stallCfg = writeConfig([geminiChannel('gem-a', fake, { timeout_ms: 500 })]);
  const maybe = ['--upstream-retry-maybe-executed'];
  [srv, retrier, staller, stallRetrier] = await Promise.all([
    startServer({ args: ['--config', cfg, '--fetch-allow-loopback', ...fastRouter({ attempts: ATTEMPTS })] }),
    startServer({ args: ['--config', cfg, ...fastRouter({ attempts: ATTEMPTS, extra: maybe })] }),
    startServer({ args: ['--config', stallCfg, ...fastRouter({ attempts: ATTEMPTS })] }),
    startServer({ args: ['--config', stallCfg, ...fastRouter({ attempts: ATTEMPTS, extra: maybe })] }),
  ]);
});
after(async () => {
  await cleanup();
  await fake?.close();
  await new Promise((r) => (bigRef ? bigRef.close(r) : r()));
});

test('reset after the whole request went: failed 80001 after one call (it may have run: not retried by default)', async () => {
  const prompt = uniquePrompt('reset [[reset]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80001, /connection/);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGeminiRequest(calls[0], { prompt });
});

test('reset after the whole request went, with --upstream-retry-maybe-executed: 80001 after exactly --upstream-max-attempts calls', async () => {
  const prompt = uniquePrompt('reset retried [[reset]]');
  await expectFailed(retrier, { model: MODEL, prompt }, 80001);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, ATTEMPTS);
  for (const c of calls) assertGeminiRequest(c, { prompt });
});

test('reset before the request body arrived whole: retried, 80001 after exactly --upstream-max-attempts calls', async () => {
  // A 5 MB reference makes a ~7 MB request body; the fake stops reading at its first chunk.
  const prompt = uniquePrompt('reset early [[reset-early]]');
  await expectFailed(srv, { model: MODEL, prompt, image_urls: [`${bigRef.base}/noise.png`] }, 80001);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, ATTEMPTS);
  assert.ok(calls.every((c) => c.early && c.path === '/v1beta/models/gemini-2.5-flash-image:generateContent'));
});

test('a channel on a port where nothing listens fails over to the next one', async (t) => {
  const fb = await startFakeGemini();
  t.after(() => fb.close());
  const dead = await startFakeGemini();
  const deadBase = dead.base;
  await dead.close();
  const cfg = writeConfig([
    geminiChannel('gem-a', { base: deadBase }, { priority: 10 }),
    geminiChannel('gem-b', fb, { priority: 5 }),
  ]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter({ attempts: 5 })] });
  const prompt = uniquePrompt('nobody home on gem-a');
  await expectCompleted(s, { model: MODEL, prompt });
  assert.equal(fb.callsFor(prompt).length, 1);
  // Only a dead channel: every attempt refused, then 80001.
  const cfg2 = writeConfig([geminiChannel('gem-a', { base: deadBase })]);
  const s2 = await startServer({ args: ['--config', cfg2, ...fastRouter()] });
  await expectFailed(s2, { model: MODEL, prompt: uniquePrompt('nobody home at all') }, 80001, /reach|connect/);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
  assert.deepEqual(await s2.stop(), { code: 0, signal: null });
});

test('a stall past timeout_ms: failed 80002 after one call (it may have run: not retried by default)', async () => {
  const prompt = uniquePrompt('stall [[stall]]');
  const t0 = Date.now();
  await expectFailed(staller, { model: MODEL, prompt }, 80002, /500 ms/);
  assert.equal(fake.callsFor(prompt).length, 1);
  assert.ok(Date.now() - t0 < scaled(5000), `took ${Date.now() - t0} ms with timeout_ms 500`);
});

test('a stall with --upstream-retry-maybe-executed: retried up to the attempt cap, then 80002', async () => {
  const prompt = uniquePrompt('stall retried [[stall]]');
  await expectFailed(stallRetrier, { model: MODEL, prompt }, 80002);
  assert.equal(fake.callsFor(prompt).length, ATTEMPTS);
});

test('finishReason IMAGE_SAFETY: failed 80003 naming the reason, not retried', async () => {
  const prompt = uniquePrompt('unsafe output [[safety-finish]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003, /IMAGE_SAFETY/);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('promptFeedback.blockReason: failed 80003 naming the reason, not retried', async () => {
  const prompt = uniquePrompt('blocked prompt [[safety-prompt]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003, /PROHIBITED_CONTENT/);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('STOP with only a refusal text: failed 80003 quoting the text, not retried', async () => {
  const prompt = uniquePrompt('refused [[text-only]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003, /I can't draw that/);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('400 INVALID_ARGUMENT: failed 80003 with the upstream message, not retried', async () => {
  const prompt = uniquePrompt('bad request [[400]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003, /bad aspect/);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('a malformed 200 body: failed 80003, not retried', async () => {
  const prompt = uniquePrompt('garbage [[malformed]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('an inlineData image that is not an image: failed 80003, nothing stored, not retried', async () => {
  const prompt = uniquePrompt('garbage image [[bad-image]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('a 200 body over max_response_bytes: failed 80003, not retried', async () => {
  const prompt = uniquePrompt('enormous [[huge]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80003);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assert.ok(calls[0].reply.bytes > MAX_RESPONSE);
});

test('a 200 cut short of its Content-Length: failed 80001, not retried (it ran upstream)', async () => {
  const prompt = uniquePrompt('cut short [[truncated]]');
  await expectFailed(srv, { model: MODEL, prompt }, 80001);
  assert.equal(fake.callsFor(prompt).length, 1);
});

test('an upstream message quoting the key is not passed on', async () => {
  const prompt = uniquePrompt('quotes the key');
  fake.script((rec) => (rec.body?.contents?.[0]?.parts?.[0]?.text === prompt
    ? { error: [400, 'INVALID_ARGUMENT', 'API key test-key-a is not valid for project 12345'] } : undefined));
  try {
    const task = await expectFailed(srv, { model: MODEL, prompt }, 80003);
    assert.ok(!task.error.message.includes('test-key-a'), task.error.message);
  } finally {
    fake.script(null);
  }
  assert.ok(!srv.stderr().includes('test-key-a'), 'nor logged');
});

test('after all that the servers are healthy and still serve a plain request', async () => {
  for (const s of [srv, retrier, staller, stallRetrier]) {
    const h = await curl([`${s.base}/healthz`]);
    assert.equal(h.status, 200);
    const prompt = uniquePrompt('still fine');
    const { images } = await expectCompleted(s, { model: MODEL, prompt });
    assert.equal(sha256(images[0]), sha256(fake.callsFor(prompt)[0].reply.images[0]));
    assert.ok(!s.stderr().includes('test-key-a'), 'the key is never logged');
  }
});

test('failover: gem-a answers 503 every time, gem-b serves; completed via gem-b', async (t) => {
  const [fa, fb] = await Promise.all([startFakeGemini(), startFakeGemini()]);
  t.after(() => Promise.all([fa.close(), fb.close()]));
  fa.script(() => ({ error: [503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'] }));
  const cfg = writeConfig([geminiChannel('gem-a', fa, { priority: 10 }), geminiChannel('gem-b', fb, { priority: 5 })]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter({ attempts: 5 })] });
  for (let i = 0; i < 3; i++) {
    const prompt = uniquePrompt(`fail over ${i}`);
    const { images } = await expectCompleted(s, { model: MODEL, prompt });
    assert.equal(fb.callsFor(prompt).length, 1, 'gem-b served it once');
    assertGeminiRequest(fb.callsFor(prompt)[0], { prompt, key: 'test-key-b' });
    assert.equal(sha256(images[0]), sha256(fb.callsFor(prompt)[0].reply.images[0]));
    assert.ok(fa.callsFor(prompt).length <= 4, `gem-a asked ${fa.callsFor(prompt).length} times`);
  }
  assert.ok(fa.requests.length >= 1, 'gem-a (higher priority) was tried first');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('--upstream-budget-ms bounds the retrying: 503 forever fails 80001 before the attempt cap', async () => {
  const cfg = writeConfig([geminiChannel('gem-a', fake)]);
  const s = await startServer({ args: ['--config', cfg, '--upstream-max-attempts', '16', '--upstream-budget-ms', '1000',
    '--upstream-backoff-base-ms', '300', '--upstream-backoff-max-ms', '300'] });
  const prompt = uniquePrompt('overloaded forever [[always503]]');
  const t0 = Date.now();
  await expectFailed(s, { model: MODEL, prompt }, 80001, /503|overloaded/i);
  const took = Date.now() - t0;
  const n = fake.callsFor(prompt).length;
  assert.ok(n >= 2 && n < 16, `${n} calls`);
  assert.ok(took < scaled(4000), `took ${took} ms with a 1000 ms budget`);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('max_concurrency 1: the channel never has two calls in flight; every task completes', async (t) => {
  const fc = await startFakeGemini();
  t.after(() => fc.close());
  fc.script(() => ({ ok: true, delayMs: 200 }));
  const cfg = writeConfig([geminiChannel('gem-a', fc, { max_concurrency: 1 })]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  await Promise.all([0, 1, 2, 3].map((i) => expectCompleted(s, { model: MODEL, prompt: uniquePrompt(`one at a time ${i}`) })));
  assert.equal(fc.requests.length, 4);
  assert.equal(fc.maxInflight, 1);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('401 API_KEY_INVALID on gem-a: the task completes on gem-b; gem-a is disabled', async (t) => {
  const [fa, fb] = await Promise.all([startFakeGemini(), startFakeGemini()]);
  t.after(() => Promise.all([fa.close(), fb.close()]));
  fa.script(() => ({ error: [401, 'UNAUTHENTICATED', 'API key not valid. Please pass a valid API key.', [
    { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }]] }));
  const cfg = writeConfig([geminiChannel('gem-a', fa, { priority: 10 }), geminiChannel('gem-b', fb, { priority: 5 })]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter({ attempts: 5 })] });

  const p1 = uniquePrompt('first, key refused on gem-a');
  await expectCompleted(s, { model: MODEL, prompt: p1 });
  assert.equal(fa.requests.length, 1, 'gem-a asked once');
  assertGeminiRequest(fa.requests[0], { prompt: p1, key: 'test-key-a' });
  assert.equal(fb.callsFor(p1).length, 1);

  for (let i = 0; i < 3; i++) {
    const p = uniquePrompt(`later ${i}`);
    await expectCompleted(s, { model: MODEL, prompt: p });
    assert.equal(fb.callsFor(p).length, 1, 'straight to gem-b');
  }
  assert.equal(fa.requests.length, 1, 'the disabled gem-a got no more requests');
  assert.ok(!s.stderr().includes('test-key-a') && !s.stderr().includes('test-key-b'), 'keys are never logged');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('401 on the only channel: the task fails (provider code), without the key in the message', async (t) => {
  const f = await startFakeGemini();
  t.after(() => f.close());
  const cfg = writeConfig([geminiChannel('gem-a', f)]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  const prompt = uniquePrompt('refused [[401]]');
  const { task: j } = await run(s, { model: MODEL, prompt });
  assert.equal(j.status, 'failed', JSON.stringify(j));
  assert.ok([80001, 80003].includes(j.error.code), JSON.stringify(j.error));
  assert.ok(!j.error.message.includes('test-key-a'));
  assert.equal(f.callsFor(prompt).length, 1, 'a refused key is not retried on the same channel');
  assert.match(s.stderr(), /channel gem-a disabled/);
  // The channel is disabled: a later task fails without asking it, and is never served by the
  // offline provider instead.
  const later = await expectFailed(s, { model: MODEL, prompt: uniquePrompt('after the refusal') }, 80001, /no channel is available/);
  assert.equal(later.output, null);
  assert.equal(f.requests.length, 1, 'the disabled channel was not asked again');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

// 340: "vertex" channels (Vertex AI generateContent) against loopback fakes, in the three ways
// they authorise: a service-account key (an RS256 JWT exchanged at a fake token endpoint that
// verifies it; the access token shared by concurrent tasks, cached, refreshed before it
// expires, dropped after a 401), a fixed access token, and an API key in express mode. The
// exact path and body (the Gemini API's body), the fake's PNG bytes served back, a key file
// that does not load, a token endpoint that refuses, fails, is down or stalls through a
// SIGTERM, and secrets (tokens, JWTs, private keys, API keys) never logged, at debug level.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, cleanup, curl, submit, poll, sleep, t as scaled } from './lib/harness.mjs';
import { startRefServer, PNG_640x480 } from './lib/refserver.mjs';
import { startFakeVertex, startTokenServer, makeServiceAccount, vertexPath, SCOPE, GRANT_TYPE } from './lib/fakevertex.mjs';
import { promptOf } from './lib/fakegemini.mjs';
import {
  MODEL, CATALOG_ID, fastRouter, writeConfig, sha256, uniquePrompt, expectCompleted, expectFailed,
  assertGeminiRequest, attemptLog, haveSqlite, storedUpstream,
} from './lib/upstream.mjs';

const ATTEMPTS = 3;
const FIXED_TOKEN = 'ya29.fixed-access-token-5f2c9e';
const EXPRESS_KEY = 'vx-express-key-9d41b7';

let vfake; // Vertex AI, shared by every server below
let tok;   // the token endpoint
let ref;   // reference images
const secrets = [FIXED_TOKEN, EXPRESS_KEY];

/** A vertex channel object pointing at the fake (token_url, when used, must be loopback too). */
function vertexChannel(name, over = {}) {
  const c = {
    name, type: 'vertex', base_url: vfake.base, priority: 10, weight: 1,
    timeout_ms: scaled(15000), connect_timeout_ms: scaled(5000), max_response_bytes: 5000000,
    models: { [CATALOG_ID]: CATALOG_ID }, ...over,
  };
  if (c.service_account_file && !/^http:\/\/127\.0\.0\.1:\d+\//.test(c.token_url ?? ''))
    throw new Error(`test config: channel ${name} must name a loopback token_url`);
  return c;
}

/** A service account trusted by the token endpoint, whose tokens the fake Vertex accepts. */
function account(over = {}, { expiresIn = 3600 } = {}) {
  const sa = makeServiceAccount({ tokenUri: tok.url, ...over });
  tok.trust(sa, { expiresIn });
  secrets.push(sa.privateKeyPem.split('\n')[5]); // a line from inside the PEM body
  return sa;
}

const started = []; // every server of this file, for the last test's look at their logs

/** A server on these channels, fast retries, debug logging (so more could leak, and must not). */
async function serve(channels, extra = []) {
  const s = await startServer({ args: ['--config', writeConfig(channels), ...fastRouter({ attempts: ATTEMPTS }),
    '--log-level', 'debug', ...extra] });
  started.push(s);
  return s;
}

/** The tokens issued to this account, in order. */
const issuedTo = (sa) => tok.issued.filter((i) => i.email === sa.email).map((i) => i.token);

before(async () => {
  [vfake, tok, ref] = await Promise.all([
    startFakeVertex({ tokens: [FIXED_TOKEN], apiKeys: [EXPRESS_KEY] }), startTokenServer(), startRefServer()]);
  tok.onIssue = (token) => vfake.tokens.add(token);
});
after(async () => {
  await cleanup();
  await vfake?.close();
  await tok?.close();
  await ref?.close();
});

test('service account: one verified JWT exchange shared by 4 concurrent tasks, then cached for later tasks', async () => {
  const sa = account({ projectId: 'proj-from-key' });
  const s = await serve([vertexChannel('vx-sa', { location: 'us-central1', service_account_file: sa.file, token_url: tok.url })]);
  assert.equal(tok.forEmail(sa.email).length, 0, 'no exchange before the first task');
  const wantPath = vertexPath({ project: 'proj-from-key', location: 'us-central1', model: CATALOG_ID });

  // The endpoint answers 800 ms late: the four tasks are all waiting on the one exchange. The
  // model answers 500 ms late: were the tasks run one after the other, their calls could not
  // all be in flight at once.
  tok.delayMs = 800;
  let results;
  const prompts = [0, 1, 2, 3].map((i) => uniquePrompt(`concurrent sa ${i}`));
  vfake.script((rec) => (prompts.includes(promptOf(rec)) ? { ok: true, delayMs: 500 } : undefined));
  const accepted = [];
  try {
    results = await Promise.all(prompts.map(async (prompt, i) => {
      const sub = await submit(s, { model: MODEL, prompt, size: i % 2 ? '16:9' : '1:1' });
      assert.equal(sub.status, 200, sub.body);
      accepted.push(Date.now());
      const r = await poll(s, sub.json.id);
      assert.equal(r.json.status, 'completed', JSON.stringify(r.json));
      return r.json;
    }));
  } finally {
    tok.delayMs = 0;
    vfake.script(null);
  }
  const ex = tok.forEmail(sa.email);
  assert.equal(ex.length, 1, 'one exchange for four tasks');
  assert.ok(Math.max(...accepted) < ex[0].reply.at, 'all four were submitted while the exchange ran');
  assert.deepEqual(ex[0].problems, [], 'the token endpoint verified the JWT');
  assert.equal(ex[0].sigOk, true, 'RS256 signature verified with the key\'s public key');
  assert.equal(ex[0].headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(ex[0].form.grant_type, GRANT_TYPE);
  assert.deepEqual(ex[0].header, { alg: 'RS256', typ: 'JWT', kid: sa.keyId });
  const { iat } = ex[0].claims;
  assert.deepEqual(ex[0].claims, { iss: sa.email, scope: SCOPE, aud: tok.url, iat, exp: iat + 3600 });
  assert.ok(Math.abs(iat - ex[0].at / 1000) < 5, `iat ${iat} is now`);

  const all = prompts.flatMap((p) => vfake.callsFor(p));
  assert.equal(all.length, 4);
  assert.ok(Math.max(...all.map((c) => c.at)) < Math.min(...all.map((c) => c.reply.at)),
    'the four calls were in flight together');
  const [t1] = issuedTo(sa);
  for (const [i, prompt] of prompts.entries()) {
    const calls = vfake.callsFor(prompt);
    assert.equal(calls.length, 1, prompt);
    assertGeminiRequest(calls[0], { prompt, ratio: i % 2 ? '16:9' : '1:1', path: wantPath, bearer: t1 });
    assert.ok(calls[0].at >= ex[0].reply.at, 'the call waited for the token');
    const img = await curl([results[i].output.image_urls[0]]);
    assert.equal(sha256(img.bodyBuf), sha256(calls[0].reply.images[0]), 'the stored image is the fake\'s bytes');
  }

  // Later tasks: the cached token, no new exchange.
  for (let i = 0; i < 2; i++) {
    const prompt = uniquePrompt(`cached sa ${i}`);
    await expectCompleted(s, { model: MODEL, prompt });
    assertGeminiRequest(vfake.callsFor(prompt)[0], { prompt, path: wantPath, bearer: t1 });
  }
  assert.equal(tok.forEmail(sa.email).length, 1, 'the token was cached across tasks');
  for (const x of [t1, ex[0].form.assertion.slice(-40), ...secrets])
    assert.ok(!s.stderr().includes(x), 'no token, JWT or key in the log (debug level)');
  assert.match(s.stderr(), /gauth: .*access token obtained/, 'debug logging was on');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('service account: an expires_in of 301 s (1 s after the 5-minute margin) makes the next task exchange again', async () => {
  const sa = account({ projectId: 'proj-short' }, { expiresIn: 301 });
  const s = await serve([vertexChannel('vx-short', { project: 'proj-explicit', service_account_file: sa.file, token_url: tok.url })]);
  // "project" in the channel wins over the key's project_id; location defaults to global.
  const wantPath = vertexPath({ project: 'proj-explicit', location: 'global', model: CATALOG_ID });

  const p1 = uniquePrompt('short-lived token 1');
  await expectCompleted(s, { model: MODEL, prompt: p1 });
  assert.equal(tok.forEmail(sa.email).length, 1);
  const [t1] = issuedTo(sa);
  assertGeminiRequest(vfake.callsFor(p1)[0], { prompt: p1, path: wantPath, bearer: t1 });

  // Past the token's 1 s of use (the fake would still take it: the gateway refreshes by itself).
  await sleep(Math.max(0, tok.forEmail(sa.email)[0].reply.at + 1300 - Date.now()));
  const p2 = uniquePrompt('short-lived token 2');
  await expectCompleted(s, { model: MODEL, prompt: p2 });
  const ex = tok.forEmail(sa.email);
  assert.equal(ex.length, 2, 'a second exchange');
  assert.deepEqual(ex[1].problems, []);
  assert.ok(ex[1].claims.iat >= ex[0].claims.iat);
  const [, t2] = issuedTo(sa);
  assert.notEqual(t2, t1);
  assert.ok(vfake.tokens.has(t1), 'the old token was still good upstream');
  assertGeminiRequest(vfake.callsFor(p2)[0], { prompt: p2, path: wantPath, bearer: t2 });
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('service account: a revoked token gets 401: dropped, the task fails over at once, and the channel goes on with a new token', async () => {
  const sa = account({ projectId: 'proj-401' });
  const s = await serve([
    vertexChannel('vx-sa', { priority: 10, service_account_file: sa.file, token_url: tok.url }),
    vertexChannel('vx-fixed', { priority: 5, project: 'proj-backup', location: 'europe-west4', access_token: FIXED_TOKEN }),
  ]);
  const saPath = vertexPath({ project: 'proj-401', model: CATALOG_ID });
  const p1 = uniquePrompt('before the revocation');
  await expectCompleted(s, { model: MODEL, prompt: p1 });
  const [t1] = issuedTo(sa);
  assertGeminiRequest(vfake.callsFor(p1)[0], { prompt: p1, path: saPath, bearer: t1 });

  vfake.tokens.delete(t1); // revoked upstream: the cached token now gets 401
  const p2 = uniquePrompt('after the revocation');
  const { task, images } = await expectCompleted(s, { model: MODEL, prompt: p2 });
  const calls = vfake.callsFor(p2);
  assert.equal(calls.length, 2);
  assert.equal(calls[0].denied, true);
  assertGeminiRequest(calls[0], { prompt: p2, path: saPath, bearer: t1 });
  assert.equal(calls[0].reply.status, 401);
  // the refused call never ran: the untried channel takes it at once
  assertGeminiRequest(calls[1], { prompt: p2, path: vertexPath({ project: 'proj-backup', location: 'europe-west4', model: CATALOG_ID }), bearer: FIXED_TOKEN });
  assert.equal(sha256(images[0]), sha256(calls[1].reply.images[0]));
  assert.deepEqual(attemptLog(s, task.id).map((a) => [a.channel, a.attempt, a.status, a.result]),
    [['vx-sa', 1, 401, 'provider_submit_failed'], ['vx-fixed', 2, 200, 'ok']]);
  if (haveSqlite())
    assert.deepEqual(storedUpstream(s, task.id).attempts.map((a) => [a.channel, a.status]), [['vx-sa', 401], ['vx-fixed', 200]]);
  assert.doesNotMatch(s.stderr(), /channel vx-sa disabled/, 'one refused token is not a refused account');

  // vx-sa is still first: it exchanges again and works with the new token.
  const p3 = uniquePrompt('later, after the revocation');
  const later = await expectCompleted(s, { model: MODEL, prompt: p3 });
  assert.deepEqual(attemptLog(s, later.task.id).map((a) => [a.channel, a.status]), [['vx-sa', 200]]);
  assert.equal(tok.forEmail(sa.email).length, 2, 'the refused token was dropped: one new exchange');
  const [, t2] = issuedTo(sa);
  assertGeminiRequest(vfake.callsFor(p3)[0], { prompt: p3, path: saPath, bearer: t2 });
  assert.ok(!s.stderr().includes(t1) && !s.stderr().includes(t2) && !s.stderr().includes(FIXED_TOKEN), 'no token in the log');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('service account: a fresh token refused as well disables the channel', async () => {
  const sa = account({ projectId: 'proj-dead' });
  const s = await serve([vertexChannel('vx-dead', { service_account_file: sa.file, token_url: tok.url })]);
  const onIssue = tok.onIssue;
  tok.onIssue = () => {}; // the endpoint issues tokens the model endpoint does not accept
  try {
    const prompt = uniquePrompt('every token refused');
    const task = await expectFailed(s, { model: MODEL, prompt }, 80001, /refused the access token of channel vx-dead/);
    const calls = vfake.callsFor(prompt);
    assert.equal(calls.length, 2, 'once with the first token, once with a fresh one');
    assert.deepEqual(calls.map((c) => c.reply.status), [401, 401]);
    assert.notEqual(calls[0].headers.authorization, calls[1].headers.authorization);
    assert.equal(tok.forEmail(sa.email).length, 2);
    assert.deepEqual(attemptLog(s, task.id).map((a) => [a.channel, a.status]), [['vx-dead', 401], ['vx-dead', 401]]);
    assert.match(s.stderr(), /channel vx-dead disabled: the upstream refused its key \(HTTP 401\)/);
  } finally {
    tok.onIssue = onIssue;
  }
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

// A 401 on one of the n calls of an attempt: the refused call provably never ran, so the
// router asks again for the missing image, with a fresh token.
test('service account: a 401 on one of n=2 calls drops the token; the missing image comes with a new one', async () => {
  const sa = account({ projectId: 'proj-drop' });
  const s = await serve([vertexChannel('vx-drop', { service_account_file: sa.file, token_url: tok.url })]);
  const wantPath = vertexPath({ project: 'proj-drop', model: CATALOG_ID });
  const p1 = uniquePrompt('token drop 1');
  await expectCompleted(s, { model: MODEL, prompt: p1 });
  const [t1] = issuedTo(sa);

  const p2 = uniquePrompt('token drop 2, one call refused');
  let seen = 0; // the first of the two calls to be answered gets the 401
  vfake.script((rec) => (promptOf(rec) === p2 && ++seen === 1
    ? { error: [401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'] } : undefined));
  let r2;
  try {
    r2 = await expectCompleted(s, { model: MODEL, prompt: p2, n: 2 }, 2);
  } finally {
    vfake.script(null);
  }
  const c2 = vfake.callsFor(p2);
  assert.equal(c2.length, 3, 'two calls with the cached token, the refused one again with a new one');
  for (const c of c2.slice(0, 2)) assertGeminiRequest(c, { prompt: p2, path: wantPath, bearer: t1 });
  assert.equal(tok.forEmail(sa.email).length, 2, 'the refused token was dropped: a new exchange');
  const [, t2] = issuedTo(sa);
  assert.notEqual(t2, t1);
  assertGeminiRequest(c2[2], { prompt: p2, path: wantPath, bearer: t2 });
  assert.deepEqual(c2.map((c) => c.reply.status).sort(), [200, 200, 401]);
  const got = r2.images.map(sha256).sort();
  assert.deepEqual(got, c2.filter((c) => c.reply.status === 200).map((c) => sha256(c.reply.images[0])).sort());
  assert.doesNotMatch(s.stderr(), /channel vx-drop disabled/);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('fixed access token: the project path with Bearer, no exchange; references as inlineData', async () => {
  const before = tok.exchanges.length;
  const s = await serve([vertexChannel('vx-fixed', { project: 'proj-fixed', access_token: FIXED_TOKEN })], ['--fetch-allow-loopback']);
  const wantPath = vertexPath({ project: 'proj-fixed', location: 'global', model: CATALOG_ID });
  const prompt = uniquePrompt('fixed token, with a reference');
  const { images } = await expectCompleted(s, { model: MODEL, prompt, image_urls: [ref.url('/a.png')] });
  const calls = vfake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGeminiRequest(calls[0], { prompt, ratio: '4:3', refs: [PNG_640x480], path: wantPath, bearer: FIXED_TOKEN });
  assert.equal(sha256(images[0]), sha256(calls[0].reply.images[0]));

  const p2 = uniquePrompt('fixed token, two images');
  const two = await expectCompleted(s, { model: MODEL, prompt: p2, size: '21:9', n: 2 }, 2);
  assert.equal(vfake.callsFor(p2).length, 2);
  for (const c of vfake.callsFor(p2)) assertGeminiRequest(c, { prompt: p2, ratio: '21:9', path: wantPath, bearer: FIXED_TOKEN });
  assert.deepEqual(two.images.map(sha256).sort(), vfake.callsFor(p2).map((c) => sha256(c.reply.images[0])).sort());
  assert.equal(tok.exchanges.length, before, 'a fixed token needs no exchange');
  assert.ok(!s.stderr().includes(FIXED_TOKEN), 'the token is never logged');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('express mode: the publisher path with x-goog-api-key, no Authorization; "models" names the upstream model', async () => {
  const s = await serve([vertexChannel('vx-express', { keys: [EXPRESS_KEY], models: { [CATALOG_ID]: 'gemini-2.5-flash-image-preview' } })]);
  const wantPath = vertexPath({ model: 'gemini-2.5-flash-image-preview' });
  assert.equal(wantPath, '/v1/publishers/google/models/gemini-2.5-flash-image-preview:generateContent');
  const prompt = uniquePrompt('express mode');
  const { images } = await expectCompleted(s, { model: MODEL, prompt, size: '2:3' });
  const calls = vfake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assertGeminiRequest(calls[0], { prompt, ratio: '2:3', path: wantPath, key: EXPRESS_KEY });
  assert.equal(calls[0].headers.authorization, undefined);
  assert.equal(sha256(images[0]), sha256(calls[0].reply.images[0]));
  // 503 then success, as on the Gemini API.
  const p2 = uniquePrompt('express, overloaded once [[503x1]]');
  const r2 = await expectCompleted(s, { model: MODEL, prompt: p2 });
  assert.deepEqual(vfake.callsFor(p2).map((c) => c.reply.status), [503, 200]);
  assert.deepEqual(attemptLog(s, r2.task.id).map((a) => [a.attempt, a.status]), [[1, 503], [2, 200]]);
  assert.ok(!s.stderr().includes(EXPRESS_KEY), 'the key is never logged');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('express mode with a key the upstream refuses (400 API_KEY_INVALID): 80001, the channel is disabled', async () => {
  const s = await serve([vertexChannel('vx-badkey', { keys: ['vx-not-a-valid-key-0000'] })]);
  const prompt = uniquePrompt('express, bad key');
  const task = await expectFailed(s, { model: MODEL, prompt }, 80001, /refused the API key of channel vx-badkey/);
  assert.ok(!task.error.message.includes('vx-not-a-valid-key-0000'));
  const calls = vfake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].denied, true);
  assert.equal(calls[0].reply.status, 400);
  assert.match(s.stderr(), /channel vx-badkey disabled/);
  assert.ok(!s.stderr().includes('vx-not-a-valid-key-0000'));
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('the token endpoint refuses the JWT (a key it does not know): 80001, no model call, the channel is disabled', async () => {
  const sa = account({ projectId: 'proj-untrusted' });
  // Sign with another key than the one the endpoint trusts for this account.
  const impostor = makeServiceAccount({ tokenUri: tok.url, projectId: 'proj-untrusted', email: sa.email });
  tok.trust({ ...sa, keyId: impostor.keyId }); // the kid matches, the signature does not
  const s = await serve([vertexChannel('vx-untrusted', { service_account_file: impostor.file, token_url: tok.url })]);
  const before = vfake.requests.length;
  const prompt = uniquePrompt('untrusted key');
  const task = await expectFailed(s, { model: MODEL, prompt }, 80001, /invalid_grant/);
  assert.match(task.error.message, /Invalid JWT Signature/);
  const ex = tok.forEmail(sa.email);
  assert.equal(ex.length, 1, 'a refused credential is not retried');
  assert.equal(ex[0].sigOk, false);
  assert.equal(ex[0].reply.status, 400);
  assert.equal(vfake.requests.length, before, 'no model call without a token');
  assert.match(s.stderr(), /channel vx-untrusted disabled/);
  await expectFailed(s, { model: MODEL, prompt: uniquePrompt('untrusted, later') }, 80001, /no channel is available/);
  assert.equal(tok.forEmail(sa.email).length, 1, 'nor asked again');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('the token endpoint answers 503: retried (a new exchange per attempt), then 80001; once it recovers, tasks complete', async () => {
  const sa = account({ projectId: 'proj-flaky' });
  const s = await serve([vertexChannel('vx-flaky', { service_account_file: sa.file, token_url: tok.url })]);
  tok.script((ex) => (ex.claims?.iss === sa.email ? { status: 503, json: { error: 'temporarily_unavailable', error_description: 'try later' } } : undefined));
  const before = vfake.requests.length;
  let task;
  try {
    task = await expectFailed(s, { model: MODEL, prompt: uniquePrompt('token endpoint 503') }, 80001, /token endpoint answered HTTP 503/);
  } finally {
    tok.script(null);
  }
  assert.equal(tok.forEmail(sa.email).length, ATTEMPTS, 'one exchange per attempt');
  assert.equal(vfake.requests.length, before, 'no model call without a token');
  assert.deepEqual(attemptLog(s, task.id).map((a) => [a.attempt, a.status, a.result]),
    Array.from({ length: ATTEMPTS }, (_, i) => [i + 1, 0, 'provider_submit_failed']));
  assert.doesNotMatch(s.stderr(), /channel vx-flaky disabled/);

  const prompt = uniquePrompt('token endpoint recovered');
  await expectCompleted(s, { model: MODEL, prompt });
  assert.equal(tok.forEmail(sa.email).length, ATTEMPTS + 1);
  assertGeminiRequest(vfake.callsFor(prompt)[0], { prompt, path: vertexPath({ project: 'proj-flaky', model: CATALOG_ID }), bearer: issuedTo(sa)[0] });
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('the token endpoint is down (nothing listens): 80001 naming it; the server stays healthy', async () => {
  const dead = await startTokenServer();
  const deadUrl = dead.url;
  await dead.close();
  const sa = makeServiceAccount({ tokenUri: deadUrl, projectId: 'proj-down' });
  const s = await serve([vertexChannel('vx-down', { service_account_file: sa.file, token_url: deadUrl })]);
  const before = vfake.requests.length;
  const t0 = Date.now();
  const task = await expectFailed(s, { model: MODEL, prompt: uniquePrompt('token endpoint down') }, 80001, /token endpoint could not be reached/);
  assert.ok(Date.now() - t0 < scaled(5000), `took ${Date.now() - t0} ms`);
  assert.equal(attemptLog(s, task.id).length, ATTEMPTS, 'retried: nothing went upstream');
  assert.equal(vfake.requests.length, before);
  const h = await curl([`${s.base}/healthz`]);
  assert.equal(h.status, 200);
  // Other work still runs: a model no channel serves goes offline.
  const off = await submit(s, { model: 'gemini-3-pro-image-preview', prompt: uniquePrompt('offline meanwhile') });
  assert.equal(off.status, 200, off.body);
  assert.equal((await poll(s, off.json.id)).json.status, 'completed');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('a service-account file that is not a key (channel without "project"): 80001 naming it; the channel is disabled', async () => {
  const sa = makeServiceAccount({ tokenUri: tok.url });
  fs.writeFileSync(sa.file, JSON.stringify({ ...sa.json, private_key: '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' }));
  const s = await serve([vertexChannel('vx-badfile', { service_account_file: sa.file, token_url: tok.url })]);
  assert.match(s.stderr(), /vertex: channel vx-badfile: the private_key of \S+ is not an RSA private key/);
  const before = [tok.exchanges.length, vfake.requests.length];
  const task = await expectFailed(s, { model: MODEL, prompt: uniquePrompt('bad key file') }, 80001,
    /^vertex: channel vx-badfile: no access token: the private_key of \S+sa\.json is not an RSA private key/);
  assert.deepEqual(attemptLog(s, task.id).map((a) => [a.channel, a.attempt, a.status, a.result]),
    [['vx-badfile', 1, 0, 'provider_submit_failed']], 'the attempt is recorded');
  assert.match(s.stderr(), /channel vx-badfile disabled/);
  await expectFailed(s, { model: MODEL, prompt: uniquePrompt('bad key file, later') }, 80001, /no channel is available/);
  assert.deepEqual([tok.exchanges.length, vfake.requests.length], before, 'nothing was sent anywhere');
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

test('SIGTERM while tasks wait on a stalled token exchange: the server stops after --grace, the tasks are kept', async () => {
  const sa = account({ projectId: 'proj-stop' });
  const s = await serve([vertexChannel('vx-stop', { service_account_file: sa.file, token_url: tok.url })], ['--grace', '1']);
  tok.script((ex) => (ex.claims?.iss === sa.email ? { stall: true } : undefined));
  try {
    const subs = await Promise.all([0, 1].map((i) => submit(s, { model: MODEL, prompt: uniquePrompt(`stop while waiting ${i}`) })));
    for (const r of subs) assert.equal(r.status, 200, r.body);
    const deadline = Date.now() + scaled(5000);
    while (tok.forEmail(sa.email).length === 0 && Date.now() < deadline) await sleep(20);
    await sleep(200);
    assert.equal(tok.forEmail(sa.email).length, 1, 'both tasks wait on one exchange');
    const t0 = Date.now();
    assert.deepEqual(await s.stop('SIGTERM', scaled(10000)), { code: 0, signal: null });
    assert.ok(Date.now() - t0 < scaled(4000), `stopped ${Date.now() - t0} ms after SIGTERM with --grace 1 (the exchange would take 30 s)`);
    for (const r of subs) assert.match(s.stderr(), new RegExp(`task ${r.json.id.slice(5)} put back in the queue`));
  } finally {
    tok.script(null);
  }
});

test('no server ever logged a secret: access tokens, JWTs, private keys, the fixed token, API keys', () => {
  const all = [...secrets, 'vx-not-a-valid-key-0000', ...tok.issued.map((i) => i.token),
    ...tok.exchanges.filter((e) => e.form.assertion).map((e) => e.form.assertion.split('.')[2].slice(0, 40))];
  assert.ok(started.length >= 10 && tok.issued.length >= 5, `${started.length} servers, ${tok.issued.length} tokens`);
  for (const s of started) {
    assert.match(s.stderr(), / debug /, 'debug logging was on');
    for (const x of all) assert.ok(!s.stderr().includes(x), `a secret in the log of the server on port ${s.port}`);
  }
});

// 500: the Gemini API dialect (seed 003, wire-formats.md §1): generateContent and
// streamGenerateContent answered synchronously from a stored task, the models list and get,
// Google's keys, casing, error envelope and safety outcomes; driven with curl and with Google's
// own SDK (@google/genai) changed only in base URL and key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { GoogleGenAI } from '@google/genai';
import {
  startServer, cleanup, curl, download, pngSize, getTask, runCli, RE, pmap, sleep, t,
} from './lib/harness.mjs';
import { startRefServer, makePng, PNG_640x480 } from './lib/refserver.mjs';
import { startFakeGemini, GEMINI_SIZES, geminiPng } from './lib/fakegemini.mjs';
import { geminiChannel, writeConfig, fastRouter, sha256, uniquePrompt, haveSqlite, CATALOG_ID } from './lib/upstream.mjs';

const MODEL = 'gemini-2.5-flash-image';
const PREVIEW = 'gemini-2.5-flash-image-preview';
const TOKENS = 1290;

let srv;      // offline provider (no channel)
let small;    // the same with a 200000-byte cap on references
let ref;      // reference images on loopback
let fake;     // a fake Gemini API upstream
let chan;     // a server with one Gemini channel pointing at the fake

before(async () => {
  ref = await startRefServer();
  fake = await startFakeGemini();
  srv = await startServer({ args: ['--fetch-allow-loopback'] });
  small = await startServer({ args: ['--ref-max-bytes', '200000'] });
  chan = await startServer({
    args: ['--config', writeConfig([geminiChannel('gem-a', fake)]), ...fastRouter({ attempts: 1 })],
  });
});
after(async () => {
  await cleanup();
  await ref?.close();
  await fake?.close();
});

/** POST /v1beta/models/{model}:{verb}[?query] with a JSON body; headers: extra curl -H args. */
function gen(server, model, body, { verb = 'generateContent', query = '', key = server.key, via = 'header', headers = [] } = {}) {
  const q = new URLSearchParams(query);
  if (key && via === 'query') q.set('key', key);
  const qs = q.toString() ? `?${q}` : '';
  const args = [`${server.base}/v1beta/models/${model}:${verb}${qs}`, '-H', 'Content-Type: application/json'];
  if (key && via === 'header') args.push('-H', `x-goog-api-key: ${key}`);
  if (key && via === 'bearer') args.push('-H', `Authorization: Bearer ${key}`);
  args.push(...headers, '--data-binary', '@-');
  return curl(args, { input: typeof body === 'string' ? body : JSON.stringify(body) });
}

function getJson(server, p, { key = server.key } = {}) {
  return curl([`${server.base}${p}`, ...(key ? ['-H', `x-goog-api-key: ${key}`] : [])]);
}

/** The task's row (dialect, state, request JSON parsed, ...) read with the sqlite3 shell. */
function taskRow(server, taskId) {
  const hex = taskId.replace(/^task_/, '');
  assert.match(hex, /^[0-9a-f]{32}$/);
  const out = execFileSync('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 5000',
    path.join(server.dataDir, 'imagegate.db'),
    `SELECT dialect, state, model, model_alias, request, err, err_message, usage_image_tokens, usage_images, offline FROM tasks WHERE id = '${hex}';`],
  { encoding: 'utf8' }).trim();
  const rows = out ? JSON.parse(out) : [];
  assert.equal(rows.length, 1, `task ${taskId} is stored`);
  rows[0].request = JSON.parse(rows[0].request);
  return rows[0];
}

/** The one image of a successful reply: the decoded bytes, checked as a PNG of w x h. */
function inlinePng(part, w, h) {
  assert.deepEqual(Object.keys(part), ['inlineData']);
  assert.deepEqual(Object.keys(part.inlineData), ['mimeType', 'data']);
  assert.equal(part.inlineData.mimeType, 'image/png');
  assert.match(part.inlineData.data, /^[A-Za-z0-9+/]+={0,2}$/, 'standard base64');
  const buf = Buffer.from(part.inlineData.data, 'base64');
  assert.deepEqual(pngSize(buf), { width: w, height: h });
  return buf;
}

function usage(promptTokens, images) {
  return {
    promptTokenCount: promptTokens, candidatesTokenCount: TOKENS * images, totalTokenCount: promptTokens + TOKENS * images,
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: promptTokens }],
    candidatesTokensDetails: [{ modality: 'IMAGE', tokenCount: TOKENS * images }],
  };
}

/** A successful offline reply with one image of the ratio's size: every header and field. */
function assertOneImage(r, { ratio = '1:1', modelVersion = MODEL } = {}) {
  assert.equal(r.status, 200, r.body.slice(0, 500));
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-request-id'], RE.requestId);
  assert.match(r.headers['x-imagegate-task-id'], RE.taskId);
  assert.equal(r.headers['x-imagegate-offline'], 'true');
  assert.deepEqual(Object.keys(r.json), ['candidates', 'usageMetadata', 'modelVersion', 'responseId']);
  assert.equal(r.json.responseId, r.headers['x-imagegate-task-id']);
  assert.equal(r.json.modelVersion, modelVersion);
  assert.equal(r.json.candidates.length, 1);
  const c = r.json.candidates[0];
  assert.deepEqual(Object.keys(c), ['content', 'finishReason', 'index']);
  assert.equal(c.finishReason, 'STOP');
  assert.equal(c.index, 0);
  assert.equal(c.content.role, 'model');
  assert.equal(c.content.parts.length, 1);
  const [w, h] = GEMINI_SIZES[ratio];
  const png = inlinePng(c.content.parts[0], w, h);
  assert.equal(r.json.usageMetadata.candidatesTokenCount, TOKENS);
  assert.deepEqual(r.json.usageMetadata, usage(r.json.usageMetadata.promptTokenCount, 1));
  assert.ok(r.json.usageMetadata.promptTokenCount >= 1);
  return png;
}

// ---- generateContent, offline provider ----------------------------------------------------

test('generateContent: Google\'s reply shape, the task id in header and responseId, a stored gemini task', async () => {
  const r = await gen(srv, MODEL, {
    contents: [{ role: 'user', parts: [{ text: 'a corgi astronaut on the moon' }] }],
    generationConfig: { responseModalities: ['TEXT', 'IMAGE'], imageConfig: { aspectRatio: '16:9' } },
  });
  const png = assertOneImage(r, { ratio: '16:9' });
  const id = r.headers['x-imagegate-task-id'];
  if (haveSqlite()) {
    const row = taskRow(srv, id);
    assert.equal(row.dialect, 'gemini');
    assert.equal(row.state, 'succeeded');
    assert.equal(row.model, MODEL);
    assert.equal(row.model_alias, MODEL);
    assert.equal(row.usage_images, 1);
    assert.equal(row.request.prompt, 'a corgi astronaut on the moon');
    assert.equal(row.request.ratio, '16:9');
    assert.equal(row.request.n, 1);
  }
  // Recoverable like any task: the same key polls it through reAPI and gets the same image.
  const p = await getTask(srv, id);
  assert.equal(p.status, 200);
  assert.equal(p.json.status, 'completed');
  const d = await download(p.json.output.image_urls[0]);
  assert.ok(d.bodyBuf.equals(png), 'the inline bytes are the stored result');
});

test('generateContent: every aspect ratio has its exact size; the key by ?key= and by Bearer', async () => {
  const ratios = Object.keys(GEMINI_SIZES);
  await pmap(ratios, 4, async (ratio, i) => {
    const r = await gen(srv, PREVIEW, {
      contents: [{ parts: [{ text: `tiles ${ratio}` }] }],
      generation_config: { image_config: { aspect_ratio: ratio } },
    }, { via: i % 2 ? 'query' : 'bearer' });
    assertOneImage(r, { ratio });
  });
});

test('camelCase and snake_case mixed in one body; passthroughs stored on the task', async () => {
  const r = await gen(srv, MODEL, {
    system_instruction: { parts: [{ text: 'You are a product photographer.' }, { text: 'Soft light.' }] },
    contents: [
      { role: 'user', parts: [{ text: 'an earlier turn' }] },
      { role: 'model', parts: [{ text: 'sure' }] },
      { role: 'user', parts: [{ text: 'a teapot' }, { text: 'on a marble table' }] },
    ],
    generationConfig: {
      response_modalities: ['Image', 'text'], temperature: 0.4, top_p: 0.9, topK: 32, seed: 7,
      candidate_count: 1, imageConfig: { aspect_ratio: '4:5', imageSize: '1k' },
    },
    safety_settings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', threshold: 'BLOCK_ONLY_HIGH' }],
  });
  assertOneImage(r, { ratio: '4:5' });
  if (haveSqlite()) {
    const q = taskRow(srv, r.headers['x-imagegate-task-id']).request;
    assert.equal(q.prompt, 'a teapot\non a marble table', 'the last user turn, parts joined by newlines');
    assert.equal(q.system, 'You are a product photographer.\nSoft light.');
    assert.equal(q.ratio, '4:5');
    assert.equal(q.resolution, '1K');
    assert.equal(q.temperature, 0.4);
    assert.equal(q.top_p, 0.9);
    assert.equal(q.top_k, 32);
    assert.equal(q.seed, 7);
    assert.deepEqual(JSON.parse(q.safety), [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', threshold: 'BLOCK_ONLY_HIGH' }]);
    assert.deepEqual(q.refs, []);
  }
});

test('inlineData and inline_data references: stored as blobs, the output takes the first one\'s ratio', async () => {
  const a = makePng(150, 100, (x, y) => [x & 0xff, y & 0xff, 90]);      // 3:2
  const b = makePng(60, 60, (x, y) => [10, x & 0xff, y & 0xff]);
  const r = await gen(srv, MODEL, {
    contents: [{ parts: [
      { text: 'blend these' },
      { inline_data: { mime_type: 'image/png', data: a.toString('base64') } },
      { inlineData: { mimeType: 'image/jpeg' /* wrong on purpose: the bytes decide */, data: b.toString('base64') } },
    ] }],
  });
  assertOneImage(r, { ratio: '3:2' });
  if (haveSqlite()) {
    const q = taskRow(srv, r.headers['x-imagegate-task-id']).request;
    assert.deepEqual(q.refs, [`blob:${sha256(a)}.png`, `blob:${sha256(b)}.png`]);
  }
  for (const buf of [a, b]) {
    const h = sha256(buf);
    const f = path.join(srv.dataDir, 'blobs', h.slice(0, 2), h.slice(2, 4), `${h}.png`);
    assert.ok(fs.readFileSync(f).equals(buf), `blob ${f} holds the reference`);
  }
});

test('fileData and image_url parts: fetched from public URLs; our own result URLs resolved without a download', async () => {
  // A result of ours, by URL (response_format=url), then given back as a reference.
  const first = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'a lighthouse' }] }], generationConfig: { imageConfig: { aspectRatio: '9:16' } } },
    { query: { response_format: 'url' } });
  assert.equal(first.status, 200, first.body.slice(0, 300));
  const fileData = first.json.candidates[0].content.parts[0].fileData;
  const hex = first.headers['x-imagegate-task-id'].slice(5);
  assert.deepEqual(fileData, { mimeType: 'image/png', fileUri: `${srv.base}/media/tasks/${hex}/0.png` });
  const img = await download(fileData.fileUri);
  assert.equal(img.status, 200);
  assert.deepEqual(pngSize(img.bodyBuf), { width: 768, height: 1344 });

  const before = ref.requests;
  const own = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'the same, at dusk' }, { fileData: { mimeType: 'image/png', fileUri: fileData.fileUri } }] }] });
  assertOneImage(own, { ratio: '9:16' });
  if (haveSqlite())
    assert.deepEqual(taskRow(srv, own.headers['x-imagegate-task-id']).request.refs, [`blob:${sha256(img.bodyBuf)}.png`]);

  const fetched = await gen(srv, MODEL, { contents: [{ parts: [
    { text: 'in watercolour' }, { file_data: { file_uri: ref.url('/a.png') } }, { image_url: ref.url('/b.png') },
  ] }] });
  assertOneImage(fetched, { ratio: '4:3' }); // 640x480: the first reference decides
  assert.equal(ref.hits('/a.png') >= 1 && ref.hits('/b.png') >= 1, true);
  assert.equal(ref.requests - before, 2, 'two downloads, none for our own URL');
  if (haveSqlite())
    assert.deepEqual(taskRow(srv, fetched.headers['x-imagegate-task-id']).request.refs, [ref.url('/a.png'), ref.url('/b.png')]);
});

test('candidateCount 2: two candidates, one image each, usage for two images', async () => {
  const r = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'two owls' }] }], generationConfig: { candidateCount: 2, imageConfig: { aspectRatio: '1:1' } } });
  assert.equal(r.status, 200, r.body.slice(0, 300));
  assert.equal(r.json.candidates.length, 2);
  r.json.candidates.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(c.finishReason, 'STOP');
    assert.equal(c.content.parts.length, 1);
    inlinePng(c.content.parts[0], 1024, 1024);
  });
  assert.deepEqual(r.json.usageMetadata, usage(r.json.usageMetadata.promptTokenCount, 2));
});

// ---- streaming ---------------------------------------------------------------------------

function sseEvents(body, { comments = 0 } = {}) {
  assert.ok(body.endsWith('\r\n\r\n'), 'the stream ends after a complete event');
  const keepAlive = /^(: keep-alive\n\n)*/.exec(body)[0];
  assert.equal(keepAlive.length / ': keep-alive\n\n'.length >= comments, true, `at least ${comments} keep-alive comments`);
  if (!comments) assert.equal(keepAlive, '');
  return body.slice(keepAlive.length).split('\r\n\r\n').filter((e) => e.length).map((e) => {
    assert.ok(e.startsWith('data: '), `an event is one data: line: ${e.slice(0, 40)}`);
    assert.ok(!e.slice(6).includes('\n'), 'one line per event');
    return JSON.parse(e.slice(6));
  });
}

test('streamGenerateContent?alt=sse: text/event-stream, whole GenerateContentResponse events, no [DONE]', async () => {
  const r = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'a kite over dunes' }] }], generationConfig: { imageConfig: { aspectRatio: '21:9' } } },
    { verb: 'streamGenerateContent', query: { alt: 'sse' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/event-stream');
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.match(r.headers['x-imagegate-task-id'], RE.taskId);
  assert.equal(r.headers['x-imagegate-offline'], 'true');
  assert.ok(!r.body.includes('[DONE]'));
  const events = sseEvents(r.body);
  assert.equal(events.length, 1, 'no text from the offline provider: one image event');
  const ev = events[0];
  assert.deepEqual(Object.keys(ev), ['candidates', 'usageMetadata', 'modelVersion', 'responseId']);
  assert.equal(ev.responseId, r.headers['x-imagegate-task-id']);
  assert.equal(ev.candidates[0].finishReason, 'STOP');
  inlinePng(ev.candidates[0].content.parts[0], 1536, 672);
  assert.deepEqual(ev.usageMetadata, usage(ev.usageMetadata.promptTokenCount, 1));
  if (haveSqlite()) assert.equal(taskRow(srv, ev.responseId).dialect, 'gemini');
});

test('a stream that waits sends SSE comments, more often than the idle timeout, until its events', async () => {
  const slow = await startServer({ args: ['--conn-timeout', '2', '--offline-latency-ms', String(t(3500))] });
  const r = await gen(slow, MODEL, { contents: [{ parts: [{ text: 'a slow tide' }] }] },
    { verb: 'streamGenerateContent', query: { alt: 'sse' } });
  assert.equal(r.status, 200);
  assert.equal(r.exitCode, 0, r.curlStderr);
  const events = sseEvents(r.body, { comments: 2 });
  assert.equal(events.length, 1);
  inlinePng(events[0].candidates[0].content.parts[0], 1024, 1024);
  await slow.stop();
});

test('streamGenerateContent without alt=sse: a JSON array of responses', async () => {
  const r = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'a pier' }] }] }, { verb: 'streamGenerateContent' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.ok(Array.isArray(r.json));
  assert.equal(r.json.length, 1);
  inlinePng(r.json[0].candidates[0].content.parts[0], 1024, 1024);
  assert.equal(r.json[0].responseId, r.headers['x-imagegate-task-id']);
});

// ---- keys and errors ---------------------------------------------------------------------

function assertGoogleError(r, code, status, message) {
  assert.equal(r.status, code, r.body.slice(0, 300));
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(Object.keys(r.json), ['error']);
  assert.deepEqual(Object.keys(r.json.error), ['code', 'message', 'status', 'details']);
  assert.equal(r.json.error.code, code);
  assert.equal(r.json.error.status, status);
  if (message instanceof RegExp) assert.match(r.json.error.message, message);
  else assert.equal(r.json.error.message, message);
  const info = r.json.error.details.at(-1);
  assert.deepEqual(info, { '@type': 'type.googleapis.com/google.rpc.RequestInfo', requestId: r.headers['x-request-id'] });
}

test('keys: a bad key is 400 API_KEY_INVALID as Google answers it; none is 403; on every route', async () => {
  const body = { contents: [{ parts: [{ text: 'x' }] }] };
  const bad = 'igk_' + 'A'.repeat(49);
  for (const r of [
    await gen(srv, MODEL, body, { key: bad }),
    await gen(srv, MODEL, body, { key: bad, via: 'query' }),
    await gen(srv, MODEL, body, { key: `${srv.key}x`, via: 'bearer' }),
    await gen(srv, MODEL, body, { key: bad, verb: 'streamGenerateContent', query: { alt: 'sse' } }),
    await getJson(srv, '/v1beta/models', { key: bad }),
    await getJson(srv, `/v1beta/models/${MODEL}`, { key: bad }),
  ]) {
    assertGoogleError(r, 400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.');
    assert.deepEqual(r.json.error.details[0], {
      '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com',
      metadata: { service: 'generativelanguage.googleapis.com' },
    });
  }
  for (const r of [await gen(srv, MODEL, body, { key: null }), await getJson(srv, '/v1beta/models', { key: null })]) {
    assertGoogleError(r, 403, 'PERMISSION_DENIED', /unregistered callers/);
    assert.equal(r.json.error.details.length, 1);
  }
});

test('validation errors: Google\'s envelope and statuses, and nothing is stored', async () => {
  const count = () => (haveSqlite() ? Number(execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000',
    path.join(srv.dataDir, 'imagegate.db'), "SELECT count(*) FROM tasks WHERE dialect = 'gemini';"], { encoding: 'utf8' })) : 0);
  const n0 = count();
  const text = { text: 'a cat' };
  const notImage = Buffer.from('plain text, not an image at all').toString('base64');
  const big = makePng(400, 400, () => [Math.random() * 255, Math.random() * 255, Math.random() * 255]); // > 200000 bytes
  assert.ok(big.length > 200000);
  const cases = [
    ['not JSON', '{"contents": [', 400, /Invalid JSON payload/],
    ['an array', '[]', 400, /Invalid JSON payload/],
    ['no contents', {}, 400, '* GenerateContentRequest.contents: contents is not specified'],
    ['empty parts', { contents: [{ parts: [] }] }, 400, /contents\[0\]\.parts: contents\.parts must not be empty/],
    ['bad role', { contents: [{ role: 'system', parts: [text] }] }, 400, 'Please use a valid role: user, model.'],
    ['no text', { contents: [{ parts: [{ image_url: ref.url('/a.png') }] }] }, 400, /needs a text part/],
    ['bad ratio', { contents: [{ parts: [text] }], generationConfig: { imageConfig: { aspectRatio: '7:3' } } }, 400, /aspectRatio must be one of 1:1, 2:3, /],
    ['bad size', { contents: [{ parts: [text] }], generationConfig: { imageConfig: { imageSize: '2K' } } }, 400, /imageSize must be 1K for gemini-2\.5-flash-image/],
    ['temperature', { contents: [{ parts: [text] }], generationConfig: { temperature: 2.5 } }, 400, /temperature must be a number from 0 to 2/],
    ['topP', { contents: [{ parts: [text] }], generationConfig: { topP: -0.1 } }, 400, /topP must be a number from 0 to 1/],
    ['candidateCount', { contents: [{ parts: [text] }], generationConfig: { candidateCount: 5 } }, 400, /candidateCount must be a whole number from 1 to 4/],
    ['text only', { contents: [{ parts: [text] }], generationConfig: { responseModalities: ['TEXT'] } }, 400, /must include IMAGE/],
    ['audio', { contents: [{ parts: [text] }], generationConfig: { responseModalities: ['AUDIO', 'IMAGE'] } }, 400, /only TEXT and IMAGE/],
    ['not an image', { contents: [{ parts: [text, { inlineData: { mimeType: 'image/png', data: notImage } }] }] }, 400, /parts\[1\]\.inlineData: not a PNG, JPEG, WebP, HEIC or AVIF image/],
    ['bad base64', { contents: [{ parts: [text, { inlineData: { mimeType: 'image/png', data: 'iVBOR*w0' } }] }] }, 400, /Base64 decoding failed/],
    ['too many', { contents: [{ parts: [text, ...Array.from({ length: 15 }, (_, i) => ({ fileData: { fileUri: ref.url(`/img/${i}.png`) } }))] }] }, 400, /at most 14 reference images/],
    ['ftp', { contents: [{ parts: [text, { fileData: { fileUri: 'ftp://example.com/a.png' } }] }] }, 400, /fileData\.fileUri/],
    ['unknown own media', { contents: [{ parts: [text, { fileData: { fileUri: `${srv.base}/media/tasks/${'0'.repeat(32)}/0.png` } }] }] }, 400, /names no stored result/],
    ['function call', { contents: [{ parts: [text, { functionCall: { name: 'f' } }] }] }, 400, /only text, inlineData, fileData and image_url parts/],
  ];
  for (const [name, body, code, msg] of cases) {
    const r = await gen(srv, MODEL, body);
    assert.equal(r.status, code, `${name}: ${r.body.slice(0, 300)}`);
    assertGoogleError(r, code, 'INVALID_ARGUMENT', msg);
  }
  // Over --ref-max-bytes: refused at once, inline or as one of our own results.
  const tooBig = await gen(small, MODEL, { contents: [{ parts: [text, { inlineData: { mimeType: 'image/png', data: big.toString('base64') } }] }] });
  assertGoogleError(tooBig, 400, 'INVALID_ARGUMENT', 'contents[0].parts[1].inlineData: the image is larger than 200000 bytes');
  const res = await gen(small, MODEL, { contents: [{ parts: [text] }] }, { query: { response_format: 'url' } });
  const uri = res.json.candidates[0].content.parts[0].fileData.fileUri;
  assert.ok((await download(uri)).bodyBuf.length > 200000, 'a 1024x1024 result is over the cap');
  const ownBig = await gen(small, MODEL, { contents: [{ parts: [text, { fileData: { fileUri: uri } }] }] });
  assertGoogleError(ownBig, 400, 'INVALID_ARGUMENT', 'contents[0].parts[1].fileData.fileUri: the image is larger than 200000 bytes');
  const nf = await gen(srv, 'gemini-9-ultra', { contents: [{ parts: [text] }] });
  assertGoogleError(nf, 404, 'NOT_FOUND', 'models/gemini-9-ultra is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.');
  const rf = await gen(srv, MODEL, { contents: [{ parts: [text] }] }, { query: { response_format: 'png' } });
  assertGoogleError(rf, 400, 'INVALID_ARGUMENT', 'response_format must be url or b64_json');
  const method = await curl([`${srv.base}/v1beta/models`, '-X', 'POST', '-H', `x-goog-api-key: ${srv.key}`, '-d', '{}']);
  assertGoogleError(method, 405, 'UNIMPLEMENTED', /accepts GET only/);
  assert.equal(method.headers.allow, 'GET');
  assert.equal(count(), n0, 'no task was stored for a refused request');
});

test('credits: a metered key is held and charged like any task; one that cannot pay gets 402 and nothing is stored', async () => {
  const sql = (q) => execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(srv.dataDir, 'imagegate.db'), q],
    { encoding: 'utf8' }).trim();
  const made = runCli(['keys', 'create', '--data', srv.dataDir, '--name', 'gemini-metered', '--credits', '0.05']);
  assert.equal(made.code, 0, made.stderr);
  const key = made.stdout.trim();
  const id = Number(sql("SELECT max(id) FROM keys WHERE name = 'gemini-metered'"));
  const price = 39000; // gemini-2.5-flash-image, 1K, micro-dollars
  const ok = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'a paid picture' }] }] }, { key });
  assertOneImage(ok);
  const hex = ok.headers['x-imagegate-task-id'].slice(5);
  assert.equal(Number(sql(`SELECT credits FROM keys WHERE id = ${id}`)), 50000 - price);
  assert.deepEqual(sql(`SELECT kind || ':' || amount FROM ledger WHERE task_id = '${hex}' ORDER BY id`).split('\n'),
    [`hold:${-price}`, `release:${price}`, `capture:${-price}`]);
  const tasks = Number(sql('SELECT count(*) FROM tasks'));
  for (const verb of ['generateContent', 'streamGenerateContent']) {
    const r = await gen(srv, MODEL, { contents: [{ parts: [{ text: 'one too many' }] }] }, { key, verb, query: { alt: 'sse' } });
    assertGoogleError(r, 402, 'FAILED_PRECONDITION', 'insufficient credits: this request holds $0.039000');
    assert.equal(r.headers['x-imagegate-task-id'], undefined, 'no task exists');
  }
  assert.equal(Number(sql('SELECT count(*) FROM tasks')), tasks, 'the refused calls stored no task');
});

test('admission: a key without the generate scope, a model the key may not use, a request rate', async () => {
  const sql = (q) => execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(srv.dataDir, 'imagegate.db'), q],
    { encoding: 'utf8' }).trim();
  const mk = (...args) => {
    const r = runCli(['keys', 'create', '--data', srv.dataDir, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const body = { contents: [{ parts: [{ text: 'admitted?' }] }] };
  const tasks = Number(sql('SELECT count(*) FROM tasks'));
  const admin = mk('--name', 'gemini-admin-only', '--scopes', 'admin');
  assertGoogleError(await gen(srv, MODEL, body, { key: admin }), 403, 'PERMISSION_DENIED',
    'this API key may not generate images (it has no generate scope)');
  const pro = mk('--name', 'gemini-pro-only', '--models', 'gemini-3-pro-image-preview');
  assertGoogleError(await gen(srv, PREVIEW, body, { key: pro }), 403, 'PERMISSION_DENIED',
    `models/${PREVIEW}: this API key may not use this model`);
  assert.equal(Number(sql('SELECT count(*) FROM tasks')), tasks, 'nothing stored for a refused call');

  // A request rate of one a minute, no burst: the second call is refused before anything.
  const lim = await startServer({ args: ['--rate-rpm', '1', '--rate-burst', '1'] });
  const made = runCli(['keys', 'create', '--data', lim.dataDir, '--name', 'one-per-minute']);
  assert.equal(made.code, 0, made.stderr);
  const slow = made.stdout.trim();
  assertOneImage(await gen(lim, MODEL, body, { key: slow }));
  const second = await gen(lim, MODEL, body, { key: slow });
  assertGoogleError(second, 429, 'RESOURCE_EXHAUSTED', /^Resource has been exhausted: this key may make 1 requests per minute; retry in \d+ s$/);
  assert.match(second.headers['retry-after'], /^[1-9]\d*$/);
  await lim.stop();
});

// ---- models --------------------------------------------------------------------------------

test('models list: pages of pageSize with an opaque nextPageToken; get by any name', async () => {
  const all = await getJson(srv, '/v1beta/models');
  assert.equal(all.status, 200);
  assert.deepEqual(Object.keys(all.json), ['models'], 'one page: no nextPageToken');
  const names = all.json.models.map((m) => m.name);
  assert.ok(names.includes(`models/${MODEL}`) && names.includes(`models/${PREVIEW}`));
  assert.ok(names.includes('models/gemini-3-pro-image-preview'));
  assert.equal(new Set(names).size, names.length);
  const m = all.json.models.find((x) => x.name === `models/${PREVIEW}`);
  assert.deepEqual(m, {
    name: `models/${PREVIEW}`, baseModelId: MODEL, version: '001', displayName: 'Gemini 2.5 Flash Image (Nano Banana)',
    description: 'Fast, cost-efficient image generation and editing; 1K only.', inputTokenLimit: 32768, outputTokenLimit: 32768,
    supportedGenerationMethods: ['generateContent', 'streamGenerateContent'], temperature: 1, topP: 0.95, topK: 64,
    maxTemperature: 2, thinking: false,
  });
  const paged = [];
  let token;
  let pages = 0;
  do {
    const r = await getJson(srv, `/v1beta/models?pageSize=3${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`);
    assert.equal(r.status, 200, r.body.slice(0, 300));
    assert.ok(r.json.models.length <= 3 && r.json.models.length > 0);
    paged.push(...r.json.models.map((x) => x.name));
    token = r.json.nextPageToken;
    pages++;
  } while (token);
  assert.deepEqual(paged, names);
  assert.equal(pages, Math.ceil(names.length / 3));
  const coerced = await getJson(srv, '/v1beta/models?pageSize=5000');
  assert.equal(coerced.json.models.length, names.length);
  assertGoogleError(await getJson(srv, '/v1beta/models?pageToken=bogus'), 400, 'INVALID_ARGUMENT', 'Invalid page token.');
  assertGoogleError(await getJson(srv, '/v1beta/models?pageSize=-1'), 400, 'INVALID_ARGUMENT', /pageSize/);

  const g = await getJson(srv, `/v1beta/models/${PREVIEW}`);
  assert.equal(g.status, 200);
  assert.deepEqual(g.json, m);
  assertGoogleError(await getJson(srv, '/v1beta/models/nope'), 404, 'NOT_FOUND', /^models\/nope is not found for API version v1beta/);
});

// ---- a Gemini channel: what the upstream says, as Google says it ---------------------------

test('Gemini channel: text and image parts, usage and modelVersion from the upstream', async () => {
  const prompt = uniquePrompt('a fox [[two-images]]');
  const r = await gen(chan, PREVIEW, { contents: [{ parts: [{ text: prompt }] }], generationConfig: { imageConfig: { aspectRatio: '3:4' } } });
  assert.equal(r.status, 200, r.body.slice(0, 400));
  assert.equal(r.headers['x-imagegate-offline'], undefined);
  const parts = r.json.candidates[0].content.parts;
  assert.equal(parts.length, 3);
  assert.deepEqual(parts[0], { text: 'Here you go' });
  assert.ok(inlinePng(parts[1], 864, 1184).equals(geminiPng('3:4', 0)));
  assert.ok(inlinePng(parts[2], 864, 1184).equals(geminiPng('3:4', 1)));
  assert.equal(r.json.modelVersion, 'gemini-2.5-flash-image');
  assert.equal(r.json.usageMetadata.candidatesTokensDetails[0].tokenCount, 2 * TOKENS);
  assert.equal(r.json.usageMetadata.promptTokenCount, 17);
  const calls = fake.callsFor(prompt);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].path, `/v1beta/models/${CATALOG_ID}:generateContent`);
  // The stream of the same: the text first, then each image in its own event.
  const s = await gen(chan, PREVIEW, { contents: [{ parts: [{ text: uniquePrompt('a fox [[two-images]]') }] }] },
    { verb: 'streamGenerateContent', query: { alt: 'sse' } });
  const events = sseEvents(s.body);
  assert.equal(events.length, 3);
  assert.deepEqual(events[0].candidates[0].content.parts, [{ text: 'Here you go' }]);
  assert.equal(events[0].candidates[0].finishReason, undefined);
  assert.equal(events[0].usageMetadata, undefined);
  inlinePng(events[1].candidates[0].content.parts[0], 1024, 1024);
  assert.equal(events[1].candidates[0].finishReason, undefined);
  inlinePng(events[2].candidates[0].content.parts[0], 1024, 1024);
  assert.equal(events[2].candidates[0].finishReason, 'STOP');
  assert.equal(events[2].usageMetadata.candidatesTokensDetails[0].tokenCount, 2 * TOKENS);
  for (const e of events) assert.equal(e.responseId, s.headers['x-imagegate-task-id']);
});

test('Gemini channel: systemInstruction, safetySettings, topK and seed reach the upstream as sent', async () => {
  const prompt = uniquePrompt('a red kite');
  const safety = [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', threshold: 'BLOCK_ONLY_HIGH' }];
  const r = await gen(chan, MODEL, {
    systemInstruction: { parts: [{ text: 'You are a product photographer.' }] },
    contents: [{ parts: [{ text: prompt }] }],
    generationConfig: { topK: 32, seed: 7, temperature: 0.5, imageConfig: { aspectRatio: '1:1' } },
    safety_settings: safety,
  });
  assert.equal(r.status, 200, r.body.slice(0, 400));
  const [rec] = fake.callsFor(prompt);
  assert.deepEqual(rec.body, {
    contents: [{ role: 'user', parts: [{ text: prompt }] }],
    generationConfig: { responseModalities: ['TEXT', 'IMAGE'], temperature: 0.5, topK: 32, seed: 7, imageConfig: { aspectRatio: '1:1' } },
    systemInstruction: { parts: [{ text: 'You are a product photographer.' }] },
    safetySettings: safety,
  });
});

test('Gemini channel: safety outcomes are HTTP 200 with finishReason or promptFeedback.blockReason', async () => {
  const fin = await gen(chan, MODEL, { contents: [{ parts: [{ text: uniquePrompt('x [[safety-finish]]') }] }] });
  assert.equal(fin.status, 200, fin.body.slice(0, 300));
  assert.deepEqual(Object.keys(fin.json), ['candidates', 'usageMetadata', 'modelVersion', 'responseId']);
  assert.deepEqual(fin.json.candidates, [{ finishReason: 'IMAGE_SAFETY', index: 0 }]);
  assert.equal(fin.json.responseId, fin.headers['x-imagegate-task-id']);
  const blocked = await gen(chan, MODEL, { contents: [{ parts: [{ text: uniquePrompt('x [[safety-prompt]]') }] }] });
  assert.equal(blocked.status, 200, blocked.body.slice(0, 300));
  assert.deepEqual(Object.keys(blocked.json), ['promptFeedback', 'usageMetadata', 'modelVersion', 'responseId']);
  assert.deepEqual(blocked.json.promptFeedback, { blockReason: 'PROHIBITED_CONTENT' });
  assert.equal(blocked.json.candidates, undefined);
  const sse = await gen(chan, MODEL, { contents: [{ parts: [{ text: uniquePrompt('x [[safety-prompt]]') }] }] },
    { verb: 'streamGenerateContent', query: { alt: 'sse' } });
  assert.equal(sse.status, 200);
  assert.deepEqual(sseEvents(sse.body).map((e) => e.promptFeedback), [{ blockReason: 'PROHIBITED_CONTENT' }]);
  if (haveSqlite()) {
    const row = taskRow(chan, blocked.headers['x-imagegate-task-id']);
    assert.equal(row.dialect, 'gemini');
    assert.equal(row.state, 'failed');
    assert.equal(row.err, 'moderated');
  }
});

test('Gemini channel: an upstream failure is Google\'s error envelope; in a stream, an error event', async () => {
  const r = await gen(chan, MODEL, { contents: [{ parts: [{ text: uniquePrompt('x [[always503]]') }] }] });
  assertGoogleError(r, 502, 'UNAVAILABLE', /overloaded|upstream/i);
  assert.match(r.headers['x-imagegate-task-id'], RE.taskId, 'the failed task is named');
  if (haveSqlite()) assert.equal(taskRow(chan, r.headers['x-imagegate-task-id']).state, 'failed');
  const s = await gen(chan, MODEL, { contents: [{ parts: [{ text: uniquePrompt('x [[always503]]') }] }] },
    { verb: 'streamGenerateContent', query: { alt: 'sse' } });
  assert.equal(s.status, 200, 'the stream had begun');
  const events = sseEvents(s.body);
  assert.equal(events.length, 1);
  assert.equal(events[0].error.code, 502);
  assert.equal(events[0].error.status, 'UNAVAILABLE');
});

test('Gemini channel: an inline reference reaches the upstream byte for byte; text without an image is an error', async () => {
  const png = makePng(320, 240, (x, y) => [x & 0xff, 40, y & 0xff]);
  const prompt = uniquePrompt('recolour this');
  const r = await gen(chan, MODEL, { contents: [{ parts: [{ text: prompt }, { inline_data: { mime_type: 'image/png', data: png.toString('base64') } }] }] });
  assert.equal(r.status, 200, r.body.slice(0, 300));
  const [rec] = fake.callsFor(prompt);
  // (Compared by hash: an assertion message never carries base64.)
  const digest = (parts) => parts.map((p) => (p.inlineData
    ? { inlineData: { mimeType: p.inlineData.mimeType, sha256: sha256(Buffer.from(p.inlineData.data, 'base64')) } } : p));
  assert.deepEqual(digest(rec.body.contents[0].parts), [{ text: prompt }, { inlineData: { mimeType: 'image/png', sha256: sha256(png) } }]);
  assert.equal(rec.body.contents[0].parts[1].inlineData.data === png.toString('base64'), true, 'standard base64 of the same bytes');
  assert.equal(rec.body.generationConfig.imageConfig.aspectRatio, '4:3', 'the reference\'s ratio');
  inlinePng(r.json.candidates[0].content.parts[1], 1184, 864);

  const t2 = await gen(chan, MODEL, { contents: [{ parts: [{ text: uniquePrompt('x [[text-only]]') }] }] });
  assertGoogleError(t2, 502, 'INTERNAL', "I can't draw that");
  if (haveSqlite()) assert.equal(taskRow(chan, t2.headers['x-imagegate-task-id']).err, 'provider_failed');
});

test('@google/genai against a Gemini channel: the text part, then each image in its own chunk', async () => {
  const ai = new GoogleGenAI({ apiKey: chan.key, httpOptions: { baseUrl: chan.base } });
  const chunks = [];
  for await (const c of await ai.models.generateContentStream({ model: PREVIEW, contents: uniquePrompt('owls [[two-images]]') }))
    chunks.push(c);
  assert.equal(chunks.length, 3);
  assert.equal(chunks[0].text, 'Here you go');
  assert.ok(Buffer.from(chunks[1].data, 'base64').equals(geminiPng('1:1', 0)));
  assert.ok(Buffer.from(chunks[2].data, 'base64').equals(geminiPng('1:1', 1)));
  assert.equal(chunks[2].candidates[0].finishReason, 'STOP');
  // The image tokens the upstream detailed, and the 16 it left undetailed: text.
  assert.equal(chunks[2].usageMetadata.candidatesTokenCount, 2 * TOKENS + 16);
  assert.deepEqual(chunks[2].usageMetadata.candidatesTokensDetails,
    [{ modality: 'IMAGE', tokenCount: 2 * TOKENS }, { modality: 'TEXT', tokenCount: 16 }]);
  const blocked = await ai.models.generateContent({ model: MODEL, contents: uniquePrompt('x [[safety-prompt]]') });
  assert.equal(blocked.promptFeedback.blockReason, 'PROHIBITED_CONTENT');
  assert.equal(blocked.candidates, undefined);
  assert.equal(blocked.data, undefined);
});

test('Idempotency-Key: a repeated call answers from the first call\'s task (one task, one charge, the same image)', async () => {
  const slow = await startServer({ args: ['--offline-latency-ms', String(t(800))] });
  const body = { contents: [{ parts: [{ text: 'only one lighthouse' }] }] };
  const idem = (k) => ({ headers: ['-H', `Idempotency-Key: ${k}`] });
  // two at once (the second waits for the first), then one after it ended
  const [a, b] = await Promise.all([gen(slow, MODEL, body, idem('g-1')), gen(slow, MODEL, body, idem('g-1'))]);
  const c = await gen(slow, MODEL, body, idem('g-1'));
  for (const r of [a, b, c]) {
    assert.equal(r.status, 200, r.body.slice(0, 300));
    assert.equal(r.json.responseId, a.json.responseId);
    assert.equal(r.headers['x-imagegate-task-id'], a.json.responseId);
    assert.equal(r.json.candidates[0].content.parts.at(-1).inlineData.data, a.json.candidates[0].content.parts.at(-1).inlineData.data);
  }
  assert.equal([a, b, c].filter((r) => r.headers['idempotent-replayed'] === 'true').length, 2);
  const count = (q) => Number(execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(slow.dataDir, 'imagegate.db'), q], { encoding: 'utf8' }).trim());
  assert.equal(count("SELECT count(*) FROM tasks WHERE dialect = 'gemini'"), 1);
  assert.equal(count("SELECT count(*) FROM ledger WHERE kind = 'capture'"), 1);
  // another body, or the same body streamed, with the key: another request, 422
  for (const d of [await gen(slow, MODEL, { contents: [{ parts: [{ text: 'another' }] }] }, idem('g-1')),
    await gen(slow, MODEL, body, { verb: 'streamGenerateContent', query: { alt: 'sse' }, ...idem('g-1') })]) {
    assert.equal(d.status, 422, d.body);
    assert.equal(d.json.error.status, 'ABORTED'); /* Google's status for a conflict */
    assert.match(d.json.error.message, /^this Idempotency-Key was used with a different request/);
  }
  // a stream replayed: the same task's events
  const s2 = await gen(slow, MODEL, body, { verb: 'streamGenerateContent', query: { alt: 'sse' }, ...idem('g-2') });
  assert.equal(s2.status, 200);
  assert.notEqual(s2.headers['x-imagegate-task-id'], a.json.responseId);
  const s3 = await gen(slow, MODEL, body, { verb: 'streamGenerateContent', query: { alt: 'sse' }, ...idem('g-2') });
  assert.equal(s3.headers['x-imagegate-task-id'], s2.headers['x-imagegate-task-id']);
  assert.equal(s3.headers['idempotent-replayed'], 'true');
  assert.deepEqual(sseEvents(s3.body).map((e) => e.responseId), sseEvents(s2.body).map((e) => e.responseId));
});

// ---- the wait ------------------------------------------------------------------------------

test('a client that goes away: the task still runs to the end and is recoverable', async () => {
  const slow = await startServer({ args: ['--offline-latency-ms', String(t(1500))] });
  const r = await gen(slow, MODEL, { contents: [{ parts: [{ text: 'patience' }] }] }, { headers: ['--max-time', '0.4'] })
    .catch((e) => e);
  assert.ok(!(r.status > 0), 'curl gave up before an answer');
  await sleep(t(2500));
  assert.ok(slow.running, 'the server is still up');
  assert.match(slow.stderr(), /gemini: task task_[0-9a-f]{32}: the client went away while waiting; the task goes on/);
  if (haveSqlite()) {
    const out = execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(slow.dataDir, 'imagegate.db'),
      "SELECT state FROM tasks WHERE dialect = 'gemini';"], { encoding: 'utf8' }).trim();
    assert.equal(out, 'succeeded');
  }
  const again = await gen(slow, MODEL, { contents: [{ parts: [{ text: 'patience' }] }] });
  assertOneImage(again);
});

test('a stream whose client goes away mid-wait: the server lets go of it and stops cleanly (no leak under ASan)', async () => {
  const s = await startServer({ args: ['--conn-timeout', '2', '--offline-latency-ms', String(t(4000))] });
  const r = await curl(['-N', '--max-time', '1.5', '-H', `x-goog-api-key: ${s.key}`, '-H', 'Content-Type: application/json',
    '--data-binary', JSON.stringify({ contents: [{ parts: [{ text: 'a stream left behind' }] }] }),
    `${s.base}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`], { allowNoResponse: true });
  assert.equal(r.status, 200, 'the stream had begun');
  assert.match(r.body, /^: keep-alive/m);
  await sleep(500);
  assert.match(s.stderr(), /the client went away while waiting; the task goes on/);
  // exit 0: under ASan+UBSan a leaked request fails the exit status
  assert.deepEqual(await s.stop('SIGTERM', t(15000)), { code: 0, signal: null });
});

test('a stop while a request waits: 503 UNAVAILABLE naming the task, which is back in the queue', async () => {
  const s = await startServer({ args: ['--offline-latency-ms', String(t(6000)), '--grace', '1'] });
  const pending = gen(s, MODEL, { contents: [{ parts: [{ text: 'interrupted' }] }] });
  await sleep(t(500));
  const stopping = s.stop('SIGTERM');
  const r = await pending;
  await stopping;
  assertGoogleError(r, 503, 'UNAVAILABLE', /^The task task_[0-9a-f]{32} is still queued/);
  const id = r.headers['x-imagegate-task-id'];
  assert.match(id, RE.taskId);
  assert.equal(r.json.error.message.slice(9, 46), id);
  if (haveSqlite()) {
    const row = taskRow(s, id);
    assert.equal(row.dialect, 'gemini');
    assert.equal(row.state, 'queued', 'given back for the next start');
  }
});

// ---- Google's SDK ------------------------------------------------------------------------

test('@google/genai: generateContent, inline image, stream, models.list/get, a bad key', async () => {
  const ai = new GoogleGenAI({ apiKey: srv.key, httpOptions: { baseUrl: srv.base } });
  const res = await ai.models.generateContent({
    model: MODEL, contents: 'a red fox in the snow',
    config: { responseModalities: ['TEXT', 'IMAGE'], imageConfig: { aspectRatio: '16:9' } },
  });
  assert.match(res.responseId, RE.taskId);
  assert.equal(res.modelVersion, MODEL);
  assert.equal(res.candidates[0].finishReason, 'STOP');
  assert.deepEqual(pngSize(Buffer.from(res.data, 'base64')), { width: 1344, height: 768 });
  assert.equal(res.usageMetadata.candidatesTokensDetails[0].tokenCount, TOKENS);
  if (haveSqlite()) {
    const row = taskRow(srv, res.responseId);
    assert.equal(row.dialect, 'gemini');
    assert.equal(row.state, 'succeeded');
    assert.equal(row.request.prompt, 'a red fox in the snow');
  }

  const edit = await ai.models.generateContent({
    model: PREVIEW,
    contents: [{ role: 'user', parts: [{ text: 'make it night' }, { inlineData: { mimeType: 'image/png', data: PNG_640x480.toString('base64') } }] }],
  });
  const part = edit.candidates[0].content.parts[0];
  assert.equal(part.inlineData.mimeType, 'image/png');
  assert.deepEqual(pngSize(Buffer.from(part.inlineData.data, 'base64')), { width: 1184, height: 864 }, '4:3 from the reference');
  if (haveSqlite())
    assert.deepEqual(taskRow(srv, edit.responseId).request.refs, [`blob:${sha256(PNG_640x480)}.png`]);

  const chunks = [];
  for await (const c of await ai.models.generateContentStream({ model: MODEL, contents: 'a stream of stars', config: { imageConfig: { aspectRatio: '2:3' } } }))
    chunks.push(c);
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0].candidates[0].finishReason, 'STOP');
  assert.deepEqual(pngSize(Buffer.from(chunks[0].data, 'base64')), { width: 832, height: 1248 });

  const names = [];
  for await (const m of await ai.models.list({ config: { pageSize: 4 } })) names.push(m.name);
  const direct = await getJson(srv, '/v1beta/models');
  assert.deepEqual(names, direct.json.models.map((m) => m.name));
  const got = await ai.models.get({ model: PREVIEW });
  assert.equal(got.name, `models/${PREVIEW}`);
  assert.equal(got.displayName, 'Gemini 2.5 Flash Image (Nano Banana)');
  assert.deepEqual(got.supportedActions, ['generateContent', 'streamGenerateContent']);

  const bad = new GoogleGenAI({ apiKey: 'igk_not-a-key', httpOptions: { baseUrl: srv.base } });
  await assert.rejects(bad.models.generateContent({ model: MODEL, contents: 'x' }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /API key not valid/);
    return true;
  });
  await assert.rejects(ai.models.generateContent({ model: 'gemini-9-ultra', contents: 'x' }), (e) => e.status === 404);
});

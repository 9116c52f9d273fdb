// upstream.mjs: what the channel tests share: config files naming fake Gemini upstreams, the
// fast router flags, and checks of tasks and of the requests the fake received.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { tmpDir, submit, poll, download, t } from './harness.mjs';

export const MODEL = 'gemini-2.5-flash-image-preview';      // reAPI's name (an alias)
export const OFFICIAL = 'gemini-2.5-flash-image-preview-official';
export const CATALOG_ID = 'gemini-2.5-flash-image';          // the catalog id and upstream name
export const UPSTREAM_PATH = `/v1beta/models/${CATALOG_ID}:generateContent`;

/** Router flags that keep retries fast. */
export function fastRouter({ attempts = 3, extra = [] } = {}) {
  return ['--upstream-max-attempts', String(attempts), '--upstream-backoff-base-ms', '50',
    '--upstream-backoff-max-ms', '200', ...extra];
}

/**
 * A gemini channel object pointing at a fake. The timeouts are generous (and scaled by the
 * multiplier) because on a loaded 2-core machine a fake sharing its process with curl clients
 * has been seen to accept a connection 2-3 s after the gateway's connect(); tests about
 * timeouts set timeout_ms themselves.
 */
export function geminiChannel(name, fake, over = {}) {
  return {
    name, type: 'gemini', base_url: fake.base, keys: [`test-key-${name.replace(/^gem-/, '')}`],
    priority: 10, weight: 1, official: true, timeout_ms: t(15000), connect_timeout_ms: t(5000),
    max_response_bytes: 5000000, max_concurrency: 0,
    models: { [CATALOG_ID]: CATALOG_ID },
    ...over,
  };
}

/**
 * Write {"channels": [...]} (plus extra options) to a temp file; its path. Refuses a channel
 * whose base_url is not loopback: test traffic never leaves the machine.
 */
export function writeConfig(channels, extra = {}) {
  for (const c of channels)
    if (c.base_url !== undefined && !/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)(:\d+)?(\/|$)/.test(c.base_url))
      throw new Error(`test config: channel ${c.name} base_url ${c.base_url} is not loopback`);
  const f = path.join(tmpDir('imagegate-cfg-'), 'config.json');
  fs.writeFileSync(f, JSON.stringify({ channels, ...extra }, null, 1));
  return f;
}

export const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

let nonce = 0;
/** A prompt unique to this process and call (the fake counts per exact prompt). */
export function uniquePrompt(text) {
  return `${text} #${process.pid}.${++nonce}.${Date.now() % 100000}`;
}

/** Submit (must be accepted) and poll to the end: the final task JSON and the poll response. */
export async function run(server, body, { timeoutMs = 30000 } = {}) {
  const s = await submit(server, body);
  assert.equal(s.status, 200, s.body);
  const r = await poll(server, s.json.id, server.key, { timeoutMs });
  return { task: r.json, res: r, submitRes: s };
}

/** The task completed with `n` images and no offline mark; the downloads (bodyBuf) in order. */
export async function expectCompleted(server, body, n = 1, opts) {
  const { task, res, submitRes } = await run(server, body, opts);
  assert.equal(task.status, 'completed', JSON.stringify(task));
  assert.equal(task.error, null);
  assert.equal(task.output.image_urls.length, n, JSON.stringify(task));
  assert.equal(res.headers['x-imagegate-offline'], undefined, 'a channel served it: no offline mark on the poll');
  assert.equal(submitRes.headers['x-imagegate-offline'], undefined, 'no offline mark on the submit');
  const images = [];
  for (const u of task.output.image_urls) {
    const d = await download(u);
    assert.equal(d.status, 200, u);
    assert.equal(d.headers['content-type'], 'image/png');
    assert.equal(d.headers['x-imagegate-offline'], undefined, 'no offline mark on the image');
    images.push(d.bodyBuf);
  }
  return { task, images };
}

/** The task failed with `code`; message checked against a RegExp when given. */
export async function expectFailed(server, body, code, message, opts) {
  const { task } = await run(server, body, opts);
  assert.equal(task.status, 'failed', JSON.stringify(task));
  assert.equal(task.output, null);
  assert.equal(task.error.code, code, JSON.stringify(task.error));
  assert.equal(typeof task.error.message, 'string');
  assert.ok(task.error.message.length > 0);
  if (message) assert.match(task.error.message, message);
  return task;
}

/**
 * The request the fake got is exactly the Gemini request for this prompt: method, path, key,
 * content type, and the whole body (so no temperature, topP, imageSize or anything else).
 * For the same body at another address (Vertex AI): path (the exact path expected instead of
 * the Gemini API's), and bearer (the request carries `Authorization: Bearer <bearer>` and no
 * x-goog-api-key, instead of the key).
 */
export function assertGeminiRequest(rec, { prompt, ratio = '1:1', refs = [], key = 'test-key-a', model = CATALOG_ID,
  imageSize, path: wantPath, bearer } = {}) {
  assert.equal(rec.method, 'POST');
  assert.equal(rec.path, wantPath ?? `/v1beta/models/${model}:generateContent`, 'path (no ?key=)');
  if (bearer !== undefined) {
    assert.equal(rec.headers.authorization, `Bearer ${bearer}`);
    assert.equal(rec.headers['x-goog-api-key'], undefined, 'a Bearer token, and no API key');
  } else {
    assert.equal(rec.headers['x-goog-api-key'], key);
  }
  assert.match(rec.headers['content-type'] ?? '', /^application\/json(;\s*charset=utf-8)?$/i);
  if (bearer === undefined) assert.equal(rec.headers.authorization, undefined, 'the key goes in x-goog-api-key only');
  const imageConfig = { aspectRatio: ratio };
  if (imageSize) imageConfig.imageSize = imageSize;
  assert.deepEqual(rec.body, {
    contents: [{
      role: 'user',
      parts: [{ text: prompt }, ...refs.map((buf) => ({ inlineData: { mimeType: 'image/png', data: buf.toString('base64') } }))],
    }],
    generationConfig: { responseModalities: ['TEXT', 'IMAGE'], imageConfig },
  });
}

/**
 * The router's log lines about one task's upstream attempts, in order: [{channel, attempt,
 * status, result}] (`upstream: task=<hex> channel=… attempt=N status=S result=R …`, info level).
 */
export function attemptLog(server, taskId) {
  const hex = taskId.replace(/^task_/, '');
  const out = [];
  const re = new RegExp(`upstream: task=${hex} channel=(\\S+) attempt=(\\d+) status=(\\d+) result=(\\S+) latency_ms=\\d+ bytes=\\d+`, 'g');
  for (const m of server.stderr().matchAll(re))
    out.push({ channel: m[1], attempt: Number(m[2]), status: Number(m[3]), result: m[4] });
  return out;
}

let sqliteCli;
/** Is the sqlite3 command-line shell installed (to read what a task recorded)? */
export function haveSqlite() {
  if (sqliteCli === undefined) {
    try { execFileSync('sqlite3', ['-version'], { stdio: 'ignore' }); sqliteCli = true; } catch { sqliteCli = false; }
  }
  return sqliteCli;
}

/**
 * What the task recorded about its upstream (the `upstream` column, JSON: model_version,
 * response_id, attempts [{channel, status, result, latency_ms, bytes}]), read with the sqlite3
 * shell in read-only mode while the server runs; null when the column is empty.
 */
export function storedUpstream(server, taskId) {
  const hex = taskId.replace(/^task_/, '');
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new Error(`not a task id: ${taskId}`);
  const db = path.join(server.dataDir, 'imagegate.db');
  const out = execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', db,
    `SELECT upstream FROM tasks WHERE id = '${hex}';`], { encoding: 'utf8' }).trim();
  return out ? JSON.parse(out) : null;
}

// fakegemini.mjs: a loopback fake of Google's Gemini API (generateContent only) for the channel
// tests: it records every request and answers with real GenerateContentResponse bodies carrying
// real PNGs, or with the faults a real upstream produces.
//
// What a request gets is decided by a marker in its prompt (contents[0].parts[0].text), so
// tests sharing one fake do not interfere:
//   [[ok]] (or no marker)   200, text part + one PNG at the Gemini size of the asked aspect ratio
//   [[two-images]]          200, two PNGs (different pictures) + a text part
//   [[503x2]]               503 UNAVAILABLE for the first 2 requests with this exact prompt, then ok
//                           (also [[503x1]], [[503x3]], [[503x4]])
//   [[429-retry-after-1]]   the first request with this exact prompt: 429 RESOURCE_EXHAUSTED with
//                           Retry-After: 1 and RetryInfo "1s"; then ok
//   [[reset]]               reads the request, then resets the connection (RST), every time
//   [[reset-early]]         reads only the first chunk of the body, stops reading (the sender
//                           blocks once the socket buffers fill), resets 300 ms later; body is
//                           null and rec.prompt is taken from that chunk. Needs a body bigger
//                           than the socket buffers (a large reference) to mean "not sent".
//   [[close]]               reads the request, then closes the connection (FIN) without a word
//   [[stall]]               reads the request, never answers (the socket stays open until close())
//   [[safety-finish]]       200, finishReason IMAGE_SAFETY, no image
//   [[safety-prompt]]       200, {promptFeedback:{blockReason:"PROHIBITED_CONTENT"}, usageMetadata}
//   [[text-only]]           200, finishReason STOP, only a text part "I can't draw that"
//   [[malformed]]           200, application/json body `{"candidates": [` (truncated JSON)
//   [[bad-image]]           200, STOP, an inlineData "image/png" whose bytes are not an image
//   [[truncated]]           200 announcing a Content-Length larger than what is sent, then close
//   [[huge]]                200, a valid GenerateContentResponse of hugeBytes (option) bytes
//   [[401]]                 401 UNAUTHENTICATED, reason API_KEY_INVALID
//   [[400]]                 400 INVALID_ARGUMENT "bad aspect"
//   [[always503]]           503 UNAVAILABLE every time
// script(fn) installs a responder that runs first: fn(rec, fake) returns an action (below) or
// undefined to fall back to the markers. Actions:
//   {ok: true, images?: [Buffer], text?: string|null}   a success (counted in stats)
//   {status, headers?, json?} | {status, headers?, body?} a raw answer
//   {error: [httpCode, STATUS, message, details?], headers?} a Google error envelope
//   {reset: true} | {close: true} | {stall: true} | {truncated: true} | {huge: true} | {malformed: true}
//   any of them with delayMs: N to answer N ms later
// Every response (and what it carried) is stored on its record as rec.reply.
import http from 'node:http';
import { makePng } from './refserver.mjs';

// Output sizes of gemini-2.5-flash-image per aspect ratio (wire-formats.md §1.7).
export const GEMINI_SIZES = {
  '1:1': [1024, 1024], '2:3': [832, 1248], '3:2': [1248, 832], '3:4': [864, 1184],
  '4:3': [1184, 864], '4:5': [896, 1152], '5:4': [1152, 896], '9:16': [768, 1344],
  '16:9': [1344, 768], '21:9': [1536, 672],
};

// Real PNGs, made once per (size, variant): blocks of colour, so they compress to ~20 KB and
// the gateway's storage of 1000 of them stays cheap.
const pngCache = new Map();
export function geminiPng(ratio = '1:1', variant = 0) {
  const [w, h] = GEMINI_SIZES[ratio] ?? GEMINI_SIZES['1:1'];
  const k = `${w}x${h}/${variant}`;
  if (!pngCache.has(k)) {
    pngCache.set(k, makePng(w, h, (x, y) => [
      (((x >> 5) + variant * 3) * 40) & 0xff, ((y >> 5) * 30 + variant * 90) & 0xff, variant ? 200 : 60,
    ]));
  }
  return pngCache.get(k);
}

export const USAGE = {
  promptTokenCount: 17, candidatesTokenCount: 1306, totalTokenCount: 1323,
  promptTokensDetails: [{ modality: 'TEXT', tokenCount: 17 }],
  candidatesTokensDetails: [{ modality: 'IMAGE', tokenCount: 1290 }],
};

/** A Google error envelope (google.rpc.Status as JSON). */
export function googleError(code, status, message, details) {
  const error = { code, message, status };
  if (details) error.details = details;
  return { error };
}

/** The prompt of a recorded request (contents[0].parts[0].text), or undefined. */
export function promptOf(rec) {
  return rec?.body?.contents?.[0]?.parts?.[0]?.text ?? rec?.prompt;
}

/** The aspect ratio a recorded request asked for, or undefined. */
export function ratioOf(rec) {
  return rec?.body?.generationConfig?.imageConfig?.aspectRatio;
}

/** Deterministic PRNG (mulberry32): () -> [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A responder answering 503 UNAVAILABLE on `rate` of the requests (seeded), the rest ok. */
export function randomFailures(rate, seed = 1) {
  const rnd = mulberry32(seed);
  return () => (rnd() < rate
    ? { error: [503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'] }
    : { ok: true });
}

const MARKER_RE = /\[\[([a-z0-9-]+)\]\]/;

/** The path of generateContent on the Gemini API (the fake's route by default). */
export const GEMINI_ROUTE = /^\/v1beta\/models\/[^/:]+:generateContent$/;

/**
 * Start the fake on 127.0.0.1 (only). Options: port (0 = any), hugeBytes (the size of a
 * [[huge]] body, default 3 MB), and for other servers speaking the same wire format at other
 * addresses (lib/fakevertex.mjs): route (a RegExp the POST path must match, default the Gemini
 * API's /v1beta/models/{model}:generateContent) and authorize(rec, fake) (runs before the
 * responder and the markers: an action to answer with instead, e.g. a 401, or undefined; a
 * request it answers does not count towards the per-prompt markers).
 * Returns {port, base, requests, stats, inflight, maxInflight, script(fn), reset(), close(),
 * callsFor(prompt)}.
 * requests: every request in arrival order, each {method, path, headers (lower-case), body
 * (parsed JSON, or null), raw (the body text, up to 64 KB), bytes, at (ms), reply}.
 * stats: {ok: successes sent, images: images sent in successes, byStatus: {status: count}}.
 */
export function startFakeGemini({ port = 0, hugeBytes = 3 * 1024 * 1024, route = GEMINI_ROUTE, authorize = null } = {}) {
  let responder = null;
  let seq = 0;
  const perPrompt = new Map(); // prompt -> requests seen with it
  const sockets = new Set();
  const fake = {
    requests: [],
    stats: { ok: 0, images: 0, byStatus: {} },
    inflight: 0,      // requests being answered now
    maxInflight: 0,   // the most at once since start (or reset)
    /** Install a responder that runs before the markers (null: markers only). */
    script(fn) { responder = fn; },
    /** Forget requests, per-prompt counters and stats; back to the markers only. */
    reset() {
      responder = null;
      fake.requests.length = 0;
      perPrompt.clear();
      fake.stats = { ok: 0, images: 0, byStatus: {} };
      fake.maxInflight = fake.inflight;
    },
    /** The recorded requests whose prompt is exactly `prompt`. */
    callsFor(prompt) { return fake.requests.filter((r) => promptOf(r) === prompt); },
  };

  function markerAction(rec, nth) {
    const m = MARKER_RE.exec(promptOf(rec) ?? '');
    switch (m ? m[1] : 'ok') {
      case 'two-images': return { ok: true, images: [geminiPng(ratioOf(rec), 0), geminiPng(ratioOf(rec), 1)] };
      case '503x1': case '503x2': case '503x3': case '503x4':
        return nth <= Number(m[1].slice(4)) ? { error: [503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'] } : { ok: true };
      case '429-retry-after-1':
        return nth <= 1 ? {
          headers: { 'Retry-After': '1' },
          error: [429, 'RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details.', [
            { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier' }] },
            { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '1s' },
          ]],
        } : { ok: true };
      case 'reset': return { reset: true };
      case 'close': return { close: true };
      case 'stall': return { stall: true };
      case 'safety-finish':
        return { status: 200, json: {
          candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'IMAGE_SAFETY', index: 0 }],
          usageMetadata: { promptTokenCount: 17, totalTokenCount: 17, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 17 }] },
          modelVersion: 'gemini-2.5-flash-image', responseId: `fake-${seq}`,
        } };
      case 'safety-prompt':
        return { status: 200, json: {
          promptFeedback: { blockReason: 'PROHIBITED_CONTENT' },
          usageMetadata: { promptTokenCount: 271, totalTokenCount: 271 },
          modelVersion: 'gemini-2.5-flash-image', responseId: `fake-${seq}`,
        } };
      case 'text-only': return { ok: true, images: [], text: "I can't draw that" };
      case 'malformed': return { malformed: true };
      case 'bad-image': return { ok: true, images: [Buffer.from('this is not a PNG, whatever mimeType says')] };
      case 'truncated': return { truncated: true };
      case 'huge': return { huge: true };
      case '401':
        return { error: [401, 'UNAUTHENTICATED', 'API key not valid. Please pass a valid API key.', [
          { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com',
            metadata: { service: 'generativelanguage.googleapis.com' } }]] };
      case '400': return { error: [400, 'INVALID_ARGUMENT', 'bad aspect'] };
      case 'always503': return { error: [503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'] };
      default: return { ok: true };
    }
  }

  function successBody(rec, action) {
    const images = action.images ?? [geminiPng(ratioOf(rec), 0)];
    const parts = [];
    const text = action.text === undefined ? 'Here you go' : action.text;
    if (text !== null) parts.push({ text });
    for (const png of images) parts.push({ inlineData: { mimeType: 'image/png', data: png.toString('base64') } });
    return {
      images,
      json: {
        candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }],
        usageMetadata: images.length ? {
          ...USAGE,
          candidatesTokenCount: 16 + 1290 * images.length,
          totalTokenCount: 17 + 16 + 1290 * images.length,
          candidatesTokensDetails: [{ modality: 'IMAGE', tokenCount: 1290 * images.length }],
        } : { promptTokenCount: 17, candidatesTokenCount: 6, totalTokenCount: 23,
          promptTokensDetails: [{ modality: 'TEXT', tokenCount: 17 }] },
        modelVersion: 'gemini-2.5-flash-image',
        responseId: `fake-${seq}`,
      },
    };
  }

  function sendJson(res, rec, status, obj, headers = {}) {
    const body = Buffer.from(JSON.stringify(obj));
    rec.reply = { status, bytes: body.length, json: obj, at: Date.now() };
    fake.stats.byStatus[status] = (fake.stats.byStatus[status] ?? 0) + 1;
    res.writeHead(status, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': body.length, ...headers });
    res.end(body);
  }

  function answer(req, res, rec) {
    if (req.method !== 'POST' || !route.test(rec.path)) {
      return sendJson(res, rec, 404, googleError(404, 'NOT_FOUND', `fake: no route for ${req.method} ${rec.path}`));
    }
    const denied = authorize && authorize(rec, fake);
    if (denied) {
      rec.denied = true;
      return act(req, res, rec, denied);
    }
    const prompt = promptOf(rec);
    const nth = (perPrompt.get(prompt) ?? 0) + 1;
    perPrompt.set(prompt, nth);
    const action = (responder && responder(rec, fake)) || markerAction(rec, nth);
    if (action.delayMs) {
      const { delayMs, ...rest } = action;
      setTimeout(() => { if (!res.destroyed) act(req, res, rec, rest); }, delayMs);
      return;
    }
    act(req, res, rec, action);
  }

  function act(req, res, rec, action) {

    if (action.ok) {
      const { images, json } = successBody(rec, action);
      sendJson(res, rec, 200, json);
      rec.reply.images = images;
      if (images.length) {
        fake.stats.ok++;
        fake.stats.images += images.length;
      }
      return;
    }
    if (action.error) {
      const [code, status, message, details] = action.error;
      return sendJson(res, rec, code, googleError(code, status, message, details), action.headers);
    }
    if (action.json !== undefined) return sendJson(res, rec, action.status ?? 200, action.json, action.headers);
    if (action.body !== undefined) {
      const body = Buffer.from(action.body);
      rec.reply = { status: action.status ?? 200, bytes: body.length };
      res.writeHead(rec.reply.status, { 'Content-Type': 'application/json', 'Content-Length': body.length, ...action.headers });
      return res.end(body);
    }
    if (action.reset) {
      rec.reply = { reset: true };
      if (req.socket.resetAndDestroy) req.socket.resetAndDestroy();
      else req.socket.destroy();
      return;
    }
    if (action.close) {
      rec.reply = { closed: true };
      return req.socket.destroy();
    }
    if (action.stall) {
      rec.reply = { stalled: true };
      return; // the socket stays open; close() destroys it
    }
    if (action.malformed) {
      const body = Buffer.from('{"candidates": [');
      rec.reply = { status: 200, bytes: body.length, malformed: true };
      res.writeHead(200, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': body.length });
      return res.end(body);
    }
    if (action.truncated) {
      const { json } = successBody(rec, {});
      const body = Buffer.from(JSON.stringify(json));
      const sent = body.subarray(0, Math.floor(body.length / 2));
      rec.reply = { status: 200, bytes: sent.length, announced: body.length, truncated: true };
      // Raw bytes on the socket: node's ServerResponse refuses to send less than Content-Length
      // and then end cleanly.
      const head = `HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      req.socket.write(head);
      req.socket.write(sent, () => req.socket.destroy());
      return;
    }
    if (action.huge) {
      // A valid reply, just too big: a long text part before the image.
      const { json } = successBody(rec, {});
      const base = Buffer.byteLength(JSON.stringify(json));
      json.candidates[0].content.parts[0].text = 'x'.repeat(Math.max(0, hugeBytes - base));
      const body = Buffer.from(JSON.stringify(json));
      rec.reply = { status: 200, bytes: body.length, huge: true };
      fake.stats.byStatus[200] = (fake.stats.byStatus[200] ?? 0) + 1;
      res.on('error', () => {});
      res.writeHead(200, { 'Content-Type': 'application/json; charset=UTF-8', 'Content-Length': body.length });
      return res.end(body);
    }
    throw new Error(`fakegemini: unknown action ${JSON.stringify(action)}`);
  }

  const server = http.createServer((req, res) => {
    fake.inflight++;
    fake.maxInflight = Math.max(fake.maxInflight, fake.inflight);
    let counted = true;
    const uncount = () => { if (counted) { counted = false; fake.inflight--; } };
    res.on('finish', uncount);
    res.on('close', uncount);
    const rec = { method: req.method, path: req.url, headers: { ...req.headers }, body: null, raw: '', bytes: 0, at: Date.now() };
    fake.requests.push(rec);
    const chunks = [];
    req.on('data', (c) => {
      chunks.push(c);
      // [[reset-early]]: stop reading at the first chunk, let the sender block on full socket
      // buffers, then reset: the body provably did not arrive whole.
      if (chunks.length === 1 && !rec.early && c.includes('[[reset-early]]')) {
        rec.early = true;
        const m = /"text"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(c.toString('utf8'));
        if (m) { try { rec.prompt = JSON.parse(`"${m[1]}"`); } catch { /* keep none */ } }
        rec.bytes = c.length;
        rec.reply = { reset: true, early: true };
        req.pause();
        setTimeout(() => {
          if (req.socket.resetAndDestroy) req.socket.resetAndDestroy();
          else req.socket.destroy();
        }, 300);
      }
    });
    req.on('error', () => {});
    res.on('error', () => {});
    req.on('end', () => {
      if (rec.early) return;
      seq++;
      const buf = Buffer.concat(chunks);
      rec.bytes = buf.length;
      rec.raw = buf.subarray(0, 65536).toString('utf8');
      try { rec.body = JSON.parse(buf.toString('utf8')); } catch { rec.body = null; }
      try {
        answer(req, res, rec);
      } catch (e) {
        rec.reply = { error: String(e) };
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(String(e));
      }
    });
  });
  server.keepAliveTimeout = 5000;
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      fake.port = server.address().port;
      fake.base = `http://127.0.0.1:${fake.port}`;
      fake.close = () => new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      });
      resolve(fake);
    });
  });
}

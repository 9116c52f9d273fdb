// fakeopenai.mjs: a loopback fake of the OpenAI Images API (generations and edits) for the
// "openai" channel tests: it records every request (with the multipart parts of an edit, their
// bytes included) and answers with real Images API bodies carrying real PNGs, as b64_json or as
// URLs it serves itself, or with the faults a real upstream produces.
//
// Routes:
//   POST /v1/images/generations   JSON {model, prompt, n, size, response_format, ...}
//   POST /v1/images/edits         multipart/form-data: fields and one file part per reference
//   GET  /files/<id>.png          a PNG a [[url]] answer pointed at (recorded in fake.downloads)
//
// What a request gets is decided by a marker in its prompt, so tests sharing one fake do not
// interfere:
//   [[ok]] (or no marker)   200, `n` PNGs (different pictures) of the asked size, as b64_json
//   [[url]]                 200, `n` PNGs as URLs on this fake (GET /files/<id>.png)
//   [[mixed]]               200, the first PNG as b64_json, the others as URLs
//   [[url-404]]             200, URLs on this fake that answer 404
//   [[content-policy]]      400 {error:{code:"content_policy_violation", type:"invalid_request_error"}}
//   [[400]]                 400 invalid_request_error "Invalid value for 'size'"
//   [[401]]                 401 invalid_api_key
//   [[429-retry-after-1]]   the first request with this exact prompt: 429 with Retry-After: 1; then ok
//   [[503x2]]               503 for the first 2 requests with this exact prompt, then ok (also x1, x3, x4)
//   [[always503]]           503 every time
//   [[malformed]]           200, application/json body `{"data": [` (truncated JSON)
//   [[bad-b64]]             200, a b64_json that is not base64
//   [[stall]]               reads the request, never answers (until close())
// script(fn) installs a responder that runs first: fn(rec, fake) returns an action or undefined
// (then the markers decide). Actions:
//   {ok: true, images?: [Buffer], as?: 'b64' | 'url' | ['b64', 'url', ...]}   a success
//   {error: [httpCode, code, message, type], headers?}                        an OpenAI error
//   {status, headers?, json?} | {status, headers?, body?}                     a raw answer
//   {stall: true} | {malformed: true} | {reset: true}
//   any of them with delayMs: N to answer N ms later
// Every response (and the images it carried) is stored on its record as rec.reply.
import http from 'node:http';
import crypto from 'node:crypto';
import { makePng } from './refserver.mjs';

// PNGs of any size, made once per (size, variant): blocks of colour, as geminiPng makes them.
const pngCache = new Map();
export function openaiPng(width, height, variant = 0) {
  const k = `${width}x${height}/${variant}`;
  if (!pngCache.has(k)) {
    pngCache.set(k, makePng(width, height, (x, y) => [
      (((x >> 5) + variant * 5) * 50) & 0xff, ((y >> 5) * 20 + variant * 70) & 0xff, (variant * 40 + 30) & 0xff,
    ]));
  }
  return pngCache.get(k);
}

/** {width, height} of an Images API size "WxH", or null. */
export function parseSize(size) {
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(size ?? '');
  return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
}

/** An OpenAI error envelope. */
export function openaiError(message, type, code = null, param = null) {
  return { error: { message, type, param, code } };
}

/**
 * Parse a multipart/form-data body strictly (RFC 7578): CRLF framing, a closing delimiter,
 * a Content-Disposition: form-data with a name on every part. Returns the parts in order,
 * each {name, filename (or undefined), contentType (or undefined), headers, data (Buffer)}.
 * Throws on anything malformed.
 */
export function parseMultipart(buf, contentType) {
  const m = /^multipart\/form-data;\s*boundary=(?:"([^"]+)"|([^;\s]+))\s*$/i.exec(contentType ?? '');
  if (!m) throw new Error(`not multipart/form-data with a boundary: ${contentType}`);
  const delim = Buffer.from(`--${m[1] ?? m[2]}`);
  const next = Buffer.concat([Buffer.from('\r\n'), delim]);
  if (buf.indexOf(delim) !== 0) throw new Error('the body does not start with the boundary');
  const parts = [];
  let pos = delim.length;
  for (;;) {
    const two = buf.subarray(pos, pos + 2).toString('latin1');
    if (two === '--') {
      const rest = buf.subarray(pos + 2).toString('latin1');
      if (rest !== '' && rest !== '\r\n') throw new Error(`${rest.length} bytes after the closing boundary`);
      return parts;
    }
    if (two !== '\r\n') throw new Error(`no CRLF after a boundary at ${pos}`);
    pos += 2;
    const hend = buf.indexOf('\r\n\r\n', pos);
    if (hend < 0) throw new Error('a part without the end of its headers');
    const headers = {};
    for (const line of buf.subarray(pos, hend).toString('utf8').split('\r\n')) {
      const i = line.indexOf(':');
      if (i <= 0) throw new Error(`a malformed part header: ${JSON.stringify(line)}`);
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const cd = headers['content-disposition'] ?? '';
    if (!/^form-data\s*;/i.test(cd)) throw new Error(`a part that is not form-data: ${cd}`);
    const name = /;\s*name="([^"]*)"/i.exec(cd)?.[1];
    if (name === undefined) throw new Error(`a part without a name: ${cd}`);
    const filename = /;\s*filename="([^"]*)"/i.exec(cd)?.[1];
    const end = buf.indexOf(next, hend + 4);
    if (end < 0) throw new Error(`part ${name} is not terminated by a boundary`);
    parts.push({ name, filename, contentType: headers['content-type'], headers, data: Buffer.from(buf.subarray(hend + 4, end)) });
    pos = end + next.length;
  }
}

/**
 * The same body through Node's own multipart parser (undici's Request.formData()): the
 * entries as [{name, filename, type, data}] in order, to cross-check parseMultipart.
 */
export async function undiciParts(buf, contentType) {
  const fd = await new Request('http://127.0.0.1/', { method: 'POST', headers: { 'content-type': contentType }, body: buf }).formData();
  const out = [];
  for (const [name, v] of fd.entries()) {
    if (typeof v === 'string') out.push({ name, data: Buffer.from(v, 'utf8') });
    else out.push({ name, filename: v.name, type: v.type, data: Buffer.from(await v.arrayBuffer()) });
  }
  return out;
}

/** The prompt of a recorded request (the JSON field or the multipart field), or undefined. */
export function openaiPromptOf(rec) {
  return rec?.body?.prompt ?? rec?.fields?.prompt;
}

const MARKER_RE = /\[\[([a-z0-9-]+)\]\]/;
const OVERLOADED = [503, null, 'The server is overloaded or not ready yet.', 'server_error'];

/**
 * Start the fake on 127.0.0.1 (only). Options: port (0 = any).
 * Returns {port, base, requests, downloads, stats, files, script(fn), reset(), close(),
 * callsFor(prompt)}.
 * requests: every POST in arrival order, each {method, path, headers (lower-case), bytes, at,
 * body (parsed JSON for generations, else null), parts (the multipart parts of an edit, else
 * null), fields (name -> text of the parts without a filename), files (the parts with one),
 * formError (why the multipart body did not parse, else undefined), undici (the entries Node's
 * own parser found), reply}.
 * downloads: every GET of /files/…, each {path, at, status}.
 */
export function startFakeOpenAI({ port = 0 } = {}) {
  let responder = null;
  let seq = 0;
  const perPrompt = new Map();
  const sockets = new Set();
  const fake = {
    requests: [],
    downloads: [],
    files: new Map(), // "/files/<id>.png" -> PNG bytes
    stats: { ok: 0, images: 0, byStatus: {} },
    script(fn) { responder = fn; },
    reset() {
      responder = null;
      fake.requests.length = 0;
      fake.downloads.length = 0;
      perPrompt.clear();
      fake.stats = { ok: 0, images: 0, byStatus: {} };
    },
    callsFor(prompt) { return fake.requests.filter((r) => openaiPromptOf(r) === prompt); },
    /** The downloads of the files a record's reply pointed at. */
    downloadsFor(rec) {
      const paths = new Set((rec.reply?.urls ?? []).map((u) => new URL(u).pathname));
      return fake.downloads.filter((d) => paths.has(d.path));
    },
  };

  function nOf(rec) {
    const n = rec.body ? rec.body.n : Number(rec.fields?.n);
    return Number.isInteger(n) && n >= 1 && n <= 10 ? n : 1;
  }

  function sizeOf(rec) {
    const s = parseSize(rec.body ? rec.body.size : rec.fields?.size);
    return s && s.width <= 4096 && s.height <= 4096 ? s : { width: 1024, height: 1024 };
  }

  function markerAction(rec, nth) {
    const m = MARKER_RE.exec(openaiPromptOf(rec) ?? '');
    switch (m ? m[1] : 'ok') {
      case 'url': return { ok: true, as: 'url' };
      case 'mixed': return { ok: true, as: ['b64', ...Array(9).fill('url')] };
      case 'url-404': return { ok: true, as: 'url', missing: true };
      case 'content-policy':
        return { error: [400, 'content_policy_violation',
          'Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.',
          'invalid_request_error'] };
      case '400': return { error: [400, 'invalid_value', "Invalid value for 'size': the size is not supported.", 'invalid_request_error'] };
      case '401': return { error: [401, 'invalid_api_key', 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error'] };
      case '429-retry-after-1':
        return nth <= 1 ? { headers: { 'Retry-After': '1' },
          error: [429, 'rate_limit_exceeded', 'Rate limit reached for images per min. Please try again in 1s.', 'requests'] } : { ok: true };
      case '503x1': case '503x2': case '503x3': case '503x4':
        return nth <= Number(m[1].slice(4)) ? { error: OVERLOADED } : { ok: true };
      case 'always503': return { error: OVERLOADED };
      case 'malformed': return { malformed: true };
      case 'bad-b64': return { status: 200, json: { created: 1, data: [{ b64_json: 'this is *not* base64!' }] } };
      case 'stall': return { stall: true };
      default: return { ok: true };
    }
  }

  function sendJson(res, rec, status, obj, headers = {}) {
    const body = Buffer.from(JSON.stringify(obj));
    rec.reply = { status, bytes: body.length, json: obj, at: Date.now() };
    fake.stats.byStatus[status] = (fake.stats.byStatus[status] ?? 0) + 1;
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length, ...headers });
    res.end(body);
  }

  function act(req, res, rec, action) {
    if (action.ok) {
      const { width, height } = sizeOf(rec);
      const images = action.images ?? Array.from({ length: nOf(rec) }, (_, i) => openaiPng(width, height, i));
      const data = [];
      const urls = [];
      images.forEach((png, i) => {
        const as = Array.isArray(action.as) ? action.as[i] ?? 'b64' : action.as ?? 'b64';
        if (as === 'url') {
          const p = `/files/${crypto.randomBytes(8).toString('hex')}.png`;
          if (!action.missing) fake.files.set(p, png);
          urls.push(`${fake.base}${p}`);
          data.push({ url: `${fake.base}${p}`, revised_prompt: openaiPromptOf(rec) });
        } else {
          data.push({ b64_json: png.toString('base64') });
        }
      });
      sendJson(res, rec, 200, {
        created: Math.floor(Date.now() / 1000), data,
        usage: { total_tokens: 50 + 4160 * images.length, input_tokens: 50, output_tokens: 4160 * images.length,
          input_tokens_details: { text_tokens: 50, image_tokens: 0 } },
      });
      rec.reply.images = images;
      rec.reply.urls = urls;
      fake.stats.ok++;
      fake.stats.images += images.length;
      return;
    }
    if (action.error) {
      const [status, code, message, type] = action.error;
      return sendJson(res, rec, status, openaiError(message, type, code), action.headers);
    }
    if (action.json !== undefined) return sendJson(res, rec, action.status ?? 200, action.json, action.headers);
    if (action.body !== undefined) {
      const body = Buffer.from(action.body);
      rec.reply = { status: action.status ?? 200, bytes: body.length };
      fake.stats.byStatus[rec.reply.status] = (fake.stats.byStatus[rec.reply.status] ?? 0) + 1;
      res.writeHead(rec.reply.status, { 'Content-Type': 'application/json', 'Content-Length': body.length, ...action.headers });
      return res.end(body);
    }
    if (action.malformed) return act(req, res, rec, { status: 200, body: '{"data": [' });
    if (action.stall) {
      rec.reply = { stalled: true };
      return;
    }
    if (action.reset) {
      rec.reply = { reset: true };
      if (req.socket.resetAndDestroy) req.socket.resetAndDestroy();
      else req.socket.destroy();
      return;
    }
    throw new Error(`fakeopenai: unknown action ${JSON.stringify(action)}`);
  }

  async function answer(req, res, rec, buf) {
    if (rec.path === '/v1/images/generations') {
      try { rec.body = JSON.parse(buf.toString('utf8')); } catch { rec.body = null; }
      if (!rec.body || typeof rec.body !== 'object')
        return sendJson(res, rec, 400, openaiError('fake: the body is not a JSON object', 'invalid_request_error'));
    } else {
      const ct = rec.headers['content-type'] ?? '';
      try {
        rec.parts = parseMultipart(buf, ct);
      } catch (e) {
        rec.formError = e.message;
        return sendJson(res, rec, 400, openaiError(`fake: bad multipart body: ${e.message}`, 'invalid_request_error'));
      }
      try { rec.undici = await undiciParts(buf, ct); } catch (e) { rec.undici = { error: e.message }; }
      rec.fields = {};
      rec.files = [];
      for (const p of rec.parts) {
        if (p.filename === undefined) rec.fields[p.name] = p.data.toString('utf8');
        else rec.files.push(p);
      }
    }
    const prompt = openaiPromptOf(rec);
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

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', () => {});
    res.on('error', () => {});
    req.on('end', () => {
      const buf = Buffer.concat(chunks);
      const path = req.url;
      if (req.method === 'GET' && path.startsWith('/files/')) {
        const png = fake.files.get(path);
        fake.downloads.push({ path, at: Date.now(), status: png ? 200 : 404, headers: { ...req.headers } });
        if (!png) {
          res.writeHead(404, { 'Content-Type': 'text/plain' });
          return res.end('no such file\n');
        }
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length });
        return res.end(png);
      }
      const rec = { method: req.method, path, headers: { ...req.headers }, bytes: buf.length, at: Date.now(),
        body: null, parts: null, fields: undefined, files: undefined, seq: ++seq };
      fake.requests.push(rec);
      if (req.method !== 'POST' || (path !== '/v1/images/generations' && path !== '/v1/images/edits'))
        return sendJson(res, rec, 404, openaiError(`fake: no route for ${req.method} ${path}`, 'invalid_request_error'));
      answer(req, res, rec, buf).catch((e) => {
        rec.reply = { error: String(e) };
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(String(e));
      });
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

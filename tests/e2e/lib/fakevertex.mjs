// fakevertex.mjs: loopback fakes of Vertex AI for the "vertex" channel tests:
//   startFakeVertex()    generateContent at the Vertex paths, on fakegemini's responders (the
//                        same markers, script(), records and replies), checking the credentials:
//                        a Bearer access token it knows for the project path, an API key it
//                        knows for express mode;
//   startTokenServer()   Google's OAuth 2.0 token endpoint for the JWT bearer grant (RFC 7523):
//                        verifies the RS256 signature against the public key of a service
//                        account the test made, checks the claims, issues access tokens;
//   makeServiceAccount() a fresh RSA key written as a service-account JSON key file.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { tmpDir } from './harness.mjs';
import { startFakeGemini } from './fakegemini.mjs';

export const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Both Vertex generateContent paths: the project one and express mode's. */
export const VERTEX_ROUTE = /^\/v1\/(?:projects\/[^/]+\/locations\/[^/]+\/)?publishers\/google\/models\/[^/:]+:generateContent$/;

/** The path a call for this project/location/model goes to (express mode without project). */
export function vertexPath({ project, location = 'global', model }) {
  return project
    ? `/v1/projects/${project}/locations/${location}/publishers/google/models/${model}:generateContent`
    : `/v1/publishers/google/models/${model}:generateContent`;
}

/** {express, project, location, model} of a Vertex path, or null. */
export function parseVertexPath(p) {
  const m = /^\/v1\/(?:projects\/([^/]+)\/locations\/([^/]+)\/)?publishers\/google\/models\/([^/:]+):generateContent$/.exec(p ?? '');
  return m ? { express: !m[1], project: m[1], location: m[2], model: m[3] } : null;
}

const BAD_TOKEN = [401, 'UNAUTHENTICATED',
  'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
  [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'ACCESS_TOKEN_EXPIRED', domain: 'googleapis.com',
    metadata: { service: 'aiplatform.googleapis.com', method: 'google.cloud.aiplatform.v1.PredictionService.GenerateContent' } }]];
const BAD_KEY = [400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.',
  [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com',
    metadata: { service: 'aiplatform.googleapis.com' } }]];

/**
 * Start a fake Vertex AI on 127.0.0.1. Options: tokens (access tokens it accepts), apiKeys
 * (express-mode keys it accepts), and fakegemini's (port, hugeBytes).
 * The project path needs `Authorization: Bearer <a token in fake.tokens>` and no API key, else
 * 401 UNAUTHENTICATED; express mode needs `x-goog-api-key: <a key in fake.apiKeys>` and no
 * Authorization, else 400 API_KEY_INVALID (what Google answers). Refused requests are recorded
 * with rec.denied = true and do not count towards the markers. Every routed request carries
 * rec.vertex = {express, project, location, model} and rec.token (the Bearer token sent, if any).
 * Returns fakegemini's object plus tokens and apiKeys (Sets the test may change) and
 * accepted() (the requests not refused).
 */
export async function startFakeVertex({ tokens = [], apiKeys = [], ...opts } = {}) {
  const authorize = (rec, fake) => {
    rec.vertex = parseVertexPath(rec.path);
    const auth = rec.headers.authorization;
    const key = rec.headers['x-goog-api-key'];
    rec.token = /^Bearer (\S+)$/.exec(auth ?? '')?.[1];
    if (rec.vertex.express)
      return auth === undefined && fake.apiKeys.has(key) ? undefined : { error: BAD_KEY };
    return key === undefined && rec.token && fake.tokens.has(rec.token) ? undefined : { error: BAD_TOKEN };
  };
  const fake = await startFakeGemini({ ...opts, route: VERTEX_ROUTE, authorize });
  fake.tokens = new Set(tokens);
  fake.apiKeys = new Set(apiKeys);
  fake.accepted = () => fake.requests.filter((r) => !r.denied);
  return fake;
}

/**
 * A fresh service account: an RSA 2048 key pair, written as a service-account JSON key file
 * (mode 0600) in a temp dir. Returns {file, email, keyId, projectId, publicKey, privateKeyPem, json}.
 */
export function makeServiceAccount({ tokenUri, projectId = 'proj-from-key', email } = {}) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = crypto.randomBytes(20).toString('hex');
  const clientEmail = email ?? `imagegate-${keyId.slice(0, 6)}@${projectId}.iam.gserviceaccount.com`;
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const json = {
    type: 'service_account', project_id: projectId, private_key_id: keyId, private_key: privateKeyPem,
    client_email: clientEmail, client_id: '107012345678901234567', token_uri: tokenUri,
  };
  const file = path.join(tmpDir('imagegate-sa-'), 'sa.json');
  fs.writeFileSync(file, JSON.stringify(json, null, 2), { mode: 0o600 });
  return { file, email: clientEmail, keyId, projectId, publicKey, privateKeyPem, json };
}

function b64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

/**
 * Start a fake OAuth token endpoint on 127.0.0.1: POST /token, form-encoded
 * grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>.
 * The JWT must be header.claims.signature in base64url without padding, header exactly
 * {alg: RS256, typ: JWT, kid: the key's id}, claims exactly {iss: a trusted account's email,
 * scope: cloud-platform, aud: this endpoint's URL, iat: now +-60 s, exp: iat + 3600}, and the
 * RS256 signature must verify against the trusted account's public key; otherwise 400
 * {error: "invalid_grant", error_description} as Google answers. A good one gets
 * {access_token: a new token, expires_in: the account's (default 3600), token_type: "Bearer"}.
 * Options: delayMs (answer that much later).
 * Returns {port, url, exchanges, issued, trust(sa, {expiresIn}), onIssue, script(fn), delayMs,
 * close(), forEmail(email)}. exchanges: every request, each {at, method, path, headers, form,
 * header, claims, sigOk, problems, reply: {status, json, at}}. script(fn): fn(ex) returns
 * {status, json} (sent as is), {reset: true}, {stall: true} (never answered), {delayMs: N}
 * (verify and issue N ms later; with status/json: send those N ms later), or undefined
 * (verify and issue as above).
 */
export function startTokenServer({ delayMs = 0 } = {}) {
  const accounts = new Map(); // email -> {publicKey, keyId, expiresIn}
  const sockets = new Set();
  let responder = null;
  let n = 0;
  const ts = {
    exchanges: [],
    issued: [], // {token, email, at}
    delayMs,
    onIssue: null,
    trust(sa, { expiresIn = 3600 } = {}) { accounts.set(sa.email, { publicKey: sa.publicKey, keyId: sa.keyId, expiresIn }); },
    script(fn) { responder = fn; },
    forEmail(email) { return ts.exchanges.filter((e) => e.claims?.iss === email); },
  };

  function verify(ex) {
    const p = ex.problems;
    if (ex.method !== 'POST' || ex.path !== '/token') { p.push(`no route ${ex.method} ${ex.path}`); return; }
    if (ex.headers['content-type'] !== 'application/x-www-form-urlencoded') p.push(`content-type ${ex.headers['content-type']}`);
    if (ex.form.grant_type !== GRANT_TYPE) p.push(`grant_type ${ex.form.grant_type}`);
    const keys = Object.keys(ex.form).sort().join(',');
    if (keys !== 'assertion,grant_type') p.push(`form fields ${keys}`);
    const segs = (ex.form.assertion ?? '').split('.');
    if (segs.length !== 3 || !segs.every((s) => /^[A-Za-z0-9_-]+$/.test(s))) { p.push('the assertion is not three base64url segments'); return; }
    try {
      ex.header = b64urlJson(segs[0]);
      ex.claims = b64urlJson(segs[1]);
    } catch (e) { p.push(`the assertion does not decode: ${e.message}`); return; }
    const acct = accounts.get(ex.claims.iss);
    if (!acct) { p.push(`unknown iss ${ex.claims.iss}`); return; }
    ex.sigOk = crypto.verify('RSA-SHA256', Buffer.from(`${segs[0]}.${segs[1]}`), acct.publicKey, Buffer.from(segs[2], 'base64url'));
    if (!ex.sigOk) p.push('Invalid JWT Signature.');
    const hk = Object.keys(ex.header).sort().join(',');
    if (hk !== 'alg,kid,typ' || ex.header.alg !== 'RS256' || ex.header.typ !== 'JWT' || ex.header.kid !== acct.keyId)
      p.push(`header ${JSON.stringify(ex.header)}`);
    const ck = Object.keys(ex.claims).sort().join(',');
    if (ck !== 'aud,exp,iat,iss,scope') p.push(`claims ${ck}`);
    if (ex.claims.aud !== ts.url) p.push(`aud ${ex.claims.aud}`);
    if (ex.claims.scope !== SCOPE) p.push(`scope ${ex.claims.scope}`);
    const now = Date.now() / 1000;
    if (!Number.isInteger(ex.claims.iat) || Math.abs(ex.claims.iat - now) > 60) p.push(`iat ${ex.claims.iat} (now ${now})`);
    if (ex.claims.exp !== ex.claims.iat + 3600) p.push(`exp ${ex.claims.exp} (iat ${ex.claims.iat})`);
    return acct;
  }

  function send(res, ex, status, json) {
    const body = Buffer.from(JSON.stringify(json));
    ex.reply = { status, json, at: Date.now() };
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length });
    res.end(body);
  }

  function respond(req, res, ex, scripted = responder && responder(ex)) {
    if (scripted?.delayMs) {
      const { delayMs: ms, ...rest } = scripted;
      setTimeout(() => { if (!res.destroyed) respond(req, res, ex, Object.keys(rest).length ? rest : undefined); }, ms);
      return;
    }
    if (scripted?.stall) {
      ex.reply = { stalled: true };
      return; // the socket stays open; close() destroys it
    }
    if (scripted?.reset) {
      ex.reply = { reset: true, at: Date.now() };
      if (req.socket.resetAndDestroy) req.socket.resetAndDestroy();
      else req.socket.destroy();
      return;
    }
    if (scripted) return send(res, ex, scripted.status, scripted.json);
    const acct = ex.acct;
    if (ex.problems.length || !acct)
      return send(res, ex, 400, { error: 'invalid_grant', error_description: ex.problems[0] ?? 'Invalid grant' });
    const token = `ya29.fake-${++n}-${crypto.randomBytes(12).toString('hex')}`;
    ts.issued.push({ token, email: ex.claims.iss, at: Date.now() });
    ts.onIssue?.(token, ex.claims.iss);
    send(res, ex, 200, { access_token: token, expires_in: acct.expiresIn, token_type: 'Bearer' });
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', () => {});
    res.on('error', () => {});
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const ex = { at: Date.now(), method: req.method, path: req.url, headers: { ...req.headers }, raw,
        form: Object.fromEntries(new URLSearchParams(raw)), header: null, claims: null, sigOk: false, problems: [] };
      ts.exchanges.push(ex);
      ex.acct = verify(ex);
      if (ts.delayMs > 0) setTimeout(() => { if (!res.destroyed) respond(req, res, ex); }, ts.delayMs);
      else respond(req, res, ex);
    });
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      ts.port = server.address().port;
      ts.url = `http://127.0.0.1:${ts.port}/token`;
      ts.close = () => new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      });
      resolve(ts);
    });
  });
}

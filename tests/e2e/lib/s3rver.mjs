// s3rver.mjs: a local S3-compatible server for the tests: s3rver (npm) on 127.0.0.1, port 0,
// with its files in a temporary directory, behind a strict AWS Signature V4 check.
//
// s3rver 3.7.1 parses SigV4 requests but never checks their signatures (its source says "V4
// signatures have incomplete support": any signature of a known access key passes), and it
// serves anonymous requests. Real S3 does neither, so the middleware below does what S3 does
// before s3rver sees the request: it refuses anonymous requests, recomputes the signature of
// every request (Authorization header or presigned query) from the secret key with node's
// crypto, refuses expired presigned URLs, and checks a PUT's bytes against the
// x-amz-content-sha256 the client signed. The check is itself checked against AWS's published
// examples (selfTest) every time a server starts. Its store is made atomic (see below).
//
// startS3rver() -> {port, endpoint, vhostEndpoint, bucket, accessKey, secretKey, directory,
//                   objects(), objectPath(key), requests(), close()}
// Run directly (`node s3rver.mjs`) it serves until SIGTERM and prints `s3rver listening on
// port N` on stdout (tests/unit/with-s3rver.mjs uses the module instead).
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import S3rver from 's3rver';

const require = createRequire(import.meta.url);
const AWSAccount = require('s3rver/lib/models/account');
const S3Error = require('s3rver/lib/models/error');
const FilesystemStore = require('s3rver/lib/stores/filesystem');
const { pick, pickBy } = createRequire(require.resolve('s3rver'))('lodash');
const S3Object = require('s3rver/lib/models/object');

// s3rver's filesystem store answers a PUT before the bytes are on disk and writes the object
// and its metadata in place, so a GET (or another PUT of the same key) at the same time sees
// a partial file. S3 stores atomically and answers after. These replacements read the whole
// body, check it against x-amz-content-sha256 (as S3 does), write temp files and rename them
// into place, and only then answer.
function writeAtomic(p, data) {
  const tmp = `${p}.tmp-${crypto.randomBytes(6).toString('hex')}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, p);
}
FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  let body = object.content;
  if (!Buffer.isBuffer(body)) {
    const chunks = [];
    for await (const c of object.content) chunks.push(c);
    body = Buffer.concat(chunks);
  }
  const want = object.content.igContentSha256;
  if (want && crypto.createHash('sha256').update(body).digest('hex') !== want) {
    const e = new S3Error('XAmzContentSHA256Mismatch',
      'The provided x-amz-content-sha256 header does not match what was computed.');
    e.status = 400;
    e.expose = true;
    throw e;
  }
  const md5 = crypto.createHash('md5').update(body).digest('hex');
  fs.mkdirSync(path.dirname(objectPath), { recursive: true });
  writeAtomic(objectPath, body);
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size: body.length, md5 };
};
FilesystemStore.prototype.putMetadata = async function putMetadata(bucket, key, metadata, md5) {
  const json = {
    ...pick(metadata, S3Object.ALLOWED_METADATA),
    ...pickBy(metadata, (value, k) => k.startsWith('x-amz-meta-')),
  };
  if (md5) writeAtomic(this.getResourcePath(bucket, key, 'object.md5'), md5);
  writeAtomic(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
};

export const ACCESS_KEY = 'IGTESTACCESSKEY';
export const SECRET_KEY = 'igtest/secret+key/not-a-real-one';
export const REGION = 'us-east-1';
export const BUCKET = 'igtest';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

// ---- Signature V4 (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html)

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');

/** RFC 3986 percent-encoding as SigV4 wants it (A-Z a-z 0-9 - . _ ~ stay). */
export function uriEncode(s, keepSlash = false) {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%2F/g, keepSlash ? '/' : '%2F');
}

/** Raw "a=1&b=2" -> [[name, value], ...] decoded. */
function parseQuery(raw) {
  if (!raw) return [];
  return raw.split('&').filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    const dec = (s) => decodeURIComponent(s.replace(/\+/g, '%20'));
    return i < 0 ? [dec(p), ''] : [dec(p.slice(0, i)), dec(p.slice(i + 1))];
  });
}

function canonicalQuery(pairs) {
  return pairs.map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
}

function canonicalUri(rawPath) {
  return rawPath.split('/').map((seg) => uriEncode(decodeURIComponent(seg))).join('/') || '/';
}

/**
 * The SigV4 signature of a request. headers: lower-case name -> value; signedHeaders: the
 * names, as listed; date: yyyymmddThhmmssZ; scope: date/region/service/aws4_request.
 */
export function signature({ method, rawPath, queryPairs, headers, signedHeaders, payloadHash,
  date, scope, secret }) {
  const canonHeaders = signedHeaders.map((h) =>
    `${h}:${String(headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const creq = [method, canonicalUri(rawPath), canonicalQuery(queryPairs), canonHeaders,
    signedHeaders.join(';'), payloadHash].join('\n');
  const sts = ['AWS4-HMAC-SHA256', date, scope, sha256hex(creq)].join('\n');
  const [day, region, service, term] = scope.split('/');
  let k = hmac('AWS4' + secret, day);
  k = hmac(k, region);
  k = hmac(k, service);
  k = hmac(k, term);
  return hmac(k, sts).toString('hex');
}

/** AWS's own examples (S3 SigV4 docs: "GET Object" and "presigned URL"); throws on a mismatch. */
export function selfTest() {
  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  const h = signature({
    method: 'GET', rawPath: '/test.txt', queryPairs: [],
    headers: { host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9',
      'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': '20130524T000000Z' },
    signedHeaders: ['host', 'range', 'x-amz-content-sha256', 'x-amz-date'],
    payloadHash: EMPTY_SHA256, date: '20130524T000000Z',
    scope: '20130524/us-east-1/s3/aws4_request', secret });
  if (h !== 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41')
    throw new Error(`SigV4 self-test (header) failed: ${h}`);
  const q = signature({
    method: 'GET', rawPath: '/test.txt',
    queryPairs: [['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
      ['X-Amz-Credential', 'AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request'],
      ['X-Amz-Date', '20130524T000000Z'], ['X-Amz-Expires', '86400'],
      ['X-Amz-SignedHeaders', 'host']],
    headers: { host: 'examplebucket.s3.amazonaws.com' }, signedHeaders: ['host'],
    payloadHash: 'UNSIGNED-PAYLOAD', date: '20130524T000000Z',
    scope: '20130524/us-east-1/s3/aws4_request', secret });
  if (q !== 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404')
    throw new Error(`SigV4 self-test (presigned) failed: ${q}`);
}

function parseAmzDate(d) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(d || '');
  return m ? Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

function s3error(ctx, status, code, message) {
  ctx.remove('ETag');
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${message}</Message><RequestId>0</RequestId></Error>`;
}

/**
 * What S3 checks before it serves a request. Returns null when the request may go on, else
 * [status, code, message]. secrets: access key -> secret key.
 */
export function checkRequest(req, secrets, now = Date.now()) {
  const url = req.url;
  const qi = url.indexOf('?');
  const rawPath = qi < 0 ? url : url.slice(0, qi);
  const pairs = parseQuery(qi < 0 ? '' : url.slice(qi + 1));
  const query = Object.fromEntries(pairs);
  const auth = req.headers.authorization;
  let cred, signedHeaders, given, date, payloadHash, queryPairs = pairs;

  if (auth && query['X-Amz-Algorithm'])
    return [400, 'InvalidArgument', 'Only one auth mechanism allowed'];
  if (auth) {
    const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) return [400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed'];
    [, cred, signedHeaders, given] = m;
    date = req.headers['x-amz-date'];
    payloadHash = req.headers['x-amz-content-sha256'];
    if (!payloadHash)
      return [400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256'];
    if (!/^([0-9a-f]{64}|UNSIGNED-PAYLOAD)$/.test(payloadHash))
      return [400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value'];
    const t = parseAmzDate(date);
    if (Number.isNaN(t)) return [403, 'AccessDenied', 'AWS authentication requires a valid x-amz-date header'];
    if (Math.abs(now - t) > 15 * 60 * 1000)
      return [403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large'];
  } else if (query['X-Amz-Algorithm']) {
    if (query['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256')
      return [400, 'AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports AWS4-HMAC-SHA256'];
    for (const p of ['X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'])
      if (!(p in query)) return [400, 'AuthorizationQueryParametersError', `missing ${p}`];
    cred = query['X-Amz-Credential'];
    signedHeaders = query['X-Amz-SignedHeaders'];
    given = query['X-Amz-Signature'];
    date = query['X-Amz-Date'];
    payloadHash = 'UNSIGNED-PAYLOAD';
    queryPairs = pairs.filter(([k]) => k !== 'X-Amz-Signature');
    const t = parseAmzDate(date);
    const expires = Number(query['X-Amz-Expires']);
    if (Number.isNaN(t)) return [400, 'AuthorizationQueryParametersError', 'bad X-Amz-Date'];
    if (!Number.isInteger(expires) || expires < 1 || expires > 604800)
      return [400, 'AuthorizationQueryParametersError', 'X-Amz-Expires must be 1..604800'];
    if (now > t + expires * 1000) return [403, 'AccessDenied', 'Request has expired'];
    if (t > now + 15 * 60 * 1000) return [403, 'AccessDenied', 'Request is not valid yet'];
  } else {
    return [403, 'AccessDenied', 'Access Denied (anonymous requests are refused)'];
  }
  const [accessKey, ...scopeParts] = cred.split('/');
  const scope = scopeParts.join('/');
  if (!(accessKey in secrets))
    return [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  if (scopeParts.length !== 4 || scopeParts[0] !== String(date).slice(0, 8) ||
      scopeParts[2] !== 's3' || scopeParts[3] !== 'aws4_request')
    return [400, 'AuthorizationHeaderMalformed', `bad credential scope ${scope}`];
  if (scopeParts[1] !== REGION)
    return [400, 'AuthorizationHeaderMalformed', `the region '${scopeParts[1]}' is wrong; expecting '${REGION}'`];
  const names = signedHeaders.split(';');
  if (!names.includes('host')) return [403, 'AccessDenied', 'host must be a signed header'];
  for (const h of Object.keys(req.headers))
    if (h.startsWith('x-amz-') && !names.includes(h))
      return [403, 'AccessDenied', `header ${h} is not signed`];
  const want = signature({ method: req.method, rawPath, queryPairs, headers: req.headers,
    signedHeaders: names, payloadHash, date, scope, secret: secrets[accessKey] });
  if (given.length !== 64 || !crypto.timingSafeEqual(Buffer.from(want), Buffer.from(given)))
    return [403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
  return null;
}

/**
 * Start s3rver on 127.0.0.1 (a free port) with the bucket made.
 * opts.secrets: extra access key -> secret key pairs.
 */
export async function startS3rver({ directory } = {}) {
  selfTest();
  const dir = directory ?? fs.mkdtempSync(path.join(os.tmpdir(), 'imagegate-s3rver-'));
  const ownDir = directory === undefined;
  // Our key pair on s3rver's one account (s3rver looks the access key up there too).
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(ACCESS_KEY, SECRET_KEY);
  const secrets = { [ACCESS_KEY]: SECRET_KEY };
  const log = [];
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    // <bucket>.s3.localhost is virtual-host style; 127.0.0.1 and s3.localhost are path style.
    serviceEndpoint: 'localhost',
    configureBuckets: [{ name: BUCKET }],
  });
  server.middleware.unshift(async (ctx, next) => {
    const refused = checkRequest(ctx.req, secrets);
    log.push({ method: ctx.method, host: ctx.headers.host, url: ctx.url, refused: refused?.[1] ?? null });
    if (refused) return s3error(ctx, ...refused);
    // for the store (below): S3 checks the body against the hash the client signed
    const sum = ctx.headers['x-amz-content-sha256'];
    if (/^[0-9a-f]{64}$/.test(sum || '')) ctx.req.igContentSha256 = sum;
    return next();
  });
  function objectPath(bucket, key) {
    const parts = key.split('/');
    const last = parts.pop();
    return path.join(dir, bucket, ...parts, `${last}._S3rver_object`);
  }
  const addr = await server.run();
  const port = addr.port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    vhostEndpoint: `http://s3.localhost:${port}`,
    bucket: BUCKET,
    region: REGION,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    directory: dir,
    /** Keys of the objects in the bucket (read from s3rver's directory), sorted. */
    objects(bucket = BUCKET) {
      const out = [];
      const walk = (d, pre) => {
        if (!fs.existsSync(d)) return;
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name), `${pre}${e.name}/`);
          else if (e.name.endsWith('._S3rver_object')) out.push(pre + e.name.slice(0, -'._S3rver_object'.length));
        }
      };
      walk(path.join(dir, bucket), '');
      return out.sort();
    },
    objectPath: (key, bucket = BUCKET) => objectPath(bucket, key),
    /** Every request seen: {method, host, url, refused: null or the S3 error code}. */
    requests: () => [...log],
    async close() {
      await server.close();
      if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const s = await startS3rver();
  process.stdout.write(`s3rver listening on port ${s.port}\n`);
  process.on('SIGTERM', async () => { await s.close(); process.exit(0); });
}

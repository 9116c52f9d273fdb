// 400: result images in an S3 bucket (--blob-backend s3), against s3rver on loopback
// (lib/s3rver.mjs: signatures checked, anonymous requests refused). Tasks complete and their
// media URLs serve exactly the stored bytes, which are objects in the bucket; media requests
// answer the same as with the fs backend (GET, HEAD, Range, If-None-Match, 410); presign mode
// redirects to a URL of the bucket that works until it expires; expiry deletes the objects;
// bad settings and wrong credentials stop the start with a clear message, and the secret key
// never appears in the logs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, cleanup, submit, poll, curl, sleep, pngSize, tmpDir, RE, t } from './lib/harness.mjs';
import { startS3rver } from './lib/s3rver.mjs';

const MODEL = 'gemini-2.5-flash-image-preview';
const PREFIX = 'e2e/results/';
let s3;

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/** What a client that follows redirects gets: {status, body} of the last answer. */
function curlFollow(url) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-S', '-L', '--max-time', '30', '-w', '\n%{http_code}', url],
      { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`curl -L ${url}: ${stderr}`));
        const cut = stdout.lastIndexOf(0x0a);
        resolve({ status: Number(stdout.subarray(cut + 1).toString()), body: stdout.subarray(0, cut) });
      });
  });
}

before(async () => {
  s3 = await startS3rver();
});
after(async () => {
  await cleanup();
  await s3?.close();
});

/** Flags and environment of a server on the S3 backend (the secret only in the environment). */
function s3Config({ vhost = false, presignTtl = 0, prefix = PREFIX, secret = s3.secretKey, extra = [] } = {}) {
  return {
    args: ['--blob-backend', 's3', '--s3-endpoint', vhost ? s3.vhostEndpoint : s3.endpoint,
      '--s3-bucket', s3.bucket, '--s3-region', s3.region, '--s3-prefix', prefix,
      '--s3-access-key', s3.accessKey, ...(vhost ? [] : ['--s3-path-style']),
      '--s3-presign-ttl', String(presignTtl), ...extra],
    env: { IMAGEGATE_S3_SECRET_KEY: secret },
  };
}

async function completed(srv, body) {
  const s = await submit(srv, { model: MODEL, ...body });
  assert.equal(s.status, 200, s.body);
  const r = await poll(srv, s.json.id);
  assert.equal(r.json.status, 'completed', r.body);
  return { id: s.json.id, hex: s.json.id.slice(5), urls: r.json.output.image_urls };
}

function assertNoSecret(srv) {
  assert.ok(!srv.stderr().includes(s3.secretKey), 'the secret key appears in the log');
  assert.ok(!srv.stdout().includes(s3.secretKey), 'the secret key appears on stdout');
}

test('proxy mode, path style: tasks complete, URLs serve the stored bytes, which are objects in the bucket', async () => {
  const before = new Set(s3.objects());
  const { args, env } = s3Config();
  const srv = await startServer({ args, env });
  assert.match(srv.stderr(), /blob s3: bucket 'igtest' at http:\/\/127\.0\.0\.1:\d+\/igtest \(path style\), prefix 'e2e\/results\/', media proxied/);
  const { urls } = await completed(srv, { prompt: 's3 proxy', n: 2, size: '16:9' });
  assert.equal(urls.length, 2);
  const added = s3.objects().filter((k) => !before.has(k));
  assert.equal(added.length, 2, `objects added: ${added}`);
  for (const u of urls) {
    const r = await curl([u]);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['content-type'], 'image/png');
    assert.equal(r.headers['content-length'], String(r.bodyBuf.length));
    assert.deepEqual(pngSize(r.bodyBuf), { width: 1344, height: 768 });
    const sum = sha256(r.bodyBuf);
    assert.equal(r.headers.etag, `"${sum}"`);
    // the object <prefix><sha256>.png holds exactly these bytes
    assert.ok(added.includes(`${PREFIX}${sum}.png`), `${sum} not in ${added}`);
    assert.ok(fs.readFileSync(s3.objectPath(`${PREFIX}${sum}.png`)).equals(r.bodyBuf));
  }
  // nothing went to the local blob directory, and the start-up probe left nothing behind
  assert.ok(!fs.existsSync(path.join(srv.dataDir, 'blobs')) ||
    fs.readdirSync(path.join(srv.dataDir, 'blobs')).length === 0);
  assert.ok(!s3.objects().some((k) => k.includes('imagegate-probe')));
  // every request imagegate made was signed right (none refused)
  assert.deepEqual(s3.requests().filter((q) => q.refused), []);
  assertNoSecret(srv);
  assert.deepEqual(await srv.stop(), { code: 0, signal: null });
});

// The same requests against the same image on fs and on s3: the answers must not differ.
async function mediaAnswers(url, size) {
  const cases = [
    [], ['-I'], ['-H', 'Range: bytes=0-9'], ['-H', 'Range: bytes=-7'],
    ['-H', `Range: bytes=100-${size + 1000}`], ['-H', `Range: bytes=${size}-`],
    ['-H', 'Range: bytes=0-1,5-6'], ['-H', 'If-None-Match: *'],
    ['-H', `If-None-Match: "${'0'.repeat(64)}"`], ['-I', '-H', 'Range: bytes=3-4'],
  ];
  const out = [];
  for (const c of cases) {
    const r = await curl([...c, url]);
    const headers = { ...r.headers };
    delete headers['x-request-id'];
    delete headers.date;
    assert.match(r.headers['x-request-id'], RE.requestId);
    if (headers['cache-control'])
      headers['cache-control'] = headers['cache-control'].replace(/max-age=\d+/, 'max-age=N');
    const body = r.json ? { ...r.json, error: { ...r.json.error, request_id: 'R' } } : sha256(r.bodyBuf);
    out.push({ args: c.join(' '), status: r.status, headers, body });
  }
  return out;
}

test('proxy mode answers exactly as the fs backend: GET, HEAD, Range, 416, If-None-Match', async () => {
  const fsSrv = await startServer();
  const { args, env } = s3Config();
  const s3Srv = await startServer({ args, env });
  const body = { prompt: 'the same image on both backends', size: '1:1' };
  const a = await completed(fsSrv, body);
  const b = await completed(s3Srv, body);
  const full = await curl([a.urls[0]]);
  const size = full.bodyBuf.length;
  assert.ok(size > 1000);
  const onFs = await mediaAnswers(a.urls[0], size);
  const n0 = s3.requests().length;
  const onS3 = await mediaAnswers(b.urls[0], size);
  const during = s3.requests().slice(n0);
  assert.deepEqual(onS3, onFs);
  // and they are the answers they should be
  assert.deepEqual(onS3.map((x) => x.status), [200, 200, 206, 206, 206, 416, 200, 304, 200, 206]);
  assert.equal(onS3[2].headers['content-range'], `bytes 0-9/${size}`);
  assert.equal(onS3[2].body, sha256(full.bodyBuf.subarray(0, 10)));
  assert.equal(onS3[1].headers['content-length'], String(size));
  assert.equal(onS3[1].body, sha256(Buffer.alloc(0)));
  assert.equal(onS3[0].headers['x-imagegate-offline'], 'true');
  // the answers came through S3: a GET of the object for each GET (the 416 too: it needs the
  // size), a HEAD for each HEAD, nothing for the 304
  const key = `/igtest/${PREFIX}${sha256(full.bodyBuf)}.png`;
  assert.deepEqual(during.map((q) => `${q.method} ${q.url}`).sort(),
    [...Array(7).fill(`GET ${key}`), ...Array(2).fill(`HEAD ${key}`)].sort());
  assertNoSecret(s3Srv);
});

test('an object missing from the bucket: 410 "no longer stored", as with a missing file', async () => {
  // configured by a JSON config file this time, secret included (mode 0600)
  const cfgFile = path.join(tmpDir(), 'imagegate.json');
  fs.writeFileSync(cfgFile, JSON.stringify({
    'blob-backend': 's3', 's3-endpoint': s3.endpoint, 's3-bucket': s3.bucket,
    's3-region': s3.region, 's3-prefix': 'e2e/missing', 's3-path-style': true,
    's3-presign-ttl': 0, 's3-access-key': s3.accessKey, 's3-secret-key': s3.secretKey,
  }), { mode: 0o600 });
  const srv = await startServer({ args: ['--config', cfgFile] });
  assert.match(srv.stderr(), /blob s3: bucket 'igtest' .* prefix 'e2e\/missing\/', media proxied/);
  const { urls } = await completed(srv, { prompt: 'deleted behind our back' });
  const r0 = await curl([urls[0]]);
  assert.equal(r0.status, 200);
  fs.rmSync(s3.objectPath(`e2e/missing/${sha256(r0.bodyBuf)}.png`));
  for (const extra of [[], ['-I']]) {
    const r = await curl([...extra, urls[0]]);
    assert.equal(r.status, 410);
    if (!extra.length) {
      assert.equal(r.json.error.code, 410);
      assert.match(r.json.error.message, /no longer stored/);
    }
  }
  assertNoSecret(srv);
});

test('presign mode, virtual-host style: 307 to a presigned URL of the bucket that serves the bytes', async () => {
  const { args, env } = s3Config({ vhost: true, presignTtl: 300 });
  const srv = await startServer({ args, env });
  assert.match(srv.stderr(), /igtest\.s3\.localhost:\d+ \(virtual-host style\).*media by presigned URLs/);
  const { urls } = await completed(srv, { prompt: 's3 presign', size: '4:3' });
  const r = await curl([urls[0]]);
  assert.equal(r.status, 307);
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['content-length'], '0');
  assert.match(r.headers['x-request-id'], RE.requestId);
  const loc = new URL(r.headers.location);
  assert.equal(loc.host, `igtest.s3.localhost:${s3.port}`);
  assert.match(loc.pathname, /^\/e2e\/results\/[0-9a-f]{64}\.png$/);
  assert.equal(loc.searchParams.get('X-Amz-Expires'), '300');
  assert.equal(loc.searchParams.get('X-Amz-SignedHeaders'), 'host');
  assert.ok(!r.headers.location.includes(s3.secretKey));
  // the URL alone (no credentials) downloads the image
  const g = await curl([r.headers.location]);
  assert.equal(g.status, 200, g.body);
  assert.deepEqual(pngSize(g.bodyBuf), { width: 1184, height: 864 });
  assert.equal(`"${sha256(g.bodyBuf)}"`, r.headers.etag);
  assert.equal(loc.pathname, `/e2e/results/${sha256(g.bodyBuf)}.png`);
  // a client that follows redirects just gets the image; HEAD is redirected too
  const follow = await curlFollow(urls[0]);
  assert.equal(follow.status, 200);
  assert.ok(follow.body.equals(g.bodyBuf));
  const head = await curl(['-I', urls[0]]);
  assert.equal(head.status, 307);
  // the bucket checks the signature: a changed URL is refused
  const tampered = new URL(r.headers.location);
  tampered.searchParams.set('X-Amz-Expires', '604800');
  const bad = await curl([tampered.toString()]);
  assert.equal(bad.status, 403);
  assert.match(bad.body, /SignatureDoesNotMatch/);
  // 404 and 410 come from imagegate before any redirect
  const unknown = await curl([`${srv.base}/media/tasks/${'f'.repeat(32)}/0.png`]);
  assert.equal(unknown.status, 404);
  assertNoSecret(srv);
});

test('presign mode: the URL stops working when its time is up', async () => {
  // Valid 3 s from a time in whole seconds: at least 2 s for the first download.
  const { args, env } = s3Config({ presignTtl: 3 });
  const srv = await startServer({ args, env });
  const { urls } = await completed(srv, { prompt: 'short presign' });
  const r = await curl([urls[0]]);
  assert.equal(r.status, 307);
  assert.equal(new URL(r.headers.location).searchParams.get('X-Amz-Expires'), '3');
  const ok = await curl([r.headers.location]);
  assert.equal(ok.status, 200);
  await sleep(4200);
  const late = await curl([r.headers.location]);
  assert.equal(late.status, 403);
  assert.match(late.body, /Request has expired/);
  // a new request gets a new URL that works
  const again = await curlFollow(urls[0]);
  assert.equal(again.status, 200);
  assert.ok(again.body.equals(ok.bodyBuf));
});

test('expiry: the objects are deleted from the bucket and the URLs answer 410', async () => {
  const prefix = 'e2e/expiry/';
  const { args, env } = s3Config({ prefix, extra: ['--reapi-expiry', '60', '--sweep-interval', '1'] });
  const s1 = await startServer({ args, env });
  const { urls, hex, id } = await completed(s1, { prompt: 'short-lived in s3', n: 2 });
  const keys = s3.objects().filter((k) => k.startsWith(prefix));
  assert.equal(keys.length, 2);
  assert.equal((await curl([urls[1]])).status, 200);
  assert.deepEqual(await s1.stop(), { code: 0, signal: null });

  // the same data, the server's clock two minutes ahead (the S3 signatures use the real clock)
  const s2 = await startServer({ dataDir: s1.dataDir, args, env: { ...env, IMAGEGATE_CLOCK_OFFSET_MS: '120000' } });
  for (const i of [0, 1]) {
    const r = await curl([`${s2.base}/media/tasks/${hex}/${i}.png`]);
    assert.equal(r.status, 410, r.body);
    assert.match(r.json.error.message, /expired/);
  }
  const deadline = Date.now() + t(10000);
  while (s3.objects().some((k) => k.startsWith(prefix)) && Date.now() < deadline) await sleep(100);
  assert.deepEqual(s3.objects().filter((k) => k.startsWith(prefix)), []);
  await sleep(300);
  assert.match(s2.stderr(), /expiry sweep: results of 1 task\(s\) expired and removed/);
  assert.doesNotMatch(s2.stderr(), /sweep could not delete/);
  const r = await curl([`${s2.base}/media/tasks/${hex}/0.png`]);
  assert.equal(r.status, 410);
  assert.ok(id.endsWith(hex));
  assertNoSecret(s2);
});

test('bad settings and wrong credentials stop the start with a clear message; no secret in it', async () => {
  const refuse = async (cfg, pattern) => {
    await assert.rejects(startServer(cfg), (e) => {
      assert.match(e.message, /exited \(code 1, signal null\) before listening/);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes(s3.secretKey), 'the secret key appears in the log');
      assert.ok(!e.message.includes('wrong-secret-value'), 'the wrong secret appears in the log');
      return true;
    });
  };
  await refuse({ args: ['--blob-backend', 'nfs'] }, /--blob-backend must be fs or s3, got 'nfs'/);
  await refuse({ args: ['--blob-backend', 's3'] }, /the s3 blob backend needs --s3-endpoint/);
  let c = s3Config();
  await refuse({ args: c.args.filter((a) => a !== '--s3-path-style'), env: c.env },
    /is an IP address, which cannot carry the bucket as a host name: set --s3-path-style/);
  c = s3Config({ secret: 'wrong-secret-value' });
  await refuse(c, /cannot write to bucket 'igtest'.*PUT: HTTP 403 SignatureDoesNotMatch.*check --s3-access-key/);
  c = s3Config();
  c.args[c.args.indexOf('--s3-bucket') + 1] = 'no-such-bucket';
  await refuse(c, /NoSuchBucket.*does the bucket exist\?/);
  c = s3Config();
  await refuse({ args: c.args, env: {} }, /--s3-secret-key \(or IMAGEGATE_S3_SECRET_KEY\) is missing/);
});

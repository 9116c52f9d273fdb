#!/usr/bin/env node
// with-s3rver.mjs: run a test program against a real S3-compatible server.
//
//   node tests/unit/with-s3rver.mjs PROGRAM [ARGS...]
//
// Starts s3rver (tests/e2e/lib/s3rver.mjs: loopback, a free port, a temporary directory, the
// bucket made, signatures checked) and runs PROGRAM --s3 ARGS... with IG_TEST_S3_ENDPOINT
// (path style, http://127.0.0.1:PORT), IG_TEST_S3_VHOST_ENDPOINT (http://s3.localhost:PORT,
// virtual-host style), IG_TEST_S3_BUCKET, _REGION, _ACCESS_KEY, _SECRET_KEY and _DIR (where
// s3rver keeps the objects). Exits with the program's status. When s3rver cannot start, this
// fails (exit 1): the S3 tests never skip silently. The npm packages come from
// scripts/install-node-deps.sh (run by `make build` and `make test`).
import { spawn } from 'node:child_process';

const [prog, ...args] = process.argv.slice(2);
if (!prog) {
  process.stderr.write('usage: with-s3rver.mjs PROGRAM [ARGS...]\n');
  process.exit(2);
}

let s3;
try {
  const { startS3rver } = await import('../e2e/lib/s3rver.mjs');
  s3 = await startS3rver();
} catch (e) {
  process.stderr.write(`with-s3rver: s3rver did not start: ${e.stack || e}\n` +
    'with-s3rver: are the npm packages installed? (scripts/install-node-deps.sh)\n');
  process.exit(1);
}
process.stderr.write(`with-s3rver: s3rver on 127.0.0.1:${s3.port}, bucket ${s3.bucket}\n`);

const child = spawn(prog, ['--s3', ...args], {
  stdio: 'inherit',
  env: {
    ...process.env,
    IG_TEST_S3_ENDPOINT: s3.endpoint,
    IG_TEST_S3_VHOST_ENDPOINT: s3.vhostEndpoint,
    IG_TEST_S3_BUCKET: s3.bucket,
    IG_TEST_S3_REGION: s3.region,
    IG_TEST_S3_ACCESS_KEY: s3.accessKey,
    IG_TEST_S3_SECRET_KEY: s3.secretKey,
    IG_TEST_S3_DIR: s3.directory,
  },
});
const forward = (sig) => child.kill(sig);
process.on('SIGTERM', forward);
process.on('SIGINT', forward);
child.on('close', async (code, signal) => {
  const refused = s3.requests().filter((r) => r.refused).length;
  process.stderr.write(`with-s3rver: ${s3.requests().length} S3 requests, ${refused} refused (as the tests ask)\n`);
  await s3.close();
  if (signal) process.stderr.write(`with-s3rver: ${prog} killed by ${signal}\n`);
  process.exit(code ?? 1);
});

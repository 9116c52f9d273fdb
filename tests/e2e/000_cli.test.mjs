// 000: the command line: help texts, exit statuses, option errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, tmpDir, cleanup } from './lib/harness.mjs';
import { after } from 'node:test';

after(cleanup);

// Every option of src/config/config.c: `serve --help` must list them all.
const SERVE_OPTIONS = [
  'listen', 'data', 'public-url', 'config', 'catalog', 'log-level', 'http-threads', 'cpu-threads',
  'max-body-bytes', 'max-header-bytes', 'conn-timeout', 'max-inflight', 'task-timeout', 'lease',
  'max-attempts', 'grace', 'reapi-expiry', 'sweep-interval', 'offline-latency-ms',
  'offline-failure-rate', 'ref-max-bytes', 'ref-max-pixels', 'fetch-connect-timeout-ms',
  'fetch-timeout-ms', 'fetch-max-redirects', 'fetch-allow-loopback',
];

test('imagegate --help prints the usage on stdout and exits 0', () => {
  for (const flag of ['--help', '-h', 'help']) {
    const r = runCli([flag]);
    assert.equal(r.code, 0, flag);
    assert.match(r.stdout, /usage: imagegate <command> \[options\]/, flag);
    assert.match(r.stdout, /^\s+serve\s+run the gateway/m, flag);
    assert.match(r.stdout, /^\s+keys\s+API keys, balances and limits: create, list, show, credit, limits,\n\s+revoke, check$/m, flag);
    assert.equal(r.stderr, '', flag);
  }
});

test('imagegate --version prints the version', () => {
  const r = runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^imagegate \d+\.\d+\.\d+\n$/);
});

test('imagegate serve --help lists every option and exits 0 without starting', () => {
  const r = runCli(['serve', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: imagegate serve \[options\]/);
  for (const o of SERVE_OPTIONS)
    assert.match(r.stdout, new RegExp(`^  --${o}\\b`, 'm'), `--${o} missing from serve --help`);
  assert.match(r.stdout, /--max-body-bytes N\s+largest request body accepted \(413 above\) \[10485760\]/);
  assert.match(r.stdout, /IMAGEGATE_MAX_BODY_BYTES/);
  assert.equal(r.stderr, '');
});

test('imagegate keys --help and keys create --help print the usage and exit 0', () => {
  for (const args of [['keys', '--help'], ['keys', '-h'], ['keys', 'create', '--help']]) {
    const r = runCli(args);
    assert.equal(r.code, 0, args.join(' '));
    assert.match(r.stdout, /^usage: imagegate keys create \[--data DIR\] \[--name NAME\] \[--credits USD\]/, args.join(' '));
    assert.match(r.stdout, /--name NAME/);
  }
});

test('unknown command: exit 2, message and usage on stderr', () => {
  const r = runCli(['frobnicate']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /unknown command 'frobnicate'/);
  assert.match(r.stderr, /usage: imagegate <command>/);
});

test('no command: exit 2 with the usage on stderr', () => {
  const r = runCli([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: imagegate <command>/);
});

test('keys without a subcommand exits 2; unknown keys subcommand exits 2', () => {
  let r = runCli(['keys']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: imagegate keys create/);
  r = runCli(['keys', 'delete']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown subcommand 'delete'/);
});

test('keys create rejects unknown options and bad credits with exit 2', () => {
  const dir = tmpDir();
  let r = runCli(['keys', 'create', '--data', dir, '--colour', 'blue']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--colour'/);
  r = runCli(['keys', 'create', '--data', dir, '--credits', '5.1234567']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--credits/);
  r = runCli(['keys', 'create', '--data', dir, '--name']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs a value/);
});

test('serve rejects an unknown option, a bad value and a missing value with exit 2', () => {
  const dir = tmpDir();
  let r = runCli(['serve', '--data', dir, '--no-such-option', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option 'no-such-option'/);
  r = runCli(['serve', '--data', dir, '--max-body-bytes', '12abc']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /max-body-bytes: '12abc' is not a number/);
  r = runCli(['serve', '--data', dir, '--max-body-bytes', '10']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /max-body-bytes: 10 is outside 1024\.\.1073741824/);
  r = runCli(['serve', '--data', dir, '--grace']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /option '--grace' needs a value/);
  r = runCli(['serve', '--data', dir, 'stray']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unexpected argument 'stray'/);
  r = runCli(['serve', '--data', dir, '--log-level', 'chatty']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--log-level must be/);
});

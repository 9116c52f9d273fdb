// harness.mjs: start imagegate servers, drive them with the real curl, poll tasks, read PNGs.
//
// Every test file starts its own server(s) with startServer() and calls `after(cleanup)`:
// cleanup() stops what is still running and removes the temporary data directories (set
// IG_KEEP_DATA=1 to keep them for a post-mortem). Timeouts scale with
// IG_TEST_TIMEOUT_MULTIPLIER (the ASan run sets 3).
import { spawn, execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BIN = process.env.IMAGEGATE_BIN;
if (!BIN) throw new Error('IMAGEGATE_BIN must name the imagegate executable');

export const MULT = Number(process.env.IG_TEST_TIMEOUT_MULTIPLIER) > 0
  ? Number(process.env.IG_TEST_TIMEOUT_MULTIPLIER) : 1;

/** ms scaled by the timeout multiplier. */
export function t(ms) {
  return Math.round(ms * MULT);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Patterns shared by the tests.
export const RE = {
  requestId: /^req_[0-9a-f-]{36}$/,
  taskId: /^task_[0-9a-f]{32}$/,
  key: /^igk_[0-9A-Za-z]{49}$/,
  etag: /^"[0-9a-f]{64}"$/,
};

// The environment of a server or CLI run: ours minus IMAGEGATE_* options (each of which the
// server would take as configuration) and GEMINI_API_KEY / GEMINI_BASE_URL (which would point
// every test server at a real upstream), plus what the test asks for.
const UPSTREAM_ENV = new Set(['GEMINI_API_KEY', 'GEMINI_BASE_URL']);
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if ((!k.startsWith('IMAGEGATE_') || k === 'IMAGEGATE_BIN') && !UPSTREAM_ENV.has(k)) env[k] = v;
  return { ...env, ...extra };
}

const servers = new Set();
const allServers = []; // every server this test process started, for the end-of-file checks
const crashes = []; // messages about servers that exited without being asked to

/** Servers of this test process that exited without being stopped (crash reports). */
export function serverCrashes() {
  return [...crashes];
}
const tmpDirs = new Set();

export function tmpDir(prefix = 'imagegate-e2e-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

/**
 * Start `imagegate serve` on 127.0.0.1:0. Resolves once it printed `listening on port N`.
 * Returns {port, base, key, dataDir, proc, stderr(), stdout(), stop(signal), kill9(), exited}.
 */
export function startServer({ args = [], env = {}, dataDir, timeoutMs = 15000 } = {}) {
  const dir = dataDir ?? tmpDir();
  const argv = ['serve', '--listen', '127.0.0.1:0', '--data', dir, '--log-level', 'info', ...args];
  const proc = spawn(BIN, argv, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exitInfo = null;
  let stopping = false;
  const exited = new Promise((resolve) => {
    // 'close', not 'exit': stderr is complete by then (a sanitizer report comes last).
    proc.on('close', (code, signal) => {
      exitInfo = { code, signal };
      servers.delete(srv);
      if (!stopping && srv.port) {
        // Not asked to stop: a crash. Say so loudly, with what the server said last.
        const msg = `imagegate (port ${srv.port}, data ${dir}) exited unexpectedly: code ${code}, signal ${signal}\n` +
          `--- its stderr (last 4000 chars) ---\n${err.slice(-4000)}`;
        crashes.push(msg);
        process.stderr.write(`\n${msg}\n`);
      }
      resolve(exitInfo);
    });
  });
  const srv = {
    proc,
    dataDir: dir,
    args: argv,
    exited,
    stderr: () => err,
    stdout: () => out,
    get running() { return exitInfo === null; },
    /** Send signal and wait for the exit: {code, signal}, or throws after timeoutMs. */
    async stop(signal = 'SIGTERM', timeoutMs = t(20000)) {
      if (exitInfo) return exitInfo;
      stopping = true;
      proc.kill(signal);
      let timer;
      const timeout = new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`server did not exit within ${timeoutMs} ms of ${signal}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async kill9() {
      if (exitInfo) return exitInfo;
      stopping = true;
      proc.kill('SIGKILL');
      return exited;
    },
  };
  servers.add(srv);
  allServers.push(srv);
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { err += d; });
  proc.stdout.setEncoding('utf8');

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`imagegate did not report its port within ${t(timeoutMs)} ms\nstderr:\n${err}`));
    }, t(timeoutMs));
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on port (\d+)/.exec(out);
      if (m && !srv.port) {
        clearTimeout(timer);
        srv.port = Number(m[1]);
        srv.base = `http://127.0.0.1:${srv.port}`;
        const keyFile = path.join(dir, 'first-key.txt');
        srv.key = fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : undefined;
        resolve(srv);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      if (!srv.port)
        reject(new Error(`imagegate exited (code ${code}, signal ${signal}) before listening\nstderr:\n${err}`));
    });
  });
}

// What sanitizers (ASan, LSan, UBSan, TSan) print when they find something.
const SANITIZER_RE = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: |WARNING: ThreadSanitizer/;

/**
 * Stop every server still running (SIGKILL after a short SIGTERM grace), remove temp dirs.
 * Then fail (the `after` hook, hence the file) when any server of this file crashed
 * (exited without being asked) or printed a sanitizer report.
 */
export async function cleanup() {
  await Promise.all([...servers].map(async (s) => {
    try {
      await s.stop('SIGTERM', t(5000));
    } catch {
      await s.kill9();
    }
  }));
  if (!process.env.IG_KEEP_DATA)
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
  const problems = [...crashes];
  for (const s of allServers) {
    const m = SANITIZER_RE.exec(s.stderr());
    if (m) {
      const at = Math.max(0, m.index - 200);
      problems.push(`imagegate (data ${s.dataDir}) printed a sanitizer report:\n${s.stderr().slice(at, at + 6000)}`);
    }
  }
  allServers.length = 0;
  crashes.length = 0;
  if (problems.length) throw new Error(problems.join('\n\n'));
}

// Last resort: never leave a server behind when the test process ends.
process.on('exit', () => {
  for (const s of servers) {
    try { s.proc.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** Run the imagegate CLI synchronously: {code, stdout, stderr}. */
export function runCli(args, { env = {} } = {}) {
  try {
    const stdout = execFileSync(BIN, args, { env: childEnv(env), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    if (typeof e.status !== 'number') throw e;
    return { code: e.status, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `imagegate keys create --data dir [--name name]`: the printed key (trimmed). */
export function createKey(dataDir, name) {
  const args = ['keys', 'create', '--data', dataDir];
  if (name !== undefined) args.push('--name', name);
  const r = runCli(args);
  if (r.code !== 0) throw new Error(`keys create exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

// Parse `curl -i` output: skips interim 1xx responses; headers lower-cased, last value wins.
function parseCurlOutput(buf) {
  let rest = buf;
  for (;;) {
    const text = rest.subarray(0, Math.min(rest.length, 8)).toString('latin1');
    if (!text.startsWith('HTTP/')) {
      return { status: 0, statusLine: '', headers: {}, rawHeaders: [], bodyBuf: rest };
    }
    let end = rest.indexOf('\r\n\r\n');
    let sepLen = 4;
    if (end < 0) { end = rest.length; sepLen = 0; }
    const head = rest.subarray(0, end).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/[\d.]+ (\d{3})/.exec(lines[0]);
    const status = m ? Number(m[1]) : 0;
    const after = rest.subarray(Math.min(rest.length, end + sepLen));
    if (status >= 100 && status < 200 && after.subarray(0, 5).toString('latin1') === 'HTTP/') {
      rest = after;
      continue;
    }
    const headers = {};
    const rawHeaders = [];
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const name = l.slice(0, i).trim().toLowerCase();
      const value = l.slice(i + 1).trim();
      headers[name] = value;
      rawHeaders.push([name, value]);
    }
    return { status, statusLine: lines[0], headers, rawHeaders, bodyBuf: after };
  }
}

/**
 * Run `curl -s -S -i ...args`. opts.input: bytes for stdin (use `--data-binary @-`).
 * Resolves {status, headers, body, bodyBuf, json, exitCode, curlStderr}; never rejects on a
 * curl exit status (the caller asserts), only when curl produced no HTTP response at all and
 * opts.allowNoResponse is not set.
 */
export function curl(args, opts = {}) {
  const timeoutS = Math.ceil(t(opts.timeoutMs ?? 30000) / 1000);
  const argv = ['-s', '-S', '-i', '--max-time', String(timeoutS), ...args];
  return new Promise((resolve, reject) => {
    const child = execFile('curl', argv, { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const exitCode = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        const r = parseCurlOutput(stdout);
        r.body = r.bodyBuf.toString('utf8');
        try { r.json = JSON.parse(r.body); } catch { r.json = undefined; }
        r.exitCode = exitCode;
        r.curlStderr = stderr.toString('utf8');
        r.argv = argv;
        if (!r.status && !opts.allowNoResponse)
          reject(new Error(`curl ${argv.join(' ').slice(0, 300)}: no HTTP response (exit ${exitCode}): ${r.curlStderr}` +
            (crashes.length ? `\n${crashes.join('\n')}` : '')));
        else
          resolve(r);
      });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Bearer header args for curl. */
export function auth(key) {
  return ['-H', `Authorization: Bearer ${key}`];
}

/** POST /api/v1/images/generations with a JSON body (object -> JSON.stringify, string as is). */
export function submit(server, body, { key = server.key, contentType = 'application/json', extra = [] } = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const args = [`${server.base}/api/v1/images/generations`, ...(key ? auth(key) : [])];
  if (contentType) args.push('-H', `Content-Type: ${contentType}`);
  args.push('--data-binary', '@-', ...extra);
  return curl(args, { input: data });
}

/** GET /api/v1/tasks/{id}. */
export function getTask(server, id, key = server.key) {
  return curl([`${server.base}/api/v1/tasks/${id}`, ...(key ? auth(key) : [])]);
}

/** Poll GET /api/v1/tasks/{id} every 100 ms until completed or failed; the last response. */
export async function poll(server, id, key = server.key, { timeoutMs = 30000 } = {}) {
  const deadline = Date.now() + t(timeoutMs);
  let last;
  for (;;) {
    last = await getTask(server, id, key);
    if (last.status !== 200)
      throw new Error(`poll ${id}: HTTP ${last.status}: ${last.body}`);
    if (last.json && (last.json.status === 'completed' || last.json.status === 'failed'))
      return last;
    if (Date.now() > deadline)
      throw new Error(`poll ${id}: still ${last.json?.status} after ${t(timeoutMs)} ms`);
    await sleep(100);
  }
}

/** Download a URL with curl (no auth): the curl result (bodyBuf holds the bytes). */
export function download(url, extra = []) {
  return curl([url, ...extra]);
}

/** {width, height} from a PNG's IHDR; throws when buf is not a PNG. */
export function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 24 || !buf.subarray(0, 8).equals(sig) || buf.subarray(12, 16).toString('latin1') !== 'IHDR')
    throw new Error('not a PNG');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/** Run fn over items with at most `limit` at once; results in order. */
export async function pmap(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

// 240: credits. A metered key holds price x images at the submit, in the task's own
// transaction; the task's end releases the hold and captures what was delivered, in the
// transaction that ends it. Insufficient balance is 402 / 30001 before anything is stored.
// The ledger is read back with the sqlite3 shell; `keys check` verifies every balance.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer, cleanup, submit, poll, runCli, pmap, sleep, tmpDir,
} from './lib/harness.mjs';
import { startFakeGemini, promptOf } from './lib/fakegemini.mjs';
import { geminiChannel, writeConfig, fastRouter, uniquePrompt } from './lib/upstream.mjs';

let fake;
after(async () => {
  await cleanup();
  await fake?.close();
});

const MODEL = 'gemini-2.5-flash-image-preview';
const PRICE = 39000; // micro-dollars per 1K image of gemini-2.5-flash-image (etc/models.json)

function sql(server, q) {
  return execFileSync('sqlite3', ['-readonly', '-cmd', '.timeout 5000', path.join(server.dataDir, 'imagegate.db'), q],
    { encoding: 'utf8' }).trim();
}

/** A metered key with this opening balance (USD string); {key, id}. */
function meteredKey(server, usd, name = 'metered') {
  const r = runCli(['keys', 'create', '--data', server.dataDir, '--name', name, '--credits', usd]);
  assert.equal(r.code, 0, r.stderr);
  const key = r.stdout.trim();
  const id = Number(sql(server, `SELECT max(id) FROM keys WHERE name = '${name}'`));
  return { key, id };
}

const balance = (server, id) => Number(sql(server, `SELECT credits FROM keys WHERE id = ${id}`));
const entries = (server, taskId) => sql(server,
  `SELECT kind || ':' || amount FROM ledger WHERE task_id = '${taskId.replace(/^task_/, '')}' ORDER BY id`).split('\n').filter(Boolean);

function keysCheck(server) {
  const r = runCli(['keys', 'check', '--data', server.dataDir]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^ok: \d+ key\(s\), every balance equals the sum of its ledger entries\n$/);
}

test('success: the hold is released and exactly the delivered images are captured', async () => {
  const s = await startServer();
  const { key, id } = meteredKey(s, '0.10');
  assert.equal(balance(s, id), 100000);
  const r = await submit(s, { model: MODEL, prompt: 'two paid images', n: 2 }, { key });
  assert.equal(r.status, 200, r.body);
  const done = await poll(s, r.json.id, key);
  assert.equal(done.json.status, 'completed');
  assert.equal(balance(s, id), 100000 - 2 * PRICE);
  assert.deepEqual(entries(s, r.json.id), [`hold:${-2 * PRICE}`, `release:${2 * PRICE}`, `capture:${-2 * PRICE}`]);
  assert.equal(sql(s, `SELECT price_held || '/' || price_captured FROM tasks WHERE id = '${r.json.id.slice(5)}'`),
    `${2 * PRICE}/${2 * PRICE}`);
  keysCheck(s);
});

test('insufficient balance: 402 with code 30001 before anything is stored; the hold counts against the balance', async () => {
  const s = await startServer({ args: ['--offline-latency-ms', '1500'] });
  const { key, id } = meteredKey(s, '0.1');
  const tasksBefore = Number(sql(s, 'SELECT count(*) FROM tasks'));
  const r1 = await submit(s, { model: MODEL, prompt: 'affordable', n: 2 }, { key }); // holds 0.078
  assert.equal(r1.status, 200, r1.body);
  const r2 = await submit(s, { model: MODEL, prompt: 'one too many' }, { key }); // 0.039 > 0.022 left
  assert.equal(r2.status, 402, r2.body);
  assert.equal(r2.json.error.code, 30001);
  assert.match(r2.json.error.message, /^insufficient credits: this request holds \$0\.039000$/);
  assert.equal(Number(sql(s, 'SELECT count(*) FROM tasks')), tasksBefore + 1, 'the refused submit stored no task');
  assert.equal(balance(s, id), 100000 - 2 * PRICE, 'held while it runs');
  // The operator's first key is unmetered: never refused, its spending recorded below zero.
  const free = await submit(s, { model: MODEL, prompt: 'operator' });
  assert.equal(free.status, 200, free.body);
  await poll(s, free.json.id);
  assert.equal(Number(sql(s, "SELECT credits FROM keys WHERE name = 'first key'")), -PRICE);
  await poll(s, r1.json.id, key);
  keysCheck(s);
});

test('failure: the whole hold goes back, nothing is captured', async () => {
  const s = await startServer({ args: ['--offline-failure-rate', '1'] });
  const { key, id } = meteredKey(s, '1.00');
  const r = await submit(s, { model: MODEL, prompt: 'fails', n: 3 }, { key });
  assert.equal(r.status, 200, r.body);
  const done = await poll(s, r.json.id, key);
  assert.equal(done.json.status, 'failed');
  assert.equal(balance(s, id), 1000000);
  assert.deepEqual(entries(s, r.json.id), [`hold:${-3 * PRICE}`, `release:${3 * PRICE}`]);
  keysCheck(s);
});

test('partial result: 2 of 3 images delivered pays for 2', async () => {
  fake = await startFakeGemini();
  const prompt = uniquePrompt('three asked, two delivered');
  let n = 0;
  // The third call for this prompt is refused (400: the request ran and failed, not retried).
  fake.script((rec) => (promptOf(rec) === prompt && ++n === 3
    ? { error: [400, 'INVALID_ARGUMENT', 'refused'] } : undefined));
  const cfg = writeConfig([geminiChannel('gem-a', fake, { cost_per_image_usd: '0.03' })]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  const { key, id } = meteredKey(s, '1.00');
  const r = await submit(s, { model: MODEL, prompt, n: 3 }, { key });
  assert.equal(r.status, 200, r.body);
  const done = await poll(s, r.json.id, key);
  assert.equal(done.json.status, 'completed', JSON.stringify(done.json));
  assert.equal(done.json.output.image_urls.length, 2);
  assert.equal(balance(s, id), 1000000 - 2 * PRICE);
  assert.deepEqual(entries(s, r.json.id), [`hold:${-3 * PRICE}`, `release:${3 * PRICE}`, `capture:${-2 * PRICE}`]);
  // the upstream's cost of the 2 images is recorded beside the price: the operator's margin
  assert.equal(sql(s, `SELECT cost FROM tasks WHERE id = '${r.json.id.slice(5)}'`), '60000');
  const u = runCli(['usage', '--data', s.dataDir, '--key', String(id), '--by', 'channel']);
  // (each of the 2 calls that delivered also reported 16 undetailed tokens: text)
  assert.equal(u.stdout.split('\n')[1], 'gem-a\t1\t1\t2\t2580\t32\t0.078000\t0.060000\t0.018000');
  keysCheck(s);
});

test('50 clients against a balance that affords exactly 5 images: exactly 5 accepted, never below zero', async () => {
  const s = await startServer();
  const { key, id } = meteredKey(s, '0.195'); // 5 x 0.039
  const results = await pmap(Array.from({ length: 50 }, (_, i) => i), 50,
    (i) => submit(s, { model: MODEL, prompt: `race ${i}`, resolution: '1K' }, { key }));
  const ok = results.filter((r) => r.status === 200);
  assert.equal(ok.length, 5, results.map((r) => r.status).join(','));
  assert.ok(results.every((r) => r.status === 200 || (r.status === 402 && r.json.error.code === 30001)));
  for (const r of ok) assert.equal((await poll(s, r.json.id, key)).json.status, 'completed');
  assert.equal(balance(s, id), 0);
  assert.equal(Number(sql(s, `SELECT count(*) FROM ledger WHERE key_id = ${id} AND kind = 'capture'`)), 5);
  keysCheck(s);
});

test('kill -9 while paid tasks run: after the restart every hold is settled and every balance adds up', async () => {
  const s1 = await startServer({ args: ['--offline-latency-ms', '1500'] });
  const { key, id } = meteredKey(s1, '2.00');
  const subs = await Promise.all(Array.from({ length: 6 }, (_, i) =>
    submit(s1, { model: MODEL, prompt: `crash ${i}`, n: (i % 2) + 1 }, { key })));
  for (const r of subs) assert.equal(r.status, 200, r.body);
  await sleep(300);
  await s1.kill9();
  const s2 = await startServer({ dataDir: s1.dataDir });
  let images = 0;
  for (const r of subs) {
    const done = await poll(s2, r.json.id, key, { timeoutMs: 30000 });
    assert.equal(done.json.status, 'completed');
    images += done.json.output.image_urls.length;
    const e = entries(s2, r.json.id);
    assert.equal(e.length, 3, e.join(' ')); // one hold, one release, one capture: never twice
  }
  assert.equal(images, 9);
  assert.equal(balance(s2, id), 2000000 - 9 * PRICE);
  assert.equal(Number(sql(s2, "SELECT count(*) FROM tasks WHERE price_held > 0 AND state NOT IN ('succeeded','failed','cancelled')")), 0);
  keysCheck(s2);
});

test('keys list, credit and check', async () => {
  const s = await startServer();
  const { id } = meteredKey(s, '1.50', 'topped');
  let r = runCli(['keys', 'credit', String(id), '--amount', '2.25', '--note', 'invoice 7', '--data', s.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '3.750000\n');
  r = runCli(['keys', 'credit', String(id), '--amount', '-4.00', '--data', s.dataDir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot go below 0/);
  r = runCli(['keys', 'credit', String(id), '--amount', '-0.75', '--data', s.dataDir]);
  assert.equal(r.stdout, '3.000000\n');
  r = runCli(['keys', 'credit', '999', '--amount', '1', '--data', s.dataDir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no key has this id/);
  r = runCli(['keys', 'credit', String(id), '--amount', '1.0000001', '--data', s.dataDir]);
  assert.equal(r.code, 2);
  r = runCli(['keys', 'list', '--data', s.dataDir]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, new RegExp(`^${id}\ttopped\tmetered\t3\\.000000\tactive\trpm=default\tmax-tasks=default$`, 'm'));
  assert.match(r.stdout, /^1\tfirst key\tunmetered\t0\.000000\tactive\trpm=0\tmax-tasks=0$/m);
  assert.deepEqual(sql(s, `SELECT kind || ':' || amount || ':' || COALESCE(note, '') FROM ledger WHERE key_id = ${id} ORDER BY id`).split('\n'),
    ['topup:1500000:initial credits', 'topup:2250000:invoice 7', 'adjust:-750000:']);
  keysCheck(s);
  // A balance that does not add up is reported and exits 1.
  execFileSync('sqlite3', [path.join(s.dataDir, 'imagegate.db'), `UPDATE keys SET credits = credits + 1 WHERE id = ${id}`]);
  r = runCli(['keys', 'check', '--data', s.dataDir]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, `key ${id}: balance 3.000001 but its ledger sums to 3.000000\n`);
});

test('a model priced by tokens: the hold is image tokens x its price, the charge what the upstream reported', async () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const cat = JSON.parse(fs.readFileSync(path.join(here, '../../etc/models.json'), 'utf8'));
  const m = cat.models.find((x) => x.id === 'gemini-2.5-flash-image');
  m.price_per_1m_tokens_usd = { image: '30', text: '2.50' }; // Google's list price per token
  const file = path.join(tmpDir('imagegate-cat-'), 'models.json');
  fs.writeFileSync(file, JSON.stringify(cat));
  const s = await startServer({ args: ['--catalog', file] });
  const { key, id } = meteredKey(s, '1.00');
  const r = await submit(s, { model: MODEL, prompt: 'priced by tokens', n: 2 }, { key });
  assert.equal(r.status, 200, r.body);
  // held: 2 x 1290 image tokens at $30 + as many text tokens at $2.50 per million
  assert.equal(sql(s, `SELECT price_held FROM tasks WHERE id = '${r.json.id.slice(5)}'`), String(Math.round(2580 * 32.5)));
  assert.equal((await poll(s, r.json.id, key)).json.status, 'completed');
  // charged: the 2580 image tokens the provider reported at $30 per million = $0.0774 (not 2 x $0.039)
  assert.deepEqual(entries(s, r.json.id), ['hold:-83850', 'release:83850', 'capture:-77400']);
  assert.equal(balance(s, id), 1000000 - 77400);
  keysCheck(s);
});

test('moderated by the upstream: the whole hold goes back', async () => {
  fake ??= await startFakeGemini();
  const cfg = writeConfig([geminiChannel('gem-m', fake)]);
  const s = await startServer({ args: ['--config', cfg, ...fastRouter()] });
  const { key, id } = meteredKey(s, '1.00');
  for (const marker of ['[[safety-finish]]', '[[safety-prompt]]']) {
    const r = await submit(s, { model: MODEL, prompt: uniquePrompt(`a refused picture ${marker}`), n: 2 }, { key });
    assert.equal(r.status, 200, r.body);
    const done = await poll(s, r.json.id, key);
    assert.equal(done.json.status, 'failed');
    assert.equal(done.json.error.code, 80003);
    assert.deepEqual(entries(s, r.json.id), [`hold:${-2 * PRICE}`, `release:${2 * PRICE}`]);
  }
  assert.equal(balance(s, id), 1000000);
  keysCheck(s);
});

test('kill -9 twice while paid tasks run against a faulty upstream (20% 503s): every hold settles once, balances add up', async () => {
  fake ??= await startFakeGemini();
  let hold = true;
  fake.script((rec) => {
    if (!/crash-faulty/.test(promptOf(rec) ?? '')) return undefined;
    if (Math.random() < 0.2) return { error: [503, 'UNAVAILABLE', 'overloaded'] };
    return hold ? { ok: true, delayMs: 1500 } : { ok: true };
  });
  const cfg = writeConfig([geminiChannel('gem-c', fake)]);
  const args = ['--config', cfg, ...fastRouter({ attempts: 5 })];
  const s1 = await startServer({ args });
  const { key, id } = meteredKey(s1, '5.00');
  const subs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
    submit(s1, { model: MODEL, prompt: uniquePrompt(`crash-faulty ${i}`), n: (i % 2) + 1 }, { key })));
  for (const r of subs) assert.equal(r.status, 200, r.body);
  await sleep(400);
  await s1.kill9();
  const s2 = await startServer({ dataDir: s1.dataDir, args });
  await sleep(400);
  await s2.kill9();
  hold = false;
  const s3 = await startServer({ dataDir: s1.dataDir, args });
  let charged = 0;
  for (const r of subs) {
    const done = await poll(s3, r.json.id, key, { timeoutMs: 60000 });
    assert.ok(['completed', 'failed'].includes(done.json.status), JSON.stringify(done.json));
    const e = entries(s3, r.json.id);
    assert.equal(e.filter((x) => x.startsWith('hold:')).length, 1, e.join(' '));
    assert.equal(e.filter((x) => x.startsWith('release:')).length, 1, e.join(' '));
    assert.ok(e.filter((x) => x.startsWith('capture:')).length <= 1, e.join(' '));
    const images = done.json.status === 'completed' ? done.json.output.image_urls.length : 0;
    const cap = e.find((x) => x.startsWith('capture:'));
    assert.equal(cap ? -Number(cap.split(':')[1]) : 0, images * PRICE, `${r.json.id}: paid for what it got`);
    charged += images * PRICE;
  }
  assert.equal(balance(s3, id), 5000000 - charged);
  keysCheck(s3);
  fake.script(null);
});

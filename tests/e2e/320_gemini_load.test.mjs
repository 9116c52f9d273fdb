// 320: 1000 tasks from 20 parallel clients against a Gemini upstream that answers 503 to a
// random (seeded) 20% of requests: every task ends, completed or failed 80001 after exactly
// --upstream-max-attempts calls; no task succeeds twice upstream; the fake's successes are
// exactly the completed tasks' images.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, submit, getTask, poll, curl, pmap, sleep, t as scaled, RE } from './lib/harness.mjs';
import { startFakeGemini, randomFailures, promptOf } from './lib/fakegemini.mjs';
import { MODEL, geminiChannel, writeConfig } from './lib/upstream.mjs';

let fake;
after(async () => {
  await cleanup();
  await fake?.close();
});

const TASKS = 1000;
const CLIENTS = 20;
const ATTEMPTS = 5;

test('1000 tasks, 20 clients, 20% random 503s: every task ends once; successes match images', async (t) => {
  fake = await startFakeGemini();
  fake.script(randomFailures(0.2, 20240611));
  const cfg = writeConfig([geminiChannel('gem-a', fake)]);
  const s = await startServer({
    args: ['--config', cfg, '--upstream-max-attempts', String(ATTEMPTS), '--upstream-backoff-base-ms', '5',
      '--upstream-backoff-max-ms', '20'],
  });
  const t0 = Date.now();

  // 20 clients, each submitting its share in turn.
  const per = TASKS / CLIENTS;
  const byClient = await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const mine = [];
    for (let k = 0; k < per; k++) {
      const prompt = `load c${c} k${k}`;
      const r = await submit(s, { model: MODEL, prompt });
      assert.equal(r.status, 200, `client ${c} #${k}: ${r.body}`);
      assert.match(r.json.id, RE.taskId);
      mine.push({ id: r.json.id, prompt });
    }
    return mine;
  }));
  const subs = byClient.flat();
  t.diagnostic(`${TASKS} submits in ${Date.now() - t0} ms`);
  assert.equal(new Set(subs.map((x) => x.id)).size, TASKS, 'distinct task ids');

  // Wait until the upstream traffic settles: the last submitted tasks done, then no new requests.
  await poll(s, subs.at(-1).id, s.key, { timeoutMs: 60000 });
  let n = -1;
  for (const deadline = Date.now() + scaled(60000); n !== fake.requests.length && Date.now() < deadline;) {
    n = fake.requests.length;
    await sleep(300);
  }

  // Every task polled once (again only if it was somehow still running).
  const finals = await pmap(subs, CLIENTS, async ({ id, prompt }) => {
    let r = await getTask(s, id);
    assert.equal(r.status, 200, r.body);
    if (r.json.status !== 'completed' && r.json.status !== 'failed') r = await poll(s, id, s.key, { timeoutMs: 30000 });
    return { id, prompt, task: r.json };
  });
  t.diagnostic(`all ended ${Date.now() - t0} ms after the first submit; upstream requests ${fake.requests.length}`);
  assert.equal(new Set(finals.map((f) => f.task.id)).size, TASKS, 'each id answered, none twice');

  // Per prompt: what the fake saw.
  const calls = new Map();
  for (const r of fake.requests) {
    const p = promptOf(r);
    if (!calls.has(p)) calls.set(p, []);
    calls.get(p).push(r.reply?.status);
  }
  let completed = 0;
  let images = 0;
  let failed = 0;
  for (const { id, prompt, task } of finals) {
    const seen = calls.get(prompt) ?? [];
    if (task.status === 'completed') {
      completed++;
      images += task.output.image_urls.length;
      assert.equal(task.output.image_urls.length, 1, `${id}: ${JSON.stringify(task)}`);
      assert.equal(seen.filter((st) => st === 200).length, 1, `${id}: exactly one upstream success, saw ${seen}`);
      assert.equal(seen.at(-1), 200, `${id}: the success came last: ${seen}`);
      assert.ok(seen.length <= ATTEMPTS, `${id}: ${seen.length} calls`);
    } else {
      failed++;
      assert.equal(task.status, 'failed', `${id}: ${JSON.stringify(task)}`);
      assert.equal(task.error.code, 80001, `${id}: ${JSON.stringify(task.error)}`);
      assert.deepEqual(seen, Array(ATTEMPTS).fill(503), `${id}: upstream saw ${seen}`);
    }
  }
  t.diagnostic(`completed ${completed}, failed ${failed}; fake successes ${fake.stats.ok}, 503s ${fake.stats.byStatus[503] ?? 0}`);
  assert.equal(completed + failed, TASKS);
  assert.equal(fake.stats.ok, images, 'every upstream success became exactly one stored image');
  assert.equal(fake.stats.images, images);
  // Nothing asked the fake for a prompt we did not submit.
  assert.equal(calls.size, TASKS);

  const h = await curl([`${s.base}/healthz`]);
  assert.equal(h.status, 200);
  assert.deepEqual(await s.stop(), { code: 0, signal: null });
});

// 200: SIGTERM stops gracefully: running tasks get --grace seconds, the rest go back to the
// queue and complete after a restart on the same data directory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, submit, poll, getTask, curl, download, pngSize, sleep, t,
} from './lib/harness.mjs';
import { startFakeGemini } from './lib/fakegemini.mjs';
import { geminiChannel, writeConfig, fastRouter, uniquePrompt } from './lib/upstream.mjs';

let fake;
after(async () => {
  await cleanup();
  await fake?.close();
});

const MODEL = 'gemini-2.5-flash-image-preview';

test('SIGTERM with nothing running exits 0 quickly', async () => {
  const s = await startServer();
  const r = await curl([`${s.base}/healthz`]);
  assert.equal(r.status, 200);
  const t0 = Date.now();
  const res = await s.stop('SIGTERM', t(5000));
  assert.deepEqual(res, { code: 0, signal: null });
  assert.ok(Date.now() - t0 < t(3000), `took ${Date.now() - t0} ms`);
  assert.match(s.stderr(), /SIGTERM received/);
  assert.match(s.stderr(), /serve: stopped/);
});

test('SIGINT stops gracefully too', async () => {
  const s = await startServer();
  const res = await s.stop('SIGINT', t(5000));
  assert.deepEqual(res, { code: 0, signal: null });
  assert.match(s.stderr(), /SIGINT received/);
});

test('SIGTERM during 3 running tasks (--grace 1): exit 0 within ~8 s; after a restart all 3 complete', async () => {
  const s1 = await startServer({ args: ['--offline-latency-ms', '4000', '--grace', '1'] });
  const bodies = [
    { model: MODEL, prompt: 'graceful one' },
    { model: MODEL, prompt: 'graceful two', size: '16:9', n: 2 },
    { model: `${MODEL}-official`, prompt: 'graceful three', size: '9:16' },
  ];
  const subs = await Promise.all(bodies.map((b) => submit(s1, b)));
  for (const r of subs) assert.equal(r.status, 200, r.body);
  await sleep(500);
  // Still running: the offline provider holds them for 4 s.
  for (const r of subs) assert.equal((await getTask(s1, r.json.id)).json.status, 'processing');

  const t0 = Date.now();
  const res = await s1.stop('SIGTERM', t(15000));
  const took = Date.now() - t0;
  assert.deepEqual(res, { code: 0, signal: null }, s1.stderr());
  assert.ok(took < t(8000), `exit took ${took} ms`);
  assert.match(s1.stderr(), /put back in the queue/);

  const s2 = await startServer({ dataDir: s1.dataDir });
  assert.equal(s2.key, s1.key);
  const want = [[1024, 1024, 1], [1344, 768, 2], [768, 1344, 1]];
  for (const [i, r] of subs.entries()) {
    const done = await poll(s2, r.json.id, s2.key, { timeoutMs: 20000 });
    assert.equal(done.json.status, 'completed', JSON.stringify(done.json));
    assert.equal(done.json.id, r.json.id);
    assert.equal(done.json.model, bodies[i].model);
    assert.equal(done.json.created_at, r.json.created_at);
    assert.equal(done.json.error, null);
    const [w, h, n] = want[i];
    assert.equal(done.json.output.image_urls.length, n);
    for (const u of done.json.output.image_urls) {
      assert.ok(u.startsWith(`${s2.base}/media/tasks/`), 'URLs name the new server');
      const img = await download(u);
      assert.equal(img.status, 200);
      assert.deepEqual(pngSize(img.bodyBuf), { width: w, height: h });
    }
  }
  assert.deepEqual(await s2.stop(), { code: 0, signal: null });
});

test('SIGTERM waits for tasks that finish within the grace period', async () => {
  const s = await startServer({ args: ['--offline-latency-ms', '1500', '--grace', '10'] });
  const r = await submit(s, { model: MODEL, prompt: 'finishes in grace' });
  assert.equal(r.status, 200);
  await sleep(300);
  const t0 = Date.now();
  assert.deepEqual(await s.stop('SIGTERM', t(15000)), { code: 0, signal: null });
  const took = Date.now() - t0;
  assert.ok(took < t(8000), `took ${took} ms: it should not wait the whole grace`);
  // The task completed before the exit: a restart finds it done at once.
  const s2 = await startServer({ dataDir: s.dataDir });
  const g = await getTask(s2, r.json.id);
  assert.equal(g.json.status, 'completed', JSON.stringify(g.json));
});

test('SIGTERM while upstream calls hang: the calls are aborted, exit 0 after the grace (not the channel timeout); a restart completes the tasks', async () => {
  fake = await startFakeGemini();
  let hang = true;
  fake.script(() => (hang ? { stall: true } : undefined));
  // The channel would wait 60 s for an answer: the stop must not.
  const cfg = writeConfig([geminiChannel('gem-a', fake, { timeout_ms: 60000 })]);
  const args = ['--config', cfg, '--grace', '1', ...fastRouter()];
  const s1 = await startServer({ args });
  const prompts = [uniquePrompt('hangs one'), uniquePrompt('hangs two'), uniquePrompt('hangs three')];
  const subs = await Promise.all(prompts.map((prompt) => submit(s1, { model: 'gemini-2.5-flash-image', prompt })));
  for (const r of subs) assert.equal(r.status, 200, r.body);
  for (let i = 0; i < 100 && fake.requests.length < 3; i++) await sleep(50);
  assert.equal(fake.requests.length, 3, 'the three calls reached the upstream');

  const t0 = Date.now();
  const res = await s1.stop('SIGTERM', t(15000));
  const took = Date.now() - t0;
  assert.deepEqual(res, { code: 0, signal: null }, s1.stderr());
  assert.ok(took < t(5000), `exit took ${took} ms`);
  assert.equal((s1.stderr().match(/put back in the queue/g) ?? []).length, 3);
  assert.match(s1.stderr(), /aborting 3 upstream call\(s\) of tasks given back/);
  assert.equal((s1.stderr().match(/result=cancelled/g) ?? []).length, 3, 'one aborted attempt each, no retry');
  assert.equal(fake.requests.length, 3, 'no retry was sent while stopping');

  hang = false;
  const s2 = await startServer({ dataDir: s1.dataDir, args });
  for (const r of subs) {
    const done = await poll(s2, r.json.id, s2.key, { timeoutMs: 20000 });
    assert.equal(done.json.status, 'completed', JSON.stringify(done.json));
    assert.equal(done.json.output.image_urls.length, 1);
  }
  assert.equal(fake.requests.length, 6, 'each task called the upstream once more, after the restart');
  assert.deepEqual(await s2.stop(), { code: 0, signal: null });
});

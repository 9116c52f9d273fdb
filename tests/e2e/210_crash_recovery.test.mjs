// 210: kill -9 mid-run loses no accepted task: after a restart on the same data directory every
// task that got a 200 completes, with all of its images downloadable.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, submit, poll, getTask, download, pngSize, pmap, sleep,
} from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-2.5-flash-image-preview';
const SIZES = { '1:1': [1024, 1024], '16:9': [1344, 768], '3:4': [864, 1184], '21:9': [1536, 672] };

function bodyFor(i) {
  const ratios = Object.keys(SIZES);
  return { model: MODEL, prompt: `crash test task ${i}`, size: ratios[i % ratios.length], n: (i % 3) + 1 };
}

async function checkAllCompleted(server, tasks) {
  await pmap(tasks, 4, async ({ id, body, created_at: createdAt }) => {
    const r = await poll(server, id, server.key, { timeoutMs: 60000 });
    assert.equal(r.json.status, 'completed', `${id}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.created_at, createdAt);
    assert.equal(r.json.error, null);
    const urls = r.json.output.image_urls;
    assert.equal(urls.length, body.n, id);
    const imgs = await Promise.all(urls.map((u) => download(u)));
    for (const img of imgs) {
      assert.equal(img.status, 200);
      assert.deepEqual(pngSize(img.bodyBuf), { width: SIZES[body.size][0], height: SIZES[body.size][1] });
      assert.equal(img.headers['content-length'], String(img.bodyBuf.length));
    }
  });
}

test('kill -9 twice during 20 running tasks: after the last restart all 20 complete', async () => {
  const s1 = await startServer({ args: ['--offline-latency-ms', '1500'] });
  const bodies = Array.from({ length: 20 }, (_, i) => bodyFor(i));
  const subs = await Promise.all(bodies.map((b) => submit(s1, b)));
  const tasks = subs.map((r, i) => {
    assert.equal(r.status, 200, r.body);
    return { id: r.json.id, body: bodies[i], created_at: r.json.created_at };
  });
  assert.equal(new Set(tasks.map((x) => x.id)).size, 20);

  // Mid-run: images are made, the latency timer holds them.
  await sleep(600);
  const running = await getTask(s1, tasks[0].id);
  assert.equal(running.json.status, 'processing');
  assert.deepEqual(await s1.kill9(), { code: null, signal: 'SIGKILL' });

  // Second life: takes the tasks up again (their leases belonged to the dead process), and is
  // killed mid-run too.
  const s2 = await startServer({ dataDir: s1.dataDir, args: ['--offline-latency-ms', '1500'] });
  assert.match(s2.stderr(), /task\(s\) were running when the last process stopped; taking them up again/);
  await sleep(600);
  const still = await getTask(s2, tasks[1].id);
  assert.equal(still.json.status, 'processing');
  assert.deepEqual(await s2.kill9(), { code: null, signal: 'SIGKILL' });

  // Third life, no latency: everything completes.
  const s3 = await startServer({ dataDir: s1.dataDir, args: ['--offline-latency-ms', '0'] });
  assert.equal(s3.key, s1.key);
  await checkAllCompleted(s3, tasks);
  assert.deepEqual(await s3.stop(), { code: 0, signal: null });
});

test('kill -9 right after the submits were answered loses nothing', async () => {
  const s1 = await startServer({ args: ['--offline-latency-ms', '1500'] });
  const bodies = Array.from({ length: 8 }, (_, i) => bodyFor(i + 100));
  const subs = await Promise.all(bodies.map((b) => submit(s1, b)));
  const tasks = subs.map((r, i) => {
    assert.equal(r.status, 200, r.body);
    return { id: r.json.id, body: bodies[i], created_at: r.json.created_at };
  });
  await s1.kill9();
  const s2 = await startServer({ dataDir: s1.dataDir });
  await checkAllCompleted(s2, tasks);
});

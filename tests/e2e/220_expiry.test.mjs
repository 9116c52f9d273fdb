// 220: results expire: after --reapi-expiry seconds the media URL answers 410 (JSON, says it
// expired) while the task itself still polls as completed. The server's clock is moved with
// IMAGEGATE_CLOCK_OFFSET_MS instead of waiting.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, submit, poll, getTask, curl, sleep, RE, t } from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-2.5-flash-image-preview';

test('--reapi-expiry 60: two minutes later the media URL is 410 and the poll still says completed', async () => {
  const s1 = await startServer({ args: ['--reapi-expiry', '60', '--sweep-interval', '1'] });
  const sub = await submit(s1, { model: MODEL, prompt: 'short-lived', n: 2 });
  assert.equal(sub.status, 200, sub.body);
  const done = await poll(s1, sub.json.id);
  assert.equal(done.json.status, 'completed');
  const urls = done.json.output.image_urls;
  assert.equal(urls.length, 2);
  const fresh = await curl([urls[0]]);
  assert.equal(fresh.status, 200);
  // Valid for about 60 s now.
  const maxAge = Number(/max-age=(\d+)/.exec(fresh.headers['cache-control'])[1]);
  assert.ok(maxAge > 0 && maxAge <= 60, `max-age ${maxAge}`);
  assert.deepEqual(await s1.stop(), { code: 0, signal: null });

  // The same data, the server's clock two minutes ahead.
  const s2 = await startServer({
    dataDir: s1.dataDir,
    args: ['--reapi-expiry', '60', '--sweep-interval', '1'],
    env: { IMAGEGATE_CLOCK_OFFSET_MS: '120000' },
  });
  const hex = sub.json.id.slice(5);
  const check410 = async () => {
    for (const i of [0, 1]) {
      const r = await curl([`${s2.base}/media/tasks/${hex}/${i}.png`]);
      assert.equal(r.status, 410, r.body);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.deepEqual(Object.keys(r.json.error), ['code', 'type', 'message', 'param', 'request_id']);
      assert.equal(r.json.error.code, 410);
      assert.match(r.json.error.message, /expired/);
      assert.match(r.json.error.request_id, RE.requestId);
      // HEAD and conditional requests are refused the same way: nothing is served any more.
      const h = await curl(['-H', `If-None-Match: ${fresh.headers.etag}`, `${s2.base}/media/tasks/${hex}/${i}.png`]);
      assert.equal(h.status, 410);
    }
  };
  await check410();
  // After the sweep has run (every second), still 410 and the poll still completed.
  await sleep(t(2500));
  await check410();
  assert.match(s2.stderr(), /expiry sweep: results of 1 task\(s\) expired and removed/);

  const p = await getTask(s2, sub.json.id);
  assert.equal(p.status, 200);
  assert.equal(p.json.status, 'completed');
  assert.equal(p.json.id, sub.json.id);
  assert.equal(p.json.created_at, sub.json.created_at);
  assert.equal(p.json.error, null);
  assert.deepEqual(p.json.output.image_urls, urls.map((u) => u.replace(s1.base, s2.base)));
});

test('results within their expiry are still served after a restart', async () => {
  const s1 = await startServer({ args: ['--reapi-expiry', '600'] });
  const sub = await submit(s1, { model: MODEL, prompt: 'long-lived' });
  const done = await poll(s1, sub.json.id);
  const before = await curl([done.json.output.image_urls[0]]);
  await s1.stop();
  const s2 = await startServer({ dataDir: s1.dataDir, args: ['--reapi-expiry', '600', '--sweep-interval', '1'], env: { IMAGEGATE_CLOCK_OFFSET_MS: '120000' } });
  await sleep(t(1500));
  const r = await curl([`${s2.base}/media/tasks/${sub.json.id.slice(5)}/0.png`]);
  assert.equal(r.status, 200);
  assert.ok(r.bodyBuf.equals(before.bodyBuf));
});

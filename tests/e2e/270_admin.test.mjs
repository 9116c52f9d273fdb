// 270: keys and the admin API. Scopes (generate, admin), expiry, a model allow-list, revocation
// that holds at once, balances and limits over HTTP with money as decimal strings; and no key
// material in any log.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, cleanup, submit, getTask, curl, runCli, sleep } from './lib/harness.mjs';

after(cleanup);

const MODEL = 'gemini-2.5-flash-image-preview';
let srv;

function admin(server, method, p, body, key = server.key) {
  const args = ['-X', method, '-H', `Authorization: Bearer ${key}`];
  if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(body));
  return curl([...args, `${server.base}${p}`]);
}

test('create a key over HTTP: 201, every field, the secret once; it works within its limits', async () => {
  srv = await startServer();
  const r = await admin(srv, 'POST', '/admin/v1/keys', {
    name: 'shop', credits_usd: '2.50', scopes: ['generate'], models: [MODEL], rate_rpm: 5, max_tasks: null,
  });
  assert.equal(r.status, 201, r.body);
  const k = r.json;
  assert.match(k.key, /^igk_[0-9A-Za-z]{49}$/);
  assert.ok(Number.isInteger(k.id) && k.id > 1);
  assert.ok(Math.abs(k.created_at - Date.now() / 1000) < 60);
  assert.deepEqual({ ...k, key: undefined, id: undefined, created_at: undefined }, {
    key: undefined, id: undefined, created_at: undefined,
    name: 'shop', metered: true, balance_usd: '2.500000', revoked: false, scopes: ['generate'],
    expires_at: null, models: ['gemini-2.5-flash-image'], rate_rpm: 5, max_tasks: null,
  });
  // the list and the key itself show the same, without the secret
  const one = await admin(srv, 'GET', `/admin/v1/keys/${k.id}`);
  assert.equal(one.status, 200);
  const { key: _secret, ...shown } = k;
  assert.deepEqual(one.json, shown);
  const list = await admin(srv, 'GET', '/admin/v1/keys');
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.data.map((x) => x.name), ['first key', 'shop']);
  assert.deepEqual(list.json.data[0].scopes, ['generate', 'admin']);
  assert.ok(!list.body.includes('igk_'), 'no secret in a listing');
  // the allowed model works and is charged; another model is 403 / 10003
  const ok = await submit(srv, { model: MODEL, prompt: 'allowed' }, { key: k.key });
  assert.equal(ok.status, 200, ok.body);
  const no = await submit(srv, { model: 'gemini-3-pro-image-preview', prompt: 'not allowed' }, { key: k.key });
  assert.equal(no.status, 403, no.body);
  assert.equal(no.json.error.code, 10003);
  assert.equal(no.json.error.message, 'gemini-3-pro-image-preview: this API key may not use this model');
  // a generate-only key cannot use the admin API
  const forbidden = await admin(srv, 'GET', '/admin/v1/keys', undefined, k.key);
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.json.error.message, 'this API key has no admin scope');
});

test('credit and limits over HTTP; money never goes through a float', async () => {
  const k = (await admin(srv, 'POST', '/admin/v1/keys', { name: 'wallet', credits_usd: '0.10' })).json;
  let r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/credit`, { amount_usd: '0.000001', note: 'one micro-dollar' });
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.balance_usd, '0.100001');
  r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/credit`, { amount_usd: '-0.100002' });
  assert.equal(r.status, 409);
  assert.equal(r.json.error.message, "a metered key's balance cannot go below 0");
  for (const bad of [{ amount_usd: 5 }, { amount_usd: '1.0000001' }, { amount_usd: '0' }, {}]) {
    r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/credit`, bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.match(r.json.error.message, /^amount_usd must be non-zero US dollars as a decimal string/);
  }
  r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/limits`, { rate_rpm: 0, max_tasks: 9 });
  assert.equal(r.status, 200);
  assert.equal(r.json.rate_rpm, 0);
  assert.equal(r.json.max_tasks, 9);
  r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/limits`, { rate_rpm: null });
  assert.equal(r.json.rate_rpm, null);
  assert.equal(r.json.max_tasks, 9, 'an absent field is kept');
  r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/limits`, { max_tasks: -1 });
  assert.equal(r.status, 400);
  r = await admin(srv, 'POST', '/admin/v1/keys/99999/credit', { amount_usd: '1' });
  assert.equal(r.status, 404);
  r = await admin(srv, 'GET', '/admin/v1/keys/abc');
  assert.equal(r.status, 404);
  r = await admin(srv, 'DELETE', `/admin/v1/keys/${k.id}`);
  assert.equal(r.status, 405);
  r = await admin(srv, 'GET', `/admin/v1/keys/${k.id}/revoke`);
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'POST');
});

test('create refuses what it cannot honour, naming the field', async () => {
  const cases = [
    [{ credits_usd: 5 }, 'credits_usd'], [{ scopes: [] }, 'scopes'], [{ scopes: ['root'] }, 'scopes'],
    [{ expires_at: 1000 }, 'expires_at'], [{ models: ['dall-e-3'] }, 'models'], [{ name: 'x'.repeat(64) }, 'name'],
    [{ rate_rpm: 1.5 }, 'rate_rpm'], [{ metered: 'yes' }, 'metered'],
  ];
  for (const [body, field] of cases) {
    const r = await admin(srv, 'POST', '/admin/v1/keys', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.ok(r.json.error.message.startsWith(field) || r.json.error.message.includes(field), r.body);
  }
  const r = await curl(['-X', 'POST', '-H', `Authorization: Bearer ${srv.key}`, '--data-binary', '[1]', `${srv.base}/admin/v1/keys`]);
  assert.equal(r.status, 400);
  assert.equal((await curl([`${srv.base}/admin/v1/keys`])).status, 401);
  assert.equal((await admin(srv, 'GET', '/admin/v1/keys', undefined, 'igk_not-a-real-key')).status, 401);
});

test('revocation holds at once, through the per-thread key caches', async () => {
  const k = (await admin(srv, 'POST', '/admin/v1/keys', { name: 'leaked' })).json;
  // warm every HTTP thread's cache with it
  for (let i = 0; i < 6; i++) assert.equal((await submit(srv, { model: MODEL, prompt: `warm ${i}` }, { key: k.key })).status, 200);
  const r = await admin(srv, 'POST', `/admin/v1/keys/${k.id}/revoke`, {});
  assert.equal(r.status, 200);
  assert.equal(r.json.revoked, true);
  for (let i = 0; i < 6; i++) {
    const s = await submit(srv, { model: MODEL, prompt: `after ${i}` }, { key: k.key });
    assert.equal(s.status, 401, `attempt ${i} after the revocation: ${s.body}`);
  }
});

test('CLI: scopes, expiry, models, revoke', async () => {
  let r = runCli(['keys', 'create', '--data', srv.dataDir, '--name', 'brief', '--expires-at', String(Math.floor(Date.now() / 1000) + 2)]);
  assert.equal(r.code, 0, r.stderr);
  const brief = r.stdout.trim();
  assert.equal((await submit(srv, { model: MODEL, prompt: 'before expiry' }, { key: brief })).status, 200);
  await sleep(2600);
  assert.equal((await submit(srv, { model: MODEL, prompt: 'after expiry' }, { key: brief })).status, 401);
  r = runCli(['keys', 'create', '--data', srv.dataDir, '--scopes', 'admin']);
  const adminOnly = r.stdout.trim();
  const s = await submit(srv, { model: MODEL, prompt: 'no generate scope' }, { key: adminOnly });
  assert.equal(s.status, 403);
  assert.equal(s.json.error.message, 'this API key may not generate images (it has no generate scope)');
  assert.equal((await admin(srv, 'GET', '/admin/v1/keys', undefined, adminOnly)).status, 200);
  assert.equal(runCli(['keys', 'create', '--data', srv.dataDir, '--models', 'nope']).code, 2);
  assert.equal(runCli(['keys', 'create', '--data', srv.dataDir, '--scopes', 'root']).code, 2);
  assert.equal(runCli(['keys', 'create', '--data', srv.dataDir, '--expires-at', '5']).code, 2);
  r = runCli(['keys', 'create', '--data', srv.dataDir, '--name', 'cli-models', '--models', 'gemini-2.5-flash-image-preview,gemini-3-pro-image']);
  const ids = (await admin(srv, 'GET', '/admin/v1/keys')).json.data.find((x) => x.name === 'cli-models').models;
  assert.deepEqual(ids, ['gemini-2.5-flash-image', 'gemini-3-pro-image-preview']);
  const victim = (await admin(srv, 'GET', '/admin/v1/keys')).json.data.find((x) => x.name === 'cli-models');
  r = runCli(['keys', 'show', String(victim.id), '--data', srv.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${victim.id}\tcli-models\tunmetered\t0.000000\tactive\trpm=default\tmax-tasks=default\n`
    + 'scopes: generate\nexpires: never\nmodels: gemini-2.5-flash-image,gemini-3-pro-image-preview\n');
  assert.equal(runCli(['keys', 'show', '99999', '--data', srv.dataDir]).code, 1);
  r = runCli(['keys', 'revoke', String(victim.id), '--data', srv.dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^key ${victim.id} revoked`));
  assert.equal(runCli(['keys', 'revoke', '99999', '--data', srv.dataDir]).code, 1);
});

test('usage by day and model, and by channel, over HTTP and the CLI', async () => {
  const s = await startServer();
  const k = (await admin(s, 'POST', '/admin/v1/keys', { name: 'counted', credits_usd: '1.00' })).json;
  for (const n of [1, 2]) {
    const r = await submit(s, { model: MODEL, prompt: `usage ${n}`, n }, { key: k.key });
    assert.equal(r.status, 200, r.body);
    for (let i = 0; i < 100 && (await getTask(s, r.json.id, k.key)).json.status !== 'completed'; i++) await sleep(50);
  }
  const other = await submit(s, { model: 'gemini-3.1-flash-image-preview', prompt: 'operator', resolution: '512' });
  for (let i = 0; i < 100 && (await getTask(s, other.json.id)).json.status !== 'completed'; i++) await sleep(50);
  const day = new Date().toISOString().slice(0, 10);
  let r = await admin(s, 'GET', `/admin/v1/usage?key_id=${k.id}&days=1`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json.key_id, k.id);
  assert.deepEqual(r.json.data, [{ day, model: 'gemini-2.5-flash-image', tasks: 2, succeeded: 2, images: 3,
    image_tokens: 3 * 1290, text_tokens: 0, charged_usd: '0.117000', cost_usd: '0.000000', margin_usd: '0.117000' }]);
  r = await admin(s, 'GET', '/admin/v1/usage?by=channel');
  assert.equal(r.json.key_id, null);
  assert.deepEqual(r.json.data.map((x) => [x.channel, x.tasks, x.images]), [['offline', 3, 4]]);
  for (const bad of ['days=0', 'key_id=x', 'by=hour']) {
    r = await admin(s, 'GET', `/admin/v1/usage?${bad}`);
    assert.equal(r.status, 400, bad);
  }
  const cli = runCli(['usage', '--data', s.dataDir, '--key', String(k.id), '--days', '7']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout, `day\tmodel\ttasks\tsucceeded\timages\timage_tokens\ttext_tokens\tcharged_usd\tcost_usd\tmargin_usd\n${day}\tgemini-2.5-flash-image\t2\t2\t3\t3870\t0\t0.117000\t0.000000\t0.117000\n`);
  const all = runCli(['usage', '--data', s.dataDir]);
  assert.equal(all.stdout.trim().split('\n').length, 3, all.stdout); // header + two models
  assert.equal(runCli(['usage', '--data', s.dataDir, '--by', 'week']).code, 2);
});

test('no key material in any log', async () => {
  // after creating, using, crediting, revoking and refusing keys, over HTTP and the CLI
  assert.ok(srv.stderr().length > 1000, 'the server did log');
  assert.doesNotMatch(srv.stderr(), /igk_/, 'stderr never carries a key');
  assert.doesNotMatch(srv.stdout(), /igk_/, 'stdout never carries a key (the first start prints $(cat first-key.txt))');
});

// bench/latency.mjs: added latency of a task through imagegate, seen by a client.
//   node bench/latency.mjs UPSTREAM_URL GATEWAY_BASE KEY N
// For each of N rounds, alternating so both see the same machine: (1) the direct call — POST the
// Gemini body to UPSTREAM_URL and read the whole answer; (2) a task — POST a reAPI submit to
// GATEWAY_BASE, then poll GET /api/v1/tasks/{id} back to back on the same keep-alive connection
// until it is completed; the time runs from sending the submit to reading the completed poll.
// (3) the same Gemini call made to imagegate's own Gemini API (synchronous: the reply carries
// the image, and the task is stored, run and finished in between; no polling).
// All over keep-alive connections from this one process. Prints one JSON line:
//   {direct:{p50,p99}, task:{p50,p99}, sync:{p50,p99}, polls_per_task, not_completed}
import http from 'node:http';

const [upstream, base, key, nArg] = process.argv.slice(2);
const n = Number(nArg || 300);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const upAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const gemBody = JSON.stringify({
  contents: [{ role: 'user', parts: [{ text: 'bench' }] }],
  generationConfig: { responseModalities: ['TEXT', 'IMAGE'], imageConfig: { aspectRatio: '1:1' } },
});
const submitBody = JSON.stringify({ model: 'gemini-2.5-flash-image', prompt: 'bench', size: '1:1' });

function req(url, { method = 'GET', headers = {}, body, ag = agent } = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, agent: ag, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

const ms = () => Number(process.hrtime.bigint()) / 1e6;
const direct = [], task = [], sync = [];
let polls = 0, notCompleted = 0;
for (let i = 0; i < n; i++) {
  let t = ms();
  const d = await req(upstream, {
    method: 'POST', ag: upAgent, body: gemBody,
    headers: { 'x-goog-api-key': 'bench-key', 'Content-Type': 'application/json' },
  });
  if (d.status !== 200) throw new Error(`upstream answered ${d.status}`);
  direct.push(ms() - t);

  t = ms();
  const s = await req(`${base}/api/v1/images/generations`, {
    method: 'POST', body: submitBody,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
  });
  const id = JSON.parse(s.body).id;
  for (;;) {
    const p = await req(`${base}/api/v1/tasks/${id}`, { headers: { Authorization: `Bearer ${key}` } });
    polls++;
    const st = JSON.parse(p.body).status;
    if (st === 'completed') { task.push(ms() - t); break; }
    if (st === 'failed') { notCompleted++; break; }
  }

  t = ms();
  const g = await req(`${base}/v1beta/models/gemini-2.5-flash-image:generateContent`, {
    method: 'POST', body: gemBody,
    headers: { 'x-goog-api-key': key, 'Content-Type': 'application/json' },
  });
  if (g.status !== 200) { notCompleted++; continue; }
  sync.push(ms() - t);
}
agent.destroy();
upAgent.destroy();
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return +s[Math.min(s.length - 1, Math.max(0, Math.round(s.length * p / 100) - 1))].toFixed(2); };
console.log(JSON.stringify({
  direct: { p50: pct(direct, 50), p99: pct(direct, 99) },
  task: { p50: pct(task, 50), p99: pct(task, 99) },
  sync: { p50: pct(sync, 50), p99: pct(sync, 99) },
  polls_per_task: +(polls / Math.max(1, task.length)).toFixed(1),
  not_completed: notCompleted,
}));

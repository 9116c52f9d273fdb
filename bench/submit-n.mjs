// bench/submit-n.mjs: submit N reAPI tasks with C parallel clients; prints how many got 200.
//   node bench/submit-n.mjs URL KEY N [C]
import http from 'node:http';

const [url, key, nArg, cArg] = process.argv.slice(2);
const n = Number(nArg), c = Number(cArg || 32);
const agent = new http.Agent({ keepAlive: true, maxSockets: c });
const body = JSON.stringify({ model: 'gemini-2.5-flash-image', prompt: 'wait', size: '1:1' });
let next = 0, ok = 0;

function one() {
  return new Promise((resolve) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json',
                 'Content-Length': Buffer.byteLength(body) },
    }, (res) => { res.resume(); res.on('end', () => { if (res.statusCode === 200) ok++; resolve(); }); });
    req.on('error', () => resolve());
    req.end(body);
  });
}
async function worker() { while (next++ < n) await one(); }
await Promise.all(Array.from({ length: c }, worker));
agent.destroy();
console.log(ok);

import fs from 'node:fs';
import { launch } from './browser.mjs';
const BASE = process.argv[2];
const b = await launch();
const context = await b.newContext();
const page = await context.newPage();
const client = await context.newCDPSession(page);
const workers = [];
let id = 1000;
const pending = new Map();
client.on('Target.attachedToTarget', e => { if (e.targetInfo.type === 'worker') workers.push(e.sessionId); });
client.on('Target.receivedMessageFromTarget', e => { const m = JSON.parse(e.message); if (m.id && pending.has(m.id)) { pending.get(m.id)(m); pending.delete(m.id); } });
const send = (sessionId, method, params = {}) => new Promise(res => { const i = ++id; pending.set(i, res); client.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: i, method, params }) }); });
await client.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
await page.goto(`${BASE}/?backend=cpu`);
await page.waitForSelector(`#backend[data-backend="cpu"]`, { timeout: 300000 });
await new Promise(r => setTimeout(r, 1500));
console.log('workers', workers.length);
for (const w of workers) { await send(w, 'Profiler.enable'); await send(w, 'Profiler.setSamplingInterval', { interval: 500 }); await send(w, 'Profiler.start'); }
const video = '.item.video[data-name="scene.webm"]';
await page.click('#demo-video');
await page.waitForFunction(s => { const v = document.querySelector(s); return v && v.dataset.state === 'followed'; }, video, { timeout: 600000, polling: 200 });
const item = page.locator(video);
console.log(`fps ${await item.getAttribute('data-fps')} detect ${await item.getAttribute('data-detect-ms')} worker ${await item.getAttribute('data-worker-ms')}`);
let k = 0;
for (const w of workers) {
  const r = await send(w, 'Profiler.stop');
  const prof = r.result.profile;
  fs.writeFileSync(`/tmp/vp/worker${k}.cpuprofile`, JSON.stringify(prof));
  // self time by function
  const byId = new Map(prof.nodes.map(n => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas; let total = 0;
  prof.samples.forEach((s, i) => { const n = byId.get(s); const name = n.callFrame.functionName || `(${n.callFrame.url.split('/').pop()})`; const d = dt[i] || 0; total += d; self.set(name, (self.get(name) || 0) + d); });
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.log(`worker ${k}: ${(total / 1000).toFixed(0)} ms sampled`);
  for (const [n, t] of top) console.log(`  ${(t / 1000).toFixed(0).padStart(6)} ms  ${n.slice(0, 110)}`);
  k++;
}
await b.close();

import fs from 'node:fs';
import { chromium } from 'playwright-core';
const base = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];
function threads() { const out = {}; for (const pid of fs.readdirSync('/proc').filter(p => /^\d+$/.test(p))) { try { const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); if (!cmd.includes('chromium')) continue; const type = (cmd.match(/--type=([a-z-]+)/) || [, 'browser'])[1]; for (const tid of fs.readdirSync(`/proc/${pid}/task`)) { const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(); const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' '); const k = `${type}/${comm}`; out[k] = (out[k] || 0) + (Number(st[11]) + Number(st[12])) / 100; } } catch {} } return out; }
for (const extra of process.argv.slice(2).map(a => a ? a.split(' ') : [])) {
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...base, ...extra] });
  const page = await b.newPage();
  await page.goto('about:blank');
  await new Promise(r => setTimeout(r, 1000));
  const t0 = threads(); await new Promise(r => setTimeout(r, 3000)); const t1 = threads();
  const busy = Object.keys(t1).map(k => [k, t1[k] - (t0[k] || 0)]).filter(([, v]) => v > 0.05).sort((a, b) => b[1] - a[1]);
  console.log(JSON.stringify(extra), busy.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', '));
  await b.close();
}

// `cargo xtask bench evaluate`: the Evaluate section at Market-1501's size, in Debian's headless
// Chromium on the CPU path, beside `reid eval --features` on the same file.
//
// The feature file is made here: 3,368 queries and 15,913 gallery pictures (Market-1501's test
// split) of 751 people over 6 cameras, 512-d (the shipped model's width), each picture its
// person's random direction plus noise, every 25th gallery picture junk or distractor. What is
// measured:
// - the time from picking the folder to the metrics shown, without and with re-ranking;
// - the peak memory of all of Chromium's processes (resident, sampled every 200 ms) above what
//   they held before the folder was picked;
// - that the page's Rank-1/5/10, mAP and mINP equal the native command's exactly.
//
//     REID_BASE_URL=http://127.0.0.1:8080 REID_BIN=target/release/reid node tests/e2e/bench_evaluate.mjs
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, openApp } from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const BASE = process.env.REID_BASE_URL;
const REID_BIN = path.resolve(ROOT, process.env.REID_BIN || 'target/release/reid');
if (!BASE) {
  console.error('REID_BASE_URL must be set: run this through `cargo xtask bench evaluate`');
  process.exit(2);
}
const METRICS = ['rank1', 'rank5', 'rank10', 'map', 'minp'];
const [QUERIES, GALLERY, DIM, PEOPLE] = [3368, 15913, 512, 751];

// A small deterministic generator: uniform in [0, 1), then normal by Box-Muller.
function generator(seed) {
  let s = BigInt(seed);
  const uniform = () => {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    return Number(s >> 11n) / 2 ** 53;
  };
  return {
    uniform,
    int: (n) => Math.floor(uniform() * n),
    normal: () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()),
  };
}

// A float32 `.npy` of `rows` x `cols`.
function npy(file, data, rows, cols) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head);
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

function makeFeatures(dir) {
  const rng = generator(1501);
  const centres = Float32Array.from({ length: PEOPLE * DIM }, () => rng.normal());
  const side = (name, n, first) => {
    const data = new Float32Array(n * DIM);
    const names = [];
    for (let i = 0; i < n; i++) {
      const person = rng.int(PEOPLE);
      const camera = 1 + rng.int(6);
      for (let d = 0; d < DIM; d++) data[i * DIM + d] = centres[person * DIM + d] + 1.6 * rng.normal();
      let pid = String(person + 1).padStart(4, '0');
      if (name === 'gallery' && i % 25 === 0) pid = i % 50 === 0 ? '-1' : '0000';
      names.push(`${pid}_c${camera}s1_${String(first + i).padStart(6, '0')}_01.jpg`);
    }
    npy(path.join(dir, `${name}.npy`), data, n, DIM);
    fs.writeFileSync(path.join(dir, `${name}.txt`), names.join('\n') + '\n');
  };
  side('query', QUERIES, 0);
  side('gallery', GALLERY, 100000);
}

// Resident memory of every Chromium process, in MB.
function chromiumMb() {
  try {
    const out = execFileSync('ps', ['-C', 'chromium', '-o', 'rss='], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean).reduce((a, b) => a + Number(b), 0) / 1024;
  } catch {
    return 0;
  }
}

function native(dir, rerank) {
  const args = ['eval', '--json', '--features', dir, ...(rerank ? ['--rerank'] : [])];
  const started = Date.now();
  const m = JSON.parse(execFileSync(REID_BIN, args, { encoding: 'utf8', maxBuffer: 1 << 26 }));
  return { rank1: m.cmc[0], rank5: m.cmc[4], rank10: m.cmc[9], map: m.map, minp: m.minp,
    seconds: (Date.now() - started) / 1000 };
}

// Picks `dir` (or ticks re-ranking), waits for the metrics, and returns them with the time
// and the peak memory above `base`.
async function measure(page, act, reranked, base) {
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, chromiumMb()); }, 200);
  const started = Date.now();
  await act();
  await page.waitForSelector(`#eval-summary[data-reranked="${reranked}"], #eval-error`, { timeout: 600000 });
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const error = await page.$('#eval-error');
  assert.equal(error, null, error && await error.textContent());
  const metrics = await page.evaluate((names) => Object.fromEntries(names.map((n) =>
    [n, Number(document.querySelector(`#eval-metrics [data-metric="${n}"]`).dataset.value)])), METRICS);
  return { ...metrics, seconds, peakMb: Math.max(peak, chromiumMb()) - base };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reid-market-scale-'));
try {
  makeFeatures(dir);
  const plain = native(dir, false);
  const reranked = native(dir, true);
  const browser = await launch();
  try {
    const { net, page } = await openApp(browser, BASE);
    await new Promise((r) => setTimeout(r, 1000));
    const base = chromiumMb();
    const ours = await measure(page, () => page.setInputFiles('#eval-folder', dir), false, base);
    const oursRe = await measure(page, () => page.check('#eval-rerank'), true, base);
    const show = (m) => METRICS.map((n) => `${n} ${(100 * m[n]).toFixed(2)}`).join(', ');
    console.log(`Market-1501 size (${QUERIES} x ${GALLERY}, ${DIM}-d), Chromium ${browser.version()} CPU path, Chromium at ${base.toFixed(0)} MB before:`);
    console.log(`  page: ${ours.seconds.toFixed(1)} s, peak +${ours.peakMb.toFixed(0)} MB: ${show(ours)}`);
    console.log(`  reid eval --features: ${plain.seconds.toFixed(1)} s: ${show(plain)}`);
    console.log(`  page re-ranked: ${oursRe.seconds.toFixed(1)} s, peak +${oursRe.peakMb.toFixed(0)} MB: ${show(oursRe)}`);
    console.log(`  reid eval --features --rerank: ${reranked.seconds.toFixed(1)} s: ${show(reranked)}`);
    for (const n of METRICS) {
      assert.equal(ours[n], plain[n], n);
      assert.equal(oursRe[n], reranked[n], `re-ranked ${n}`);
    }
    assert.deepEqual(net.foreign(), [], 'a request left the origin');
    console.log('  the page\'s numbers equal the native ones exactly; no request left the origin');
  } finally {
    await browser.close();
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

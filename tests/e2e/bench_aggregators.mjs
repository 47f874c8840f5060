// The browser side of `cargo xtask bench temporal`: each temporal aggregator `reid temporal`
// wrote (TEMPORAL_DIR/<kind>.bpk, trained on the shipped model's embeddings) is picked in the
// app's "Use your own model", and "Measure speed" times it in the worker on the CPU path (the
// median of 31 aggregations of a 16-frame track after one warm-up, from frame embeddings to the
// track's, read back; `reid temporal` times the network alone on a ready tensor, without a
// warm-up); printed beside the native times of the same files from TEMPORAL_DIR/results.json.
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';

const BASE = process.env.REID_BASE_URL;
const DIR = process.env.TEMPORAL_DIR;
if (!BASE || !DIR) {
  console.error('REID_BASE_URL and TEMPORAL_DIR must be set: run this through `cargo xtask bench temporal`');
  process.exit(2);
}
const results = JSON.parse(fs.readFileSync(path.join(DIR, 'results.json'), 'utf8')).results
  .filter((r) => r.file);
const browser = await launch();
try {
  const rows = [];
  for (const r of results) {
    const page = await browser.newPage();
    await page.goto(`${BASE}/?backend=cpu`);
    await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
    await page.setInputFiles('#model-input', path.join(DIR, path.basename(r.file)));
    await page.waitForSelector(`#aggregator[data-kind="${r.aggregator}"]`, { timeout: 120000 });
    await page.click('#benchmark');
    const result = await page.waitForSelector('#benchmark-result[data-tracklet-ms]', { timeout: 600000 });
    const ms = Number(await result.getAttribute('data-tracklet-ms'));
    rows.push([r.label, r.parameters, r.ms_per_tracklet, ms]);
    await page.close();
  }
  console.log('| aggregator | learned parameters | ms per 16-frame track, native CPU | in the browser (wasm, CPU path) | browser / native |');
  console.log('|---|---|---|---|---|');
  for (const [label, params, native, web] of rows) {
    console.log(`| ${label} | ${params.toLocaleString('en')} | ${native.toFixed(2)} | ${web.toFixed(2)} | ${(web / native).toFixed(1)}x |`);
  }
} finally {
  await browser.close();
}

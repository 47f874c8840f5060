// The browser side of `cargo xtask bench`: in one headless Chromium, the app's CPU path (its
// "Measure speed" button: batches of 8 crops, one thread, from pixels to embeddings) and
// onnxruntime-web's wasm backend (one thread, SIMD) on the same MobileNetV2 exported to ONNX,
// batches of 8 random 256x128 crops. Prints crops/s for each and the ratio.
// REID_BASE_URL serves the built app; ORT_BASE_URL serves onnxruntime-web's files and the ONNX
// model (xtask prepares both).
import { launch } from './browser.mjs';
import { ortRate } from './ort.mjs';

const BASE = process.env.REID_BASE_URL;
const ORT_BASE = process.env.ORT_BASE_URL;
if (!BASE || !ORT_BASE) {
  console.error('REID_BASE_URL and ORT_BASE_URL must be set: run this through `cargo xtask bench`');
  process.exit(2);
}
const BATCH = 8;

const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error(`  page: ${m.text()}`); });

  await page.goto(`${BASE}/?backend=cpu`);
  await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
  await page.click('#benchmark');
  const result = await page.waitForSelector('#benchmark-result[data-crops-per-s]', { timeout: 600000 });
  const ours = Number(await result.getAttribute('data-crops-per-s'));
  const iters = Number(await result.getAttribute('data-passes'));
  console.log(`reid app, CPU path in wasm (1 thread, SIMD, batch ${BATCH}): ${ours.toFixed(1)} crops/s crops/s=${ours.toFixed(2)}`);

  await page.goto(`${ORT_BASE}/index.html`);
  const peer = await ortRate(page, { model: '/mobilenetv2.onnx', ep: 'wasm', batch: BATCH, iters });
  if (peer.error) throw new Error(`onnxruntime-web: ${peer.error}`);
  console.log(`onnxruntime-web ${peer.version} wasm (1 thread, SIMD, batch ${BATCH}): ${peer.rate.toFixed(1)} crops/s crops/s=${peer.rate.toFixed(2)}`);
  console.log(`browser CPU ratio: reid / onnxruntime-web = ${(ours / peer.rate).toFixed(2)}`);
} finally {
  await browser.close();
}

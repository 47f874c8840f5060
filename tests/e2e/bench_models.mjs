// The browser side of `cargo xtask bench torchreid`: torchreid's OSNet x1.0 and ResNet-50 (the
// same weights, imported with `reid import` for us and exported to ONNX for the peer) in one
// headless Chromium. Ours: the app with the model picked in "Use your own model", its "Measure
// speed" button (batches of 8 crops at 256x128, a warm-up batch then up to 5 timed, fewer when
// they take over 10 s, from pixels to embeddings) on WebGPU and on the CPU path. The peer:
// onnxruntime-web on its WebGPU and wasm (1 thread, SIMD) execution providers, the same batches
// of 8, as many timed as ours on the matching backend. Prints crops/s and the ratios.
// Here WebGPU is Chromium's software adapter (SwiftShader): the ratios compare the two
// implementations on the same adapter, not what a GPU gives.
// REID_BASE_URL serves the built app; ORT_BASE_URL onnxruntime-web's files and the ONNX models;
// MODELS lists `arch=model.bpk` pairs, comma-separated. BACKENDS=cpu times only the CPU path
// and onnxruntime-web's wasm (SwiftShader's WebGPU takes minutes a batch).
import { launch } from './browser.mjs';
import { ortRate } from './ort.mjs';

const BASE = process.env.REID_BASE_URL;
const ORT_BASE = process.env.ORT_BASE_URL;
const MODELS = (process.env.MODELS || '').split(',').filter(Boolean).map((pair) => pair.split('='));
if (!BASE || !ORT_BASE || MODELS.length === 0) {
  console.error('REID_BASE_URL, ORT_BASE_URL and MODELS must be set: run this through `cargo xtask bench torchreid`');
  process.exit(2);
}
const BACKENDS = (process.env.BACKENDS || 'webgpu,cpu').split(',');
const BATCH = 8;
const LABELS = { osnet_x1_0: 'OSNet x1.0', resnet50: 'ResNet-50' };

const browser = await launch();
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error(`  page: ${m.text()}`); });
  for (const [arch, model] of MODELS) {
    const ours = {};
    const passes = {};
    for (const backend of ['webgpu', 'cpu'].filter((b) => BACKENDS.includes(b))) {
      await page.goto(`${BASE}/?backend=${backend}`);
      await page.waitForSelector(`#backend[data-backend="${backend}"]`, { timeout: 120000 });
      await page.setInputFiles('#model-input', model);
      await page.waitForFunction((label) => (document.querySelector('.model')?.textContent ?? '').includes(label),
        LABELS[arch], { timeout: 300000 });
      await page.click('#benchmark');
      const result = await page.waitForSelector('#benchmark-result[data-crops-per-s]', { timeout: 1800000 });
      ours[backend] = Number(await result.getAttribute('data-crops-per-s'));
      passes[backend] = Number(await result.getAttribute('data-passes'));
      console.log(`${arch}: reid app, ${backend === 'cpu' ? 'CPU path in wasm (1 thread, SIMD)' : 'WebGPU'} (batch ${BATCH}, ${passes[backend]} timed): ${ours[backend].toPrecision(3)} crops/s crops/s=${ours[backend]}`);
    }
    await page.goto(`${ORT_BASE}/index.html`);
    const peer = {};
    for (const ep of ['webgpu', 'wasm'].filter((e) => BACKENDS.includes(e === 'wasm' ? 'cpu' : e))) {
      const iters = passes[ep === 'wasm' ? 'cpu' : 'webgpu'];
      const result = await ortRate(page, { model: `/${arch}.onnx`, ep, batch: BATCH, iters });
      if (result.error) {
        console.log(`${arch}: onnxruntime-web ${ep}: failed: ${result.error}`);
        continue;
      }
      peer[ep] = result.rate;
      console.log(`${arch}: onnxruntime-web ${result.version} ${ep === 'wasm' ? 'wasm (1 thread, SIMD)' : 'WebGPU'} (batch ${BATCH}, ${iters} timed): ${result.rate.toPrecision(3)} crops/s crops/s=${result.rate}`);
    }
    const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : 'n/a');
    console.log(`${arch} browser ratios (crops/s, higher is faster): reid WebGPU / onnxruntime-web WebGPU = ${ratio(ours.webgpu, peer.webgpu)}, reid WebGPU / onnxruntime-web wasm = ${ratio(ours.webgpu, peer.wasm)}, reid CPU / onnxruntime-web wasm = ${ratio(ours.cpu, peer.wasm)}`);
  }
} finally {
  await browser.close();
}

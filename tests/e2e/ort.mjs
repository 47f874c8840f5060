// onnxruntime-web's side of the browser benchmarks (bench.mjs, bench_models.mjs): on a page that
// has loaded onnxruntime-web (`ort`), one session of `model` on the execution provider `ep`
// (wasm on one thread, or WebGPU), a warm-up batch of `batch` 256x128 crops, then `iters` timed
// batches. Returns `{ rate, version }` in crops/s, or `{ error }`.
export function ortRate(page, { model, ep, batch, iters }) {
  return page.evaluate(async ({ model, ep, batch, iters }) => {
    /* global ort */
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = '/';
    try {
      const session = await ort.InferenceSession.create(model, {
        executionProviders: [ep],
        graphOptimizationLevel: 'all',
      });
      const data = new Float32Array(batch * 3 * 256 * 128);
      for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 12.9898) * 1.5;
      const feeds = { x: new ort.Tensor('float32', data, [batch, 3, 256, 128]) };
      await session.run(feeds);
      const start = performance.now();
      for (let i = 0; i < iters; i++) await session.run(feeds);
      const rate = (batch * iters) / ((performance.now() - start) / 1000);
      await session.release();
      return { rate, version: ort.env.versions.web };
    } catch (e) {
      return { error: String(e) };
    }
  }, { model, ep, batch, iters });
}

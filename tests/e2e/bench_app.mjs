// The browser side of `cargo xtask bench app`: what a user of the built app waits for and what
// it costs to fetch, in Debian's headless Chromium against the app served as `cargo xtask
// serve` serves it (its caching headers included).
//
// A cold load is a new browser profile on disk (nothing cached, no service worker); a warm load
// is the same profile reloaded (the service worker answers from its cache). For each, on the CPU path:
// - interactive: navigation start to the app's controls drawn (the Yew app mounted, `#demo`);
// - model ready: to the worker's backend line (`#backend[data-backend]`), from when pictures
//   are embedded;
// - first result: the demo pictures are added at "interactive"; the time to the first one
//   embedded, and to the ranked list of a search with the first (all of them embedded first);
// - bytes from the network: every response not answered by the service worker (its own fetches
//   included), encoded body and headers, by kind (wasm, model, other).
// Then frames/s on the demo video over its 30 frames, on the CPU path (the people found in a
// second worker, then in the inference worker alone, side by side) and on WebGPU (SwiftShader
// where there is no GPU; WEBGPU_FRAMES=N stops it after N frames).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, launchProfile, oneWorkerOnly } from './browser.mjs';

const BASE = process.env.REID_BASE_URL;
if (!BASE) {
  console.error('REID_BASE_URL must be set: run this through `cargo xtask bench app`');
  process.exit(2);
}
// Frames of the demo video timed on WebGPU before stopping it (all 30 by default).
const WEBGPU_FRAMES = Number(process.env.WEBGPU_FRAMES || 1000);

function kind(url) {
  const path = new URL(url).pathname;
  if (path.endsWith('.wasm')) return 'wasm';
  if (path.endsWith('.bpk')) return 'model';
  return 'other';
}

// Counts the bytes each response brought over the network (not those the service worker
// answered from its cache) while `body` runs.
async function transferred(context, body) {
  const bytes = { wasm: 0, model: 0, other: 0 };
  const pending = [];
  const onFinished = (request) => pending.push((async () => {
    const response = await request.response();
    if (!response || response.fromServiceWorker() || !request.url().startsWith('http')) return;
    const sizes = await request.sizes();
    bytes[kind(request.url())] += sizes.responseBodySize + sizes.responseHeadersSize;
    if (process.env.BENCH_VERBOSE) {
      console.log(`  ${response.status()} ${request.url()} ${sizes.responseBodySize} B${request.serviceWorker() ? ' (by the service worker)' : ''}`);
    }
  })());
  context.on('requestfinished', onFinished);
  try {
    await body();
    await Promise.all(pending);
  } finally {
    context.off('requestfinished', onFinished);
  }
  return bytes;
}

// ms since navigation start when `selector` first matches (polled every frame).
async function at(page, selector, timeout = 300000) {
  const handle = await page.waitForFunction(
    (s) => document.querySelector(s) && performance.now(),
    selector,
    { polling: 'raf', timeout },
  );
  return handle.jsonValue();
}

// One load of the app: its times (ms since navigation start).
async function load(page, navigate) {
  await navigate();
  const interactive = await at(page, '#demo');
  await page.click('#demo');
  const ready = await at(page, '#backend[data-backend="cpu"]');
  const firstPicture = await at(page, '.item[data-state="done"]');
  const count = await page.evaluate(async () => (await (await fetch('demo/index.json')).json()).images.length);
  await page.waitForFunction(
    (n) => document.querySelectorAll('.item[data-state="done"]').length === n,
    count,
    { timeout: 300000 },
  );
  await page.click('.item[data-state="done"] button.search');
  const ranked = await at(page, '#ranked li');
  return { interactive, ready, firstPicture, ranked, pictures: count };
}

function report(name, times, bytes) {
  const mb = (b) => (b / 1e6).toFixed(2);
  const total = bytes.wasm + bytes.model + bytes.other;
  console.log(`${name} load: interactive ${times.interactive.toFixed(0)} ms, model ready ${times.ready.toFixed(0)} ms, `
    + `first picture embedded ${times.firstPicture.toFixed(0)} ms, ranked list of a search ${times.ranked.toFixed(0)} ms `
    + `(${times.pictures} demo pictures embedded first); from the network ${mb(total)} MB `
    + `(wasm ${mb(bytes.wasm)} MB, model ${mb(bytes.model)} MB, other ${mb(bytes.other)} MB)`);
}

// Frames/s of the demo video on `backend`, over at most `frames` frames (then stopped); with
// `single`, in one worker (the second refused). Returns the frames/s.
async function videoFps(browser, backend, frames, single = false) {
  const context = await browser.newContext();
  if (single) await context.addInitScript(oneWorkerOnly);
  try {
    const page = await context.newPage();
    await page.goto(`${BASE}/?backend=${backend}`);
    await page.waitForSelector(`#backend[data-backend="${backend}"]`, { timeout: 300000 });
    await page.click('#demo-video');
    const video = '.item.video[data-name="scene.webm"]';
    await page.waitForFunction(
      ([s, n]) => {
        const v = document.querySelector(s);
        return v && (v.dataset.state === 'followed' || Number(v.dataset.frames) >= n);
      },
      [video, frames],
      { timeout: 600000, polling: 200 },
    );
    const item = page.locator(video);
    const done = Number(await item.getAttribute('data-frames'));
    const fps = Number(await item.getAttribute('data-fps'));
    const workerMs = Number(await item.getAttribute('data-worker-ms'));
    const detectMs = Number(await item.getAttribute('data-detect-ms'));
    const beside = (await item.getAttribute('data-beside')) === 'true';
    if ((await item.getAttribute('data-state')) !== 'followed') {
      await item.locator('button.stop').click();
    }
    const adapter = await page.textContent('#backend');
    console.log(`demo video on ${backend}${single ? ' (one worker)' : ''}: ${fps.toFixed(2)} frames/s over ${done} frames, `
      + (beside
        ? `a frame ${detectMs.toFixed(0)} ms finding people in one worker beside ${workerMs.toFixed(0)} ms embedding and tracking in another`
        : `a frame ${workerMs.toFixed(0)} ms in the worker (${detectMs.toFixed(0)} ms finding people)`)
      + ` fps_${backend}${single ? '_one_worker' : ''}=${fps.toFixed(3)}`);
    console.log(`  (${adapter.trim().replace(/\s+/g, ' ')})`);
    return fps;
  } finally {
    await context.close();
  }
}

// The loads run in a new profile on disk, as a user's browser keeps one.
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'reid-bench-profile-'));
const context = await launchProfile(profile);
try {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error(`  page: ${m.text()}`); });
  let cold;
  const coldBytes = await transferred(context, async () => {
    cold = await load(page, () => page.goto(`${BASE}/?backend=cpu`));
    // The service worker keeps the app's files for the next visit: wait until it controls
    // the page, so its copying is counted with the cold load.
    await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  });
  report('cold', cold, coldBytes);
  let warm;
  const warmBytes = await transferred(context, async () => {
    warm = await load(page, () => page.reload());
  });
  report('warm', warm, warmBytes);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

const browser = await launch();
try {
  // The CPU path with the people found in a second worker, and in one worker, side by side.
  const two = await videoFps(browser, 'cpu', 1000);
  const one = await videoFps(browser, 'cpu', 1000, true);
  console.log(`demo video on cpu: two workers ${(two / one).toFixed(2)}x the frames/s of one`);
  await videoFps(browser, 'webgpu', WEBGPU_FRAMES);
} finally {
  await browser.close();
}

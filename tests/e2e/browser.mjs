// Shared helpers of the browser tests: launching Debian's Chromium (WebGPU on SwiftShader) and
// the network audit, which records every request the page and its workers make, through the
// browser's own request events, and blocks any that would leave the page's origin.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Chromium's command line for the tests: WebGPU on, nothing but loopback resolvable.
const ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
  // Nothing may resolve but loopback: an outside request is recorded, then fails here.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
];

// `extra`: more command-line flags (a fake camera, for one).
export async function launch(extra = []) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...ARGS, ...extra] });
}

// A browser with a profile kept in `dir`, as a user's is (its HTTP cache on disk, not in
// memory as a fresh context's): the same flags as `launch`. Returns its one context.
export async function launchProfile(dir) {
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS });
}

function ownOrigin(url, origin) {
  if (url.startsWith('blob:') || url.startsWith('data:')) return true;
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}

// Records requests of every page and worker of `context`; requests to other origins are
// aborted before they leave. `foreign()` lists them.
export async function audit(context, origin) {
  const seen = [];
  const record = (request) => seen.push(request.url());
  context.on('request', record);
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (ownOrigin(url, origin)) return route.continue();
    return route.abort('blockedbyclient');
  });
  return {
    seen,
    foreign: () => seen.filter((u) => !ownOrigin(u, origin)),
  };
}

// An init script (`page.addInitScript(oneWorkerOnly)`) after which every `new Worker` but the
// first throws, as where a browser refuses a second worker: the app's inference worker then
// finds the people in video frames itself.
export function oneWorkerOnly() {
  const Real = window.Worker;
  let made = 0;
  window.Worker = class extends Real {
    constructor(...args) {
      made += 1;
      if (made > 1) throw new Error('a second worker is refused here');
      super(...args);
    }
  };
}

// A new context of `browser` with its network audited, and a page of the app at `base` once
// it says it runs on `backend` (forced by `?backend=`).
export async function openApp(browser, base, backend = 'cpu') {
  const context = await browser.newContext();
  const net = await audit(context, new URL(base).origin);
  const page = await context.newPage();
  await page.goto(`${base}/?backend=${backend}`);
  await page.waitForSelector(`#backend[data-backend="${backend}"]`, { timeout: 120000 });
  return { context, net, page };
}

// Adds the demo pictures of the built app in `dist` to `page`, waits until all are embedded,
// searches with the first, and returns the demo's index and the ranking as [name, score] rows.
export async function demoSearch(page, dist) {
  const index = JSON.parse(fs.readFileSync(path.join(dist, 'demo/index.json'), 'utf8'));
  await page.click('#demo');
  await page.waitForFunction(
    (n) => document.querySelectorAll('.item[data-state="done"]').length === n,
    index.images.length,
    { timeout: 300000 },
  );
  await page.click(`.item[data-name="${index.images[0]}"] button.search`);
  await page.waitForFunction((n) => document.querySelectorAll('#ranked li').length === n, index.images.length, { timeout: 120000 });
  const ranking = await page.$$eval('#ranked li', (lis) => lis.map((li) => [li.dataset.name, Number(li.dataset.score)]));
  return { index, ranking };
}

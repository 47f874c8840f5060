// Offline use: after one visit the app opens and works with its server gone. The test serves
// the built app (dist/) from its own server, visits it once (the service worker keeps the app's
// files), stops the server, reloads, and runs the demo's search and the demo clip again: the
// ranking must be the online one, and no request may leave the origin, online or off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, audit, demoSearch } from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(HERE, '../../dist');
const OUT = path.join(HERE, 'out');
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jpg': 'image/jpeg',
  '.png': 'image/png',
  '.webm': 'video/webm',
};

// A plain static server of `root` (dist/ or a copy) that can be stopped for good.
async function serveDist(root = DIST) {
  const server = http.createServer((req, res) => {
    let rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.join(root, path.normalize(rel));
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
      'Cache-Control': 'no-cache',
    });
    res.end(fs.readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

// Serves `root`, opens a page of it in a fresh browser with the network audit on, and runs
// `body({ server, origin, page, net, pageErrors })`; everything is closed after.
async function withServedApp(root, body) {
  const server = await serveDist(root);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await launch();
  try {
    const context = await browser.newContext();
    const net = await audit(context, origin);
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await body({ server, origin, page, net, pageErrors });
  } finally {
    await browser.close();
    server.close();
  }
}

test('offline: after one visit the app opens, searches and follows the demo clip with its server gone', async () => {
  const sw = fs.readFileSync(path.join(DIST, 'sw.js'), 'utf8');
  assert.ok(!sw.includes('__REID_FILES__'), 'dist/sw.js has no file list: build the app with `cargo xtask`');
  const kept = sw.match(/const FILES = \[(.*)\];/)[1].split('","').length;
  await withServedApp(DIST, async ({ server, origin, page, net, pageErrors }) => {
    // The first visit, online: the service worker keeps every file of the build.
    await page.goto(`${origin}/?backend=cpu`);
    await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
    await page.waitForSelector('#offline[data-state="ready"]', { timeout: 120000 });
    const cached = await page.evaluate(async () => {
      const names = (await caches.keys()).filter((k) => k.startsWith('reid-app-'));
      return { names, entries: names.length ? (await (await caches.open(names[0])).keys()).length : 0 };
    });
    assert.equal(cached.names.length, 1, `caches: ${cached.names}`);
    assert.equal(cached.entries, kept, 'the kept files are not the build\'s list');
    const { ranking: online } = await demoSearch(page, DIST);
    const seenOnline = net.seen.length;

    // The server goes away for good.
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    const probe = await page.evaluate(() => fetch('/not-kept').then(() => 'answered', () => 'unreachable'));
    assert.equal(probe, 'unreachable', 'the server still answers');

    await page.reload();
    await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
    await page.waitForSelector('#offline[data-state="ready"]', { timeout: 60000 });
    const { ranking: offline } = await demoSearch(page, DIST);
    assert.deepEqual(offline.map(([n]) => n), online.map(([n]) => n), 'the ranking changed offline');
    const worst = Math.max(...offline.map(([, s], i) => Math.abs(s - online[i][1])));
    assert.ok(worst < 1e-6, `scores differ by ${worst}`);

    await page.click('#demo-video');
    await page.waitForSelector('.item[data-name="scene.webm"][data-state="followed"]', { timeout: 300000 });
    const tracks = Number(await page.getAttribute('.item[data-name="scene.webm"]', 'data-tracks'));
    assert.ok(tracks >= 1, 'no one was followed in the demo clip offline');
    assert.equal(await page.locator('.item[data-video="scene.webm"]').count(), tracks);
    console.log(`  offline: ${kept} files kept; ${seenOnline} requests online, ${net.seen.length - seenOnline} after the server stopped (all answered by the service worker); ${online.length} pictures ranked as online (max score difference ${worst.toExponential(1)}); ${tracks} people followed in the demo clip`);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'app-offline.png'), fullPage: true });
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(net.foreign(), [], `requests left the origin: ${net.foreign()}`);
  });
});

// A newer build on the server: its service worker installs beside the running one and waits,
// so the open page keeps its own build's files (both kept copies stay) and goes on working;
// "Use the new version" lets the new one take over, the page reloads into it, and the older
// copy is deleted.
test('update: a newer build waits while the page runs the one it loaded, and takes over when asked', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'reid-update-'));
  fs.cpSync(DIST, root, { recursive: true });
  try {
    await withServedApp(root, async ({ origin, page, net, pageErrors }) => {
      const kept = () => page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('reid-app-')).sort());

      await page.goto(`${origin}/?backend=cpu`);
      await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
      await page.waitForSelector('#offline[data-state="ready"]', { timeout: 120000 });
      const [first] = await kept();
      assert.ok(first, 'nothing was kept');

      // The next build (here: the same files under a new version) appears on the server, and the
      // browser checks for it (as it does on navigation and every day).
      const swFile = path.join(root, 'sw.js');
      const sw = fs.readFileSync(swFile, 'utf8');
      const version = sw.match(/const VERSION = '([^']+)'/)[1];
      fs.writeFileSync(swFile, sw.replace(`const VERSION = '${version}'`, `const VERSION = '${version}-next'`));
      await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r.update()));
      await page.waitForSelector('#offline[data-state="waiting"] #use-new-version', { timeout: 120000 });
      assert.deepEqual(await kept(), [first, `reid-app-${version}-next`].sort());
      // The page goes on with its build: its people are embedded and searched as before.
      const { ranking } = await demoSearch(page, root);
      assert.equal(ranking.length, JSON.parse(fs.readFileSync(path.join(root, 'demo/index.json'), 'utf8')).images.length);
      assert.deepEqual(await kept(), [first, `reid-app-${version}-next`].sort(), 'the running build\'s files were dropped');

      await page.click('#use-new-version');
      await page.waitForSelector('#offline[data-state="ready"]', { timeout: 120000 });
      await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
      assert.equal(await page.locator('.item').count(), 0, 'the page did not reload');
      assert.deepEqual(await kept(), [`reid-app-${version}-next`]);
      console.log(`  update: ${first} kept while the page ran it beside the waiting reid-app-${version}-next; after "Use the new version" only the new one`);
      assert.deepEqual(pageErrors, []);
      assert.deepEqual(net.foreign(), [], `requests left the origin: ${net.foreign()}`);
    });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

// The README's screenshots, taken from the real app in headless Chromium (CPU backend): the
// demo pictures and the demo clip in the gallery, a search with its timeline, and the same
// search at phone width. Run against a served build:
//   REID_BASE_URL=http://127.0.0.1:8080 node tests/e2e/screenshots.mjs
// (`cargo xtask serve` prints its address). Writes docs/screenshots/*.png.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, '../../docs/screenshots');
const BASE = process.env.REID_BASE_URL;
if (!BASE) throw new Error('set REID_BASE_URL to the served app');
const demo = JSON.parse(fs.readFileSync(path.resolve(HERE, '../../dist/demo/index.json'), 'utf8'));

fs.mkdirSync(OUT, { recursive: true });
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  await page.goto(`${BASE}/?backend=cpu`);
  await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
  await page.click('#demo');
  await page.waitForFunction((n) => document.querySelectorAll('.item[data-state="done"]').length === n,
    demo.images.length, { timeout: 300000 });
  await page.click('#demo-video');
  await page.waitForSelector('.item[data-name="scene.webm"][data-state="followed"]', { timeout: 300000 });
  await (await page.$('ul.items')).screenshot({ path: path.join(OUT, 'people.png') });
  await page.click(`.item[data-name="${demo.images[0]}"] button.search`);
  await page.waitForSelector('#timeline');
  await (await page.$('.search-result')).screenshot({ path: path.join(OUT, 'search.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator('.search-result').scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(OUT, 'search-phone.png') });
  console.log(`wrote ${fs.readdirSync(OUT).join(', ')} to ${OUT}`);
} finally {
  await browser.close();
}

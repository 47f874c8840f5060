// The camera: a clip recorded in the page is followed like a video file. Chromium films the demo
// clip as its fake camera (converted by ffmpeg to the Y4M it reads), the page records a few
// seconds, and the people in it are followed, become entries and are searchable, with no
// request leaving the origin. Without a camera the page says so in plain words.
import { test } from 'node:test';
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
const OUT = path.join(HERE, 'out');

test('camera: a recorded clip is followed like a video, and a missing camera is said in words', async () => {
  assert.ok(BASE, 'REID_BASE_URL is not set: run this through `cargo xtask test`');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reid-camera-'));
  const y4m = path.join(tmp, 'scene.y4m');
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', path.join(ROOT, 'dist/demo/scene.webm'),
    '-pix_fmt', 'yuv420p', y4m]);
  const browser = await launch([
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-video-capture=${y4m}`,
  ]);
  try {
    const { net, page } = await openApp(browser, BASE);
    await page.click('#camera-record');
    await page.waitForSelector('#camera-stop', { timeout: 30000 });
    // The live preview plays what the camera films.
    await page.waitForFunction(() => document.querySelector('.camera-preview')?.readyState >= 2, null, { timeout: 30000 });
    await page.waitForTimeout(5000);
    await page.click('#camera-stop');
    const clip = '.item.video[data-name^="camera-"]';
    await page.waitForSelector(`${clip}[data-state="followed"], ${clip}[data-state="failed"]`, { timeout: 300000 });
    const state = await page.textContent(`${clip} .state`);
    assert.equal(await page.getAttribute(clip, 'data-state'), 'followed', state);
    const tracks = Number(await page.getAttribute(clip, 'data-tracks'));
    const frames = Number(await page.getAttribute(clip, 'data-frames'));
    console.log(`  camera: ${await page.getAttribute(clip, 'data-name')}: ${state}`);
    assert.ok(frames >= 15, `${frames} frames followed of a 5-second clip`);
    assert.ok(tracks >= 1, 'no one followed in the filmed demo clip');
    // Its people are entries, searchable as any video's.
    const person = page.locator('.item[data-video^="camera-"]').first();
    const name = await person.getAttribute('data-name');
    await person.locator('button.search').click();
    await page.waitForSelector(`.search-result[data-query="${name}"] #ranked li`, { timeout: 60000 });
    assert.equal(await page.getAttribute('#ranked li:first-child', 'data-name'), name);
    // The camera is off once recorded.
    assert.equal(await page.evaluate(() => document.querySelector('.camera-preview').srcObject), null);
    fs.mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: path.join(OUT, 'camera.png'), fullPage: true });
    assert.deepEqual(net.foreign(), [], `requests left the origin: ${net.foreign()}`);
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  // No camera (headless Chromium has none): a message, and the page goes on.
  const plain = await launch();
  try {
    const page = await plain.newPage();
    await page.goto(`${BASE}/?backend=cpu`);
    await page.waitForSelector('#backend[data-backend="cpu"]', { timeout: 120000 });
    await page.click('#camera-record');
    const message = await (await page.waitForSelector('#camera-error', { timeout: 30000 })).textContent();
    console.log(`  no camera: ${message}`);
    assert.match(message, /^The camera could not be used: /);
    assert.ok(await page.isEnabled('#camera-record'));
  } finally {
    await plain.close();
  }
});

// The Evaluate section against the native `reid eval`, in Debian's headless Chromium on the CPU
// backend: a small Market-1501 folder made by `reid synth`, embedded in the page, gives the
// native metrics within 0.2 points; the native saved features, picked as a folder, give them
// exactly, and so does re-ranking; a result picked with the mouse or the keyboard shows the
// pair's maps, whose cells add up to the similarity ranked; a folder that is not a test set and
// one with a damaged picture are refused in plain words; no request leaves the origin.
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
const REID_BIN = path.resolve(ROOT, process.env.REID_BIN || 'target/release/reid');
const MODEL = path.resolve(ROOT, process.env.REID_MODEL || 'models/mobilenetv2-synth-bot.bpk');
const OUT = path.join(HERE, 'out');

const METRICS = ['rank1', 'rank5', 'rank10', 'map', 'minp'];

// `reid eval --json`'s numbers under the page's names.
function nativeMetrics(args) {
  const m = JSON.parse(execFileSync(REID_BIN, ['eval', '--json', ...args], { encoding: 'utf8' }));
  return { rank1: m.cmc[0], rank5: m.cmc[4], rank10: m.cmc[9], map: m.map, minp: m.minp, cmc: m.cmc,
    valid: m.valid_queries, skipped: m.skipped_queries };
}

// The page's numbers, once the metrics of a run with `reranked` are shown.
async function pageMetrics(page, reranked) {
  await page.waitForSelector(`#eval-summary[data-reranked="${reranked}"], #eval-error`, { timeout: 300000 });
  const error = await page.$('#eval-error');
  assert.equal(error, null, error && await error.textContent());
  return page.evaluate((names) => {
    const out = {};
    for (const n of names) out[n] = Number(document.querySelector(`#eval-metrics [data-metric="${n}"]`).dataset.value);
    const summary = document.querySelector('#eval-summary');
    out.valid = Number(summary.dataset.valid);
    out.skipped = Number(summary.dataset.skipped);
    out.cmc = document.querySelector('#cmc').dataset.values.split(',').map(Number);
    out.summary = summary.textContent;
    out.worst = [...document.querySelectorAll('#worst-queries > li')].map((li) => ({
      query: li.dataset.query,
      pictures: li.querySelectorAll('img').length,
      results: [...li.querySelectorAll('.results li')].map((r) => r.classList.contains('same')),
    }));
    return out;
  }, METRICS);
}

// The pair panel once it shows `gallery`'s map: the similarity, each map's cells and sums.
async function pairMaps(page, gallery) {
  await page.waitForSelector(`#pair[data-gallery="${gallery}"], #pair-error`, { timeout: 60000 });
  const error = await page.$('#pair-error');
  assert.equal(error, null, error && await error.textContent());
  return page.evaluate(() => {
    const pair = document.querySelector('#pair');
    const maps = ['#pair-query', '#pair-gallery'].map((id) => document.querySelector(id));
    return {
      similarity: Number(pair.dataset.similarity),
      query: pair.dataset.query,
      gallery: pair.dataset.gallery,
      width: Number(maps[0].dataset.width),
      height: Number(maps[0].dataset.height),
      sums: maps.map((m) => m.dataset.values.split(',').map(Number).reduce((a, b) => a + b, 0)),
      cells: maps[0].querySelectorAll('rect').length,
    };
  });
}

test('Evaluate: a Market-1501 folder embedded in the page gives `reid eval`\'s metrics, its saved features give them exactly', async () => {
  assert.ok(BASE, 'REID_BASE_URL is not set: run this through `cargo xtask test`');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'reid-eval-'));
  const market = path.join(tmp, 'market');
  const features = path.join(tmp, 'features');
  execFileSync(REID_BIN, ['synth', '--preset', 'tiny', '--seed', '7', '--tracklet-frames', '0',
    '--scenes-per-camera', '0', '--out', market], { stdio: 'pipe' });
  const counts = ['query', 'bounding_box_test'].map((d) => fs.readdirSync(path.join(market, d)).length);
  const dataset = nativeMetrics(['--dataset', market, '--model', MODEL, '--save-features', features]);
  const saved = nativeMetrics(['--features', features]);
  const rerank = nativeMetrics(['--features', features, '--rerank']);
  // A test set with a damaged picture.
  const damaged = path.join(tmp, 'damaged');
  fs.cpSync(market, damaged, { recursive: true });
  const victim = fs.readdirSync(path.join(damaged, 'query')).sort()[1];
  const bytes = fs.readFileSync(path.join(damaged, 'query', victim));
  fs.writeFileSync(path.join(damaged, 'query', victim), bytes.subarray(0, Math.floor(bytes.length / 3)));

  const browser = await launch();
  try {
    const { net, page } = await openApp(browser, BASE);

    // Embedded in the page.
    const started = Date.now();
    await page.setInputFiles('#eval-folder', market);
    const embedded = await pageMetrics(page, false);
    const seconds = (Date.now() - started) / 1000;
    console.log(`  evaluate: ${counts[0]} queries, ${counts[1]} gallery pictures embedded and ranked in ${seconds.toFixed(1)} s`);
    console.log(`  page: ${METRICS.map((m) => `${m} ${(100 * embedded[m]).toFixed(2)}`).join(', ')}`);
    console.log(`  reid eval --dataset: ${METRICS.map((m) => `${m} ${(100 * dataset[m]).toFixed(2)}`).join(', ')}`);
    assert.equal(embedded.valid, dataset.valid);
    assert.equal(embedded.skipped, dataset.skipped);
    for (const m of METRICS) {
      assert.ok(Math.abs(embedded[m] - dataset[m]) <= 0.002, `${m}: page ${embedded[m]}, native ${dataset[m]}`);
    }
    assert.equal(embedded.cmc.length, dataset.cmc.length);
    embedded.cmc.forEach((v, i) => assert.ok(Math.abs(v - dataset.cmc[i]) <= 0.002, `Rank-${i + 1}`));
    assert.match(embedded.summary, /embedded here by the running model/);
    // The worst queries, each with its picture and its ranked list's pictures.
    assert.ok(embedded.worst.length >= 1 && embedded.worst.length <= 5, `${embedded.worst.length} worst queries`);
    for (const w of embedded.worst) {
      assert.ok(w.results.length >= 1 && w.results.length <= 10);
      assert.equal(w.pictures, 1 + w.results.length, `${w.query}: pictures missing`);
    }

    // A pair's map: the first result of the worst query, picked with the mouse. The cells of
    // each picture's map add up to the pair's similarity, which is 1 - the distance ranked.
    const first = page.locator('#worst-queries > li').first().locator('.results li').first();
    const distance = Number(await first.getAttribute('data-distance'));
    const galleryName = await first.getAttribute('data-name');
    await first.locator('button.explain').click();
    const pair = await pairMaps(page, galleryName);
    console.log(`  pair map: ${pair.query} against ${pair.gallery}: similarity ${pair.similarity.toFixed(4)} (1 - distance ${(1 - distance).toFixed(4)}), ${pair.width}x${pair.height} cells, sums ${pair.sums.map((v) => v.toFixed(4)).join(' and ')}`);
    assert.ok(Math.abs(pair.similarity - (1 - distance)) < 1e-4, `similarity ${pair.similarity}, distance ${distance}`);
    for (const sum of pair.sums) assert.ok(Math.abs(sum - pair.similarity) < 1e-4, `cells sum to ${sum}`);
    assert.deepEqual([pair.width, pair.height], [4, 8]);
    assert.ok(pair.cells > 0, 'no cell is drawn');
    fs.mkdirSync(OUT, { recursive: true });
    await page.locator('#evaluate').screenshot({ path: path.join(OUT, 'evaluate.png') });
    // The keyboard: another result, focused and picked with Enter.
    const second = page.locator('#worst-queries > li').first().locator('.results li').nth(1);
    const secondName = await second.getAttribute('data-name');
    await second.locator('button.explain').focus();
    await page.keyboard.press('Enter');
    const other = await pairMaps(page, secondName);
    assert.ok(Math.abs(other.similarity - (1 - Number(await second.getAttribute('data-distance')))) < 1e-4);

    // The native saved features: `reid eval --features`' numbers exactly, then re-ranked.
    await page.setInputFiles('#eval-folder', features);
    await page.waitForSelector('#eval-summary:has-text("read from the saved features")', { timeout: 120000 });
    const fromFile = await pageMetrics(page, false);
    for (const m of [...METRICS, 'valid', 'skipped']) assert.equal(fromFile[m], saved[m], m);
    assert.deepEqual(fromFile.cmc, saved.cmc);
    assert.equal(fromFile.worst[0].pictures, 0);
    assert.equal(await page.locator('#worst-queries button.explain').count(), 0, 'saved features have no pictures to map');
    await page.check('#eval-rerank');
    const reranked = await pageMetrics(page, true);
    for (const m of METRICS) assert.equal(reranked[m], rerank[m], `re-ranked ${m}`);
    assert.deepEqual(reranked.cmc, rerank.cmc);
    console.log(`  saved features: page = reid eval --features exactly (mAP ${(100 * fromFile.map).toFixed(2)}%, re-ranked ${(100 * reranked.map).toFixed(2)}%)`);

    // Not a test set; a damaged picture: plain words, naming what is wrong.
    await page.setInputFiles('#eval-folder', path.join(ROOT, 'tests/fixtures/hog'));
    const notMarket = await (await page.waitForSelector('#eval-error')).textContent();
    assert.match(notMarket, /0 pictures in query\/ and 0 in bounding_box_test\//);
    await page.uncheck('#eval-rerank');
    await page.setInputFiles('#eval-folder', damaged);
    await page.waitForFunction((name) => document.querySelector('#eval-error')?.textContent.includes(name),
      `damaged/query/${victim}`, { timeout: 300000 });
    const message = await page.textContent('#eval-error');
    assert.ok(message.includes(`damaged/query/${victim}`), message);
    console.log(`  damaged picture: ${message}`);
    assert.deepEqual(net.foreign(), [], `requests left the origin: ${net.foreign()}`);
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// Control test: the network audit must catch a page, and a worker of that page, that reach for
// an outside address. Without it a green privacy test would prove nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { launch, audit } from './browser.mjs';

const PAGE = `<!doctype html><title>leaky</title><script>
  fetch('http://tracker.invalid/beacon').catch(() => {});
  const w = new Worker('/leaky-worker.js');
  w.onmessage = (e) => { document.title = e.data; };
</script>`;
const WORKER = `fetch('http://tracker.invalid/from-worker').catch(() => postMessage('done'));`;

test('the audit catches outside requests from a page and from its worker', async () => {
  const server = http.createServer((req, res) => {
    const worker = req.url === '/leaky-worker.js';
    res.writeHead(200, { 'Content-Type': worker ? 'text/javascript' : 'text/html' });
    res.end(worker ? WORKER : PAGE);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await launch();
  try {
    const context = await browser.newContext();
    const net = await audit(context, origin);
    const page = await context.newPage();
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => document.title === 'done', null, { timeout: 20000 });
    const foreign = net.foreign();
    assert.ok(foreign.includes('http://tracker.invalid/beacon'), `page request missed: ${net.seen}`);
    assert.ok(
      foreign.includes('http://tracker.invalid/from-worker'),
      `worker request missed: ${net.seen}`,
    );
  } finally {
    await browser.close();
    server.close();
  }
});

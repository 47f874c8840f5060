// Shared helpers of the browser tests: launching Debian's Chromium (WebGPU on SwiftShader) and
// the network audit, which records every request the page and its workers make, through the
// browser's own request events, and blocks any that would leave the page's origin.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
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
    ],
  });
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

// The app's service worker: it keeps the app's own files in the browser's Cache Storage so that,
// after a first visit, the app opens and works with the network off. `cargo xtask` writes the
// list of built files and a version into this file after each build (a changed file gives a new
// version, which replaces the kept copy once the user switches to it: see `ui/offline.rs`). It
// fetches only those files, from this origin; the pictures and videos a user opens never pass
// through it (the page reads them from disk).
'use strict';

const VERSION = '__REID_VERSION__';
const FILES = [__REID_FILES__];
const CACHE = `reid-app-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // `no-cache`: the browser's HTTP cache may be asked, but must check with the server, so
      // the kept copy is the served build and not an older one.
      await cache.addAll(FILES.map((f) => new Request(f, { cache: 'no-cache' })));
      // No `skipWaiting` here: a newer build waits while a page of the older one runs, so that
      // page keeps getting its own build's files (a worker it restarts included). The page
      // offers the new version, and the user's "Use the new version" sends the message below.
    })(),
  );
});

// The page's "Use the new version": this build takes over from the older one, whose kept
// copy is then deleted, and the page reloads into this build.
self.addEventListener('message', (event) => {
  if (event.data === 'use-new-version') self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith('reid-app-') && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

// Kept files answer from the cache, so the page, its code and its model are always of one
// build; anything else (a byte range of a video, say) goes to the network as usual.
self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || request.headers.has('range')) return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const kept =
        request.mode === 'navigate'
          ? await cache.match(new URL('./', self.registration.scope).href)
          : await cache.match(request);
      return kept || fetch(request);
    })(),
  );
});

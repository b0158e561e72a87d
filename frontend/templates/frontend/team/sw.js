/* Service worker of the team app ({{ scope }}): keeps the app shell so the app opens without
 * network, the JavaScript translation catalog of every language included. Served by
 * frontend.team.service_worker; its version changes with the shell files (and the compiled
 * catalogs), which makes the browser install a new worker and drop the old cache.
 *
 * Only GET requests for the shell are answered here. API calls (reads and writes) and map
 * tiles go straight to the network: the app's own outbox (IndexedDB) handles the offline
 * case for writes, and caches what it last read. */
"use strict";

const VERSION = "{{ version }}";
const CACHE = `maraudes-equipe-${VERSION}`;
const SHELL = {{ shell|safe }};
const APP = "{{ scope }}";
// Shown when there is no network and no kept copy of the app yet.
const OFFLINE_PAGE = {{ offline_page|safe }};

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const assets = SHELL.filter((url) => url !== APP);
      await cache.addAll(assets);
      // The page itself needs the session: keep it only if it really is the app (a login
      // redirect is not an app shell).
      try {
        const response = await fetch(APP, { credentials: "same-origin" });
        if (response.ok && !response.redirected) await cache.put(APP, response);
      } catch (error) {
        /* offline while installing: the next visit stores it */
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("maraudes-equipe-") && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && SHELL.includes(url.pathname);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (request.mode === "navigate" && url.origin === self.location.origin && url.pathname === APP) {
    // The page: fresh from the network when there is one (a new version, a new login),
    // the kept copy otherwise.
    event.respondWith(
      (async () => {
        const cache = await caches.open(CACHE);
        try {
          const response = await fetch(request);
          if (response.ok && !response.redirected) await cache.put(APP, response.clone());
          return response;
        } catch (error) {
          const kept = await cache.match(APP);
          if (kept) return kept;
          // In the language the worker was installed in (the page it replaces is gone).
          return new Response(
            OFFLINE_PAGE,
            { headers: { "Content-Type": "text/html; charset=utf-8" } },
          );
        }
      })(),
    );
    return;
  }
  if (isShell(url)) {
    // Scripts, styles, icons, translation catalogs: from the cache of this version, else the
    // network. Each catalog's URL names its language, so the copy of one URL always fits;
    // LocaleMiddleware still says "Vary: Accept-Language", which must not make it a miss.
    event.respondWith(
      (async () => {
        const cache = await caches.open(CACHE);
        const kept = await cache.match(request, { ignoreSearch: true, ignoreVary: true });
        if (kept) return kept;
        const response = await fetch(request);
        if (response.ok) await cache.put(request, response.clone());
        return response;
      })(),
    );
  }
});

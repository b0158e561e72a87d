/* The team app's memory and outbox, in IndexedDB: nothing typed is lost, even offline.
 *
 * Stores:
 *  - shifts:  the shifts of this phone, by a local id made here (the server id comes later);
 *  - fixes:   positions not yet put in a batch, keyed [shift, t] (a resend of the same time
 *             is the same fix);
 *  - outbox:  what must reach the server, in order (auto-increment `seq`): check-in, batches
 *             of fixes, encounters, check-out, GPX files;
 *  - meta:    small values: the current shift, the chosen team, the last zones read, the
 *             items the server refused (kept to be shown, never silently dropped).
 *
 * The Sender sends the outbox in order, one item at a time. A network error or a 5xx waits
 * and retries with backoff; a refusal (4xx) moves the item to the refused list with the
 * server's reason; a lost session pauses everything until the member logs in again. The
 * server stores each thing once whatever the retries: fixes are unique per (shift, time),
 * encounters per client id, and a check-in whose answer was lost is found again by its
 * `started_at` before being sent a second time.
 *
 * The reasons kept with a refused item are shown to the member: French, translated by
 * gettext() and interpolate() from the page's JavaScript catalog (see app.js). */

const DB_NAME = "maraudes-equipe";
const DB_VERSION = 1;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export function uuid() {
  if (self.crypto && typeof self.crypto.randomUUID === "function") return self.crypto.randomUUID();
  // Plain http on a LAN is not a secure context: no randomUUID, but getRandomValues works.
  const b = self.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class Store {
  constructor() {
    this.db = new Promise((resolve, reject) => {
      const open = indexedDB.open(DB_NAME, DB_VERSION);
      open.onupgradeneeded = () => {
        const db = open.result;
        db.createObjectStore("shifts", { keyPath: "local_id" });
        const fixes = db.createObjectStore("fixes", { keyPath: ["shift", "t"] });
        fixes.createIndex("shift", "shift");
        db.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
        db.createObjectStore("meta", { keyPath: "key" });
      };
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }

  /* Run `work(stores)` in one transaction; resolves with its result once committed. */
  async run(names, mode, work) {
    const db = await this.db;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(names, mode);
      const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
      let result;
      Promise.resolve()
        .then(() => work(stores))
        .then(
          (value) => {
            result = value;
          },
          (error) => {
            try {
              tx.abort();
            } catch (e) {
              /* already finished */
            }
            reject(error);
          },
        );
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
  }

  getMeta(key, fallback = null) {
    return this.run(["meta"], "readonly", async ({ meta }) => {
      const row = await promised(meta.get(key));
      return row ? row.value : fallback;
    });
  }

  setMeta(key, value) {
    return this.run(["meta"], "readwrite", ({ meta }) => promised(meta.put({ key, value })));
  }

  getShift(localId) {
    if (!localId) return Promise.resolve(null);
    return this.run(["shifts"], "readonly", async ({ shifts }) => (await promised(shifts.get(localId))) || null);
  }

  putShift(shift) {
    return this.run(["shifts"], "readwrite", ({ shifts }) => promised(shifts.put(shift)));
  }

  /* Change a shift with `change(shift)` inside one transaction (no lost update). */
  updateShift(localId, change) {
    return this.run(["shifts"], "readwrite", async ({ shifts }) => {
      const shift = await promised(shifts.get(localId));
      if (!shift) return null;
      change(shift);
      await promised(shifts.put(shift));
      return shift;
    });
  }

  addFix(fix) {
    return this.run(["fixes"], "readwrite", ({ fixes }) => promised(fixes.put(fix)));
  }

  pendingFixes(localId) {
    return this.run(["fixes"], "readonly", ({ fixes }) =>
      promised(fixes.index("shift").count(IDBKeyRange.only(localId))),
    );
  }

  /* Move a shift's loose fixes into outbox batches of at most `size`, in time order, in the
   * same transaction: a fix is always somewhere, never in two places. */
  batchFixes(localId, size) {
    return this.run(["fixes", "outbox"], "readwrite", async ({ fixes, outbox }) => {
      const loose = await promised(fixes.index("shift").getAll(IDBKeyRange.only(localId)));
      if (!loose.length) return 0;
      loose.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
      for (let i = 0; i < loose.length; i += size) {
        const chunk = loose.slice(i, i + size).map(({ shift, ...fix }) => fix);
        await promised(outbox.add({ kind: "fixes", shift: localId, payload: { fixes: chunk }, created: Date.now(), attempts: 0 }));
      }
      for (const fix of loose) await promised(fixes.delete([fix.shift, fix.t]));
      return loose.length;
    });
  }

  enqueue(item) {
    return this.run(["outbox"], "readwrite", ({ outbox }) =>
      promised(outbox.add({ created: Date.now(), attempts: 0, ...item })),
    );
  }

  first() {
    return this.run(["outbox"], "readonly", async ({ outbox }) => {
      const cursor = await promised(outbox.openCursor());
      return cursor ? cursor.value : null;
    });
  }

  putItem(item) {
    return this.run(["outbox"], "readwrite", ({ outbox }) => promised(outbox.put(item)));
  }

  removeItem(seq) {
    return this.run(["outbox"], "readwrite", ({ outbox }) => promised(outbox.delete(seq)));
  }

  /* The server refused it: keep it, with the reason, where the member can see it. */
  refuse(item, reason) {
    return this.run(["outbox", "meta"], "readwrite", async ({ outbox, meta }) => {
      const row = (await promised(meta.get("refused"))) || { key: "refused", value: [] };
      const { payload } = item;
      row.value.push({ kind: item.kind, shift: item.shift, payload: item.kind === "gpx" ? { name: payload.name } : payload, reason, at: new Date().toISOString() });
      await promised(meta.put(row));
      await promised(outbox.delete(item.seq));
    });
  }

  /* What is waiting, for the counter on screen: fixes one by one, the rest by kind. */
  counts() {
    return this.run(["outbox", "fixes", "meta"], "readonly", async ({ outbox, fixes, meta }) => {
      const items = await promised(outbox.getAll());
      const counts = { fixes: await promised(fixes.count()), encounter: 0, checkin: 0, checkout: 0, gpx: 0 };
      for (const item of items) {
        if (item.kind === "fixes") counts.fixes += item.payload.fixes.length;
        else counts[item.kind] = (counts[item.kind] || 0) + 1;
      }
      const waiting = await promised(meta.get("awaiting_position"));
      counts.encounter += waiting ? waiting.value.length : 0;
      counts.total = counts.fixes + counts.encounter + counts.checkin + counts.checkout + counts.gpx;
      return counts;
    });
  }

  allShifts() {
    return this.run(["shifts"], "readonly", ({ shifts }) => promised(shifts.getAll()));
  }
}

/* --- Sending ------------------------------------------------------------------------------ */

const TIMEOUT_MS = 20000;
const MAX_BACKOFF_MS = 5 * 60 * 1000;

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function backoff(attempts) {
  const base = Math.min(MAX_BACKOFF_MS, 2000 * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** "%(name)s" filled from `values`: interpolate() with named placeholders. */
function fill(format, values) {
  return interpolate(format, values, true);
}

function firstMessage(body) {
  if (!body || typeof body !== "object") return "";
  if (typeof body.detail === "string") return body.detail;
  for (const [field, value] of Object.entries(body)) {
    const text = Array.isArray(value) ? value.join(" ") : typeof value === "string" ? value : "";
    if (text) return fill(gettext("%(field)s : %(message)s"), { field, message: text });
  }
  return "";
}

export class Sender {
  constructor({ store, urls, onChange = () => {}, onAuth = () => {}, onSent = () => {} }) {
    this.store = store;
    this.urls = urls;
    this.onChange = onChange;
    this.onAuth = onAuth;
    this.onSent = onSent;
    this.running = false;
    this.again = false;
    this.timer = null;
    this.paused = false;
  }

  kick() {
    clearTimeout(this.timer);
    this.timer = null;
    this.pump();
  }

  later(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), ms);
  }

  /* After the network comes back: whatever waited for it goes now. */
  async resume() {
    this.paused = false;
    const head = await this.store.first();
    if (head && head.next_at) {
      head.next_at = 0;
      await this.store.putItem(head);
    }
    this.kick();
  }

  async pump() {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      const work = () => this.drain();
      // One tab sends at a time when the browser can say so; the server would store each
      // thing once anyway, but a check-in sent twice would open two shifts.
      if (navigator.locks && navigator.locks.request) {
        await navigator.locks.request("maraudes-outbox", { ifAvailable: true }, (lock) => (lock ? work() : null));
      } else {
        await work();
      }
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.pump();
      }
    }
  }

  async drain() {
    for (;;) {
      if (this.paused || !navigator.onLine) return;
      const item = await this.store.first();
      if (!item) return;
      const wait = (item.next_at || 0) - Date.now();
      if (wait > 0) {
        this.later(wait);
        return;
      }
      let outcome;
      try {
        outcome = await this.send(item);
      } catch (error) {
        outcome = { retry: String(error) };
      }
      if (outcome.ok) {
        await this.store.removeItem(item.seq);
        this.onSent(item, outcome);
      } else if (outcome.auth) {
        this.paused = true;
        this.onAuth(outcome.auth);
        this.later(60000);
        this.onChange();
        return;
      } else if (outcome.refused) {
        await this.store.refuse(item, outcome.refused);
      } else {
        item.attempts = (item.attempts || 0) + 1;
        item.next_at = Date.now() + backoff(item.attempts);
        item.error = outcome.retry || "";
        if (outcome.ambiguous) item.ambiguous = true;
        await this.store.putItem(item);
        this.onChange();
        this.later(item.next_at - Date.now());
        return;
      }
      this.onChange();
    }
  }

  async request(method, url, body, { form = false } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        credentials: "same-origin",
        signal: controller.signal,
      });
      let data = null;
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
      return { status: response.status, data };
    } finally {
      clearTimeout(timer);
    }
  }

  /* The outcome of one HTTP exchange: ok, retry later, a lost session, or a refusal. */
  judge(status, data) {
    const message = firstMessage(data) || fill(gettext("erreur %(status)s"), { status });
    if (status >= 200 && status < 300) return { ok: true, data };
    // DRF's messages come in the page's language: "authentification" or "authentication".
    if (status === 401 || (status === 403 && /CSRF|authenti|identifi/i.test(message))) return { auth: message };
    if (status === 408 || status === 425 || status === 429 || status >= 500) return { retry: message };
    return { refused: message, data, status };
  }

  async send(item) {
    const shift = await this.store.getShift(item.shift);
    if (!shift) return { refused: gettext("maraude inconnue sur ce téléphone") };
    if (item.kind !== "checkin" && !shift.server_id) {
      return {
        refused: shift.refused
          ? fill(gettext("la maraude n'a pas pu être créée : %(reason)s"), { reason: shift.refused })
          : gettext("maraude pas encore créée sur le serveur"),
      };
    }
    try {
      return await this[`send_${item.kind}`](item, shift);
    } catch (error) {
      // fetch failed: no network, or it broke before the answer came back.
      return { retry: gettext("pas de réseau"), ambiguous: true };
    }
  }

  async send_checkin(item, shift) {
    if (item.ambiguous) {
      // The last try may have reached the server: look for the shift it opened first.
      const found = await this.request("GET", `${this.urls.openShifts}?team=${shift.team}`);
      if (found.status === 200) {
        const same = (found.data.shifts || []).find((s) => Date.parse(s.started_at) === Date.parse(shift.started_at));
        if (same) {
          await this.store.updateShift(shift.local_id, (s) => {
            s.server_id = same.id;
            s.token_lost = true;
          });
          return { ok: true, adopted: true };
        }
      } else {
        const judged = this.judge(found.status, found.data);
        if (!judged.ok) return judged.refused ? { retry: judged.refused } : judged;
      }
    }
    const { status, data } = await this.request("POST", this.urls.shifts, { team: shift.team, started_at: shift.started_at });
    const judged = this.judge(status, data);
    if (judged.ok) {
      await this.store.updateShift(shift.local_id, (s) => {
        s.server_id = data.id;
        s.token = data.tracker_token;
      });
    } else if (judged.refused) {
      await this.store.updateShift(shift.local_id, (s) => {
        s.refused = judged.refused;
      });
    }
    return judged;
  }

  async send_fixes(item, shift) {
    const url = `${this.urls.shifts}${shift.server_id}/positions/`;
    const { status, data } = await this.request("POST", url, item.payload);
    const judged = this.judge(status, data);
    if (judged.ok) {
      await this.store.updateShift(shift.local_id, (s) => {
        s.sent_fixes = (s.sent_fixes || 0) + data.accepted + data.duplicates;
        s.refused_fixes = (s.refused_fixes || 0) + data.rejected.length;
        if (data.rejected.length) s.last_refusal = data.rejected[0].reason;
      });
    }
    return judged;
  }

  async send_encounter(item, shift) {
    const body = { ...item.payload, shift: shift.server_id };
    const { status, data } = await this.request("POST", this.urls.encounters, body);
    return this.judge(status, data);
  }

  async send_checkout(item, shift) {
    const url = `${this.urls.shifts}${shift.server_id}/end/`;
    const { status, data } = await this.request("POST", url, item.payload);
    if (status === 400 && data && data.shift) return { ok: true, already: true }; // ended already
    return this.judge(status, data);
  }

  async send_gpx(item, shift) {
    const form = new FormData();
    form.append("file", item.payload.file, item.payload.name || "trace.gpx");
    const url = `${this.urls.shifts}${shift.server_id}/gpx/`;
    const { status, data } = await this.request("POST", url, form, { form: true });
    const judged = this.judge(status, data);
    if (judged.ok || judged.refused) {
      const text = judged.ok
        ? fill(gettext("%(file)s : %(accepted)s, %(duplicates)s, %(rejected)s."), {
            file: item.payload.name,
            accepted: fill(ngettext("%(count)s point ajouté", "%(count)s points ajoutés", data.accepted), { count: data.accepted }),
            duplicates: fill(ngettext("%(count)s déjà reçu", "%(count)s déjà reçus", data.duplicates), { count: data.duplicates }),
            rejected: fill(ngettext("%(count)s refusé", "%(count)s refusés", data.rejected_count), { count: data.rejected_count }),
          })
        : fill(gettext("%(file)s : %(reason)s"), { file: item.payload.name, reason: judged.refused });
      await this.store.updateShift(shift.local_id, (s) => {
        s.gpx_results = (s.gpx_results || []).concat([text]);
      });
    }
    return judged;
  }
}

/* The team app: start the shift in two taps, share the position, log an encounter in three,
 * end the shift. Everything goes into the outbox (outbox.js) first and is sent when the
 * network allows; the screen always says what is still waiting.
 *
 * Words are French, translated by gettext(), ngettext() and interpolate() from the page's
 * JavaScript catalog (/i18n/js/<lang>/, loaded before this module and kept by the service
 * worker with the rest of the shell; locale/en/LC_MESSAGES/djangojs.po). */

import { Sender, Store, uuid } from "./outbox.js";

const config = JSON.parse(document.getElementById("team-config").textContent);
const $ = (id) => document.getElementById(id);
const store = new Store();
// Times and numbers in the page's language (British English: a 24-hour clock).
const LOCALE = { fr: "fr-FR", en: "en-GB" }[document.documentElement.lang] || "fr-FR";
const clock = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit" });
const kilometres = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const percentage = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 0 });

const state = {
  shift: null,
  watch: null,
  lastFix: null,
  lastKept: null,
  lastBatch: Date.now(),
  sinceBatch: 0,
  chain: Promise.resolve(),
  map: null,
  layers: {},
  fitted: false,
  zonesAt: 0,
  resumable: null,
};

const sender = new Sender({
  store,
  urls: config.urls,
  onChange: () => refreshCounts(),
  onAuth: () => showBanner(gettext("Session expirée : reconnectez-vous pour envoyer ce qui attend (rien n'est perdu)."), true),
  onSent: (item) => {
    hideBanner();
    afterSent(item);
  },
});

/* --- Small helpers ------------------------------------------------------------------------ */

/** "%(name)s" filled from `values`: interpolate() with named placeholders. */
function fill(format, values) {
  return interpolate(format, values, true);
}

/** A ngettext() format with the count filled in as %(count)s. */
function counted(format, n) {
  return fill(format, { count: n });
}

function duration(seconds) {
  const minutes = Math.max(0, Math.round(seconds / 60));
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return h
    ? fill(gettext("%(hours)s h %(minutes)s"), { hours: h, minutes: String(m).padStart(2, "0") })
    : fill(gettext("%(minutes)s min"), { minutes: m });
}

function distanceText(metres) {
  return metres >= 1000 ? `${kilometres.format(metres / 1000)} km` : `${Math.round(metres)} m`;
}

function haversine(a, b) {
  const r = 6371008.8;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * r * Math.asin(Math.sqrt(h));
}

function setText(id, text) {
  const node = $(id);
  if (node) node.textContent = text;
}

let toastTimer = null;
function toast(text) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, 4000);
}

function showBanner(text, withLogin = false) {
  const banner = $("banner");
  banner.textContent = text;
  if (withLogin) {
    const link = document.createElement("a");
    link.href = config.urls.login;
    link.textContent = gettext("Se reconnecter");
    banner.append(" ", link);
  }
  banner.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

function team(id) {
  return config.teams.find((t) => t.id === id) || null;
}

function chosenTeam() {
  const checked = document.querySelector('input[name="team"]:checked');
  if (checked) return team(Number(checked.value));
  return config.teams[0] || null;
}

/* --- Screens ------------------------------------------------------------------------------ */

const SCREENS = ["start", "shift", "encounter", "end", "summary"];

function show(name) {
  for (const screen of SCREENS) $(`screen-${screen}`).hidden = screen !== name;
  $("app").dataset.screen = name;
  window.scrollTo(0, 0);
  if (name === "shift" && state.map) setTimeout(() => state.map.invalidateSize(), 0);
}

async function refreshCounts() {
  const counts = await store.counts();
  const node = $("pending");
  node.dataset.count = String(counts.total);
  if (!counts.total) {
    node.textContent = gettext("✓ Tout est envoyé");
    node.dataset.state = "done";
  } else {
    const parts = [];
    if (counts.checkin) parts.push(gettext("le début de la maraude"));
    if (counts.encounter) parts.push(counted(ngettext("%(count)s rencontre", "%(count)s rencontres", counts.encounter), counts.encounter));
    if (counts.fixes) parts.push(counted(ngettext("%(count)s point GPS", "%(count)s points GPS", counts.fixes), counts.fixes));
    if (counts.gpx) parts.push(counted(ngettext("%(count)s fichier GPX", "%(count)s fichiers GPX", counts.gpx), counts.gpx));
    if (counts.checkout) parts.push(gettext("la fin de la maraude"));
    node.textContent = fill(gettext("En attente d'envoi : %(items)s"), { items: parts.join(", ") });
    node.dataset.state = "waiting";
  }
  await renderRefused();
}

async function renderRefused() {
  const refused = await store.getMeta("refused", []);
  const section = $("failed");
  section.hidden = !refused.length;
  const list = $("failed-list");
  list.replaceChildren();
  const names = {
    checkin: gettext("Début de maraude"),
    checkout: gettext("Fin de maraude"),
    encounter: gettext("Rencontre"),
    fixes: gettext("Points GPS"),
    gpx: gettext("Fichier GPX"),
  };
  for (const entry of refused) {
    const li = document.createElement("li");
    const at = clock.format(new Date(entry.at));
    li.textContent = fill(gettext("%(what)s (%(time)s) : %(reason)s"), { what: names[entry.kind] || entry.kind, time: at, reason: entry.reason });
    list.append(li);
  }
}

function onNetwork() {
  const online = navigator.onLine;
  const pill = $("net");
  pill.dataset.state = online ? "online" : "offline";
  pill.textContent = online ? gettext("En ligne") : gettext("Hors ligne");
  if (online) {
    sender.resume();
    if (state.shift && state.shift.status === "open") {
      flushFixes();
      ensureSetup();
    }
  }
}

/* --- Start -------------------------------------------------------------------------------- */

async function showStart() {
  show("start");
  const saved = await store.getMeta("team");
  if (saved) {
    const radio = document.querySelector(`input[name="team"][value="${saved}"]`);
    if (radio) radio.checked = true;
  }
  const current = chosenTeam();
  if (current) {
    loadZones(current.id);
    lookForOpenShift(current.id);
  }
}

async function startShift() {
  const chosen = chosenTeam();
  if (!chosen) return;
  const button = $("start");
  button.disabled = true;
  try {
    const shift = {
      local_id: uuid(),
      team: chosen.id,
      team_name: chosen.name,
      color: chosen.color,
      max_speed: chosen.maxSpeed,
      started_at: new Date().toISOString(),
      status: "open",
      server_id: null,
      fix_count: 0,
      distance_m: 0,
      encounters: 0,
      people: 0,
    };
    await store.putShift(shift);
    await store.setMeta("current", shift.local_id);
    await store.setMeta("team", chosen.id);
    // The check-in goes first in the outbox: everything after it waits for its server id.
    await store.enqueue({ kind: "checkin", shift: shift.local_id, payload: {} });
    state.shift = shift;
    await refreshCounts();
    enterShift();
    sender.kick();
  } finally {
    button.disabled = false;
  }
}

async function lookForOpenShift(teamId) {
  $("resume").hidden = true;
  state.resumable = null;
  if (!navigator.onLine) return;
  try {
    const response = await fetch(`${config.urls.openShifts}?team=${teamId}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const { shifts } = await response.json();
    const known = new Set((await store.allShifts()).map((s) => s.server_id).filter(Boolean));
    const open = shifts.find((s) => s.started_by_me && !known.has(s.id));
    if (!open) return;
    state.resumable = { ...open, team: teamId };
    setText("resume-text", fill(gettext("Une maraude que vous avez démarrée est en cours depuis %(time)s."), { time: clock.format(new Date(open.started_at)) }));
    $("resume").hidden = false;
  } catch (error) {
    /* offline: nothing to offer */
  }
}

async function resumeShift() {
  const open = state.resumable;
  const chosen = open && team(open.team);
  if (!chosen) return;
  const shift = {
    local_id: uuid(),
    team: chosen.id,
    team_name: chosen.name,
    color: chosen.color,
    max_speed: chosen.maxSpeed,
    started_at: open.started_at,
    status: "open",
    server_id: open.id,
    token_lost: true,
    fix_count: 0,
    distance_m: 0,
    encounters: 0,
    people: 0,
  };
  await store.putShift(shift);
  await store.setMeta("current", shift.local_id);
  state.shift = shift;
  enterShift();
}

/* --- During the shift --------------------------------------------------------------------- */

function enterShift() {
  const shift = state.shift;
  show("shift");
  setText("shift-team", shift.team_name);
  renderElapsed();
  initMap();
  drawTrack();
  startWatch();
  loadZones(shift.team);
  renderTraccar();
  renderGpxResults();
  ensureSetup();
}

function renderElapsed() {
  const shift = state.shift;
  if (!shift) return;
  const since = new Date(shift.started_at);
  const seconds = (Date.now() - since.getTime()) / 1000;
  setText("shift-elapsed", fill(gettext("depuis %(time)s (%(duration)s)"), { time: clock.format(since), duration: duration(seconds) }));
}

function setGps(stateName, text) {
  const node = $("gps");
  node.dataset.state = stateName;
  node.textContent = text;
}

function startWatch() {
  if (state.watch !== null) return;
  if (!("geolocation" in navigator)) {
    setGps("off", gettext("Ce téléphone ne donne pas sa position."));
    return;
  }
  state.watch = navigator.geolocation.watchPosition(
    (position) => {
      state.chain = state.chain.then(() => onPosition(position)).catch((error) => console.error(error));
    },
    (error) => {
      if (error.code === error.PERMISSION_DENIED) {
        setGps("off", gettext("Position refusée : autorisez la localisation pour cette page dans les réglages du navigateur."));
      } else {
        setGps("waiting", gettext("Position introuvable pour l'instant (bâtiment, tunnel ?)…"));
      }
    },
    { enableHighAccuracy: true, maximumAge: 5000, timeout: 60000 },
  );
}

function stopWatch() {
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  state.watch = null;
}

async function onPosition(position) {
  const shift = state.shift;
  if (!shift || shift.status !== "open") return;
  const t = new Date(position.timestamp).toISOString();
  // A fix older than the check-in (the watch may hand back a cached one) would be refused.
  if (position.timestamp < Date.parse(shift.started_at) || (state.lastFix && state.lastFix.t === t)) return;
  const c = position.coords;
  const fix = {
    shift: shift.local_id,
    t,
    lon: Math.round(c.longitude * 1e7) / 1e7,
    lat: Math.round(c.latitude * 1e7) / 1e7,
    accuracy: Math.round(c.accuracy * 10) / 10,
  };
  if (Number.isFinite(c.speed) && c.speed >= 0) fix.speed = c.speed;
  if (Number.isFinite(c.heading)) fix.heading = c.heading;
  await store.addFix(fix);
  // The distance walked, by the coverage rule: kept fixes joined when close in time and at
  // a walking (or driving) speed.
  let added = 0;
  const kept = fix.accuracy <= config.maxAccuracy;
  if (kept && state.lastKept) {
    const dt = (Date.parse(fix.t) - Date.parse(state.lastKept.t)) / 1000;
    const d = haversine(state.lastKept, fix);
    if (dt > 0 && dt <= config.maxGapS && d / dt <= shift.max_speed) added = d;
  }
  if (kept) state.lastKept = fix;
  state.shift = await store.updateShift(shift.local_id, (s) => {
    s.fix_count = (s.fix_count || 0) + 1;
    s.distance_m = (s.distance_m || 0) + added;
    s.last_fix = { t: fix.t, lon: fix.lon, lat: fix.lat, accuracy: fix.accuracy };
    if (kept) s.last_kept = s.last_fix;
  });
  state.lastFix = fix;
  state.sinceBatch += 1;
  setGps("ok", fill(gettext("Position partagée · précision %(metres)s m"), { metres: Math.round(fix.accuracy) }));
  drawPosition(fix);
  await placeWaitingEncounters(fix);
  if (state.sinceBatch >= config.batchFixes) await flushFixes();
  else refreshCounts();
}

async function flushFixes() {
  const shift = state.shift;
  if (!shift) return;
  state.lastBatch = Date.now();
  state.sinceBatch = 0;
  const moved = await store.batchFixes(shift.local_id, config.maxFixesPerRequest);
  if (moved) sender.kick();
  await refreshCounts();
}

async function tick() {
  const shift = state.shift;
  if (shift && shift.status === "open") {
    renderElapsed();
    if (Date.now() - state.lastBatch >= config.batchSeconds * 1000) await flushFixes();
    if (Date.now() - state.zonesAt > 5 * 60 * 1000) loadZones(shift.team);
    ensureSetup();
  }
  sender.kick();
}

async function afterSent(item) {
  if (!state.shift || item.shift !== state.shift.local_id) return;
  state.shift = await store.getShift(item.shift);
  if (item.kind === "checkin") {
    ensureSetup();
    renderTraccar();
  } else if (item.kind === "fixes" && Date.now() - state.zonesAt > 60 * 1000) {
    loadZones(state.shift.team);
  } else if (item.kind === "checkout") {
    loadSummary();
  } else if (item.kind === "gpx") {
    renderGpxResults();
  }
}

/* --- Map and zones ------------------------------------------------------------------------ */

function initMap() {
  if (state.map || !window.L) return;
  const map = window.L.map("map", { zoomControl: true }).setView([48.8566, 2.3522], 13);
  window.L.tileLayer(config.tiles.url, { attribution: config.tiles.attribution, maxZoom: 19 }).addTo(map);
  const color = state.shift ? state.shift.color : "#0b5cad";
  state.layers.white = window.L.geoJSON(null, { style: { color: "#e85d04", weight: 1, fillColor: "#fca311", fillOpacity: 0.4 } }).addTo(map);
  state.layers.nearby = window.L.geoJSON(null, { style: { color: "#6a4c93", weight: 2, dashArray: "5 5", fillColor: "#6a4c93", fillOpacity: 0.15 } }).addTo(map);
  state.layers.assigned = window.L.geoJSON(null, { style: { color, weight: 3, fill: false } }).addTo(map);
  state.layers.track = window.L.polyline([], { color: "#0b5cad", weight: 4, opacity: 0.8 }).addTo(map);
  state.map = map;
}

function drawTrack() {
  const shift = state.shift;
  if (!state.map || !shift || !shift.last_fix) return;
  drawPosition(shift.last_fix);
}

function drawPosition(fix) {
  if (!state.map) return;
  const here = [fix.lat, fix.lon];
  if (!state.layers.me) {
    state.layers.accuracy = window.L.circle(here, { radius: fix.accuracy, weight: 1, color: "#0b5cad", fillOpacity: 0.12 }).addTo(state.map);
    state.layers.me = window.L.circleMarker(here, { radius: 9, color: "#fff", weight: 3, fillColor: "#0b5cad", fillOpacity: 1 }).addTo(state.map);
  } else {
    state.layers.me.setLatLng(here);
    state.layers.accuracy.setLatLng(here).setRadius(fix.accuracy);
  }
  state.layers.track.addLatLng(here);
  if (!state.fitted) {
    state.map.setView(here, 16);
    state.fitted = true;
  }
}

async function loadZones(teamId) {
  state.zonesAt = Date.now();
  let data = null;
  let fresh = false;
  try {
    const response = await fetch(`${config.urls.zones}?team=${teamId}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.ok) {
      data = await response.json();
      fresh = true;
      await store.setMeta(`zones:${teamId}`, data);
    }
  } catch (error) {
    /* offline: the last zones read */
  }
  if (!data) data = await store.getMeta(`zones:${teamId}`);
  renderZones(data, fresh);
}

function zoneItem(text, detail) {
  const li = document.createElement("li");
  const name = document.createElement("strong");
  name.textContent = text;
  li.append(name);
  if (detail) {
    const small = document.createElement("span");
    small.className = "zone-detail";
    small.textContent = detail;
    li.append(small);
  }
  return li;
}

function percent(ratio) {
  return percentage.format(ratio);
}

function renderZones(data, fresh) {
  const assigned = data ? data.assigned.features : [];
  const nearby = data ? data.nearby.features : [];
  for (const id of ["start-zones", "zones-assigned"]) {
    const list = $(id);
    if (!list) continue;
    list.replaceChildren();
    if (!data) list.append(zoneItem(gettext("Zones indisponibles hors ligne pour l'instant.")));
    else if (!assigned.length) list.append(zoneItem(gettext("Aucune zone affectée à l'équipe ce soir.")));
    for (const f of assigned) {
      const ratio = f.properties.white_ratio;
      list.append(
        zoneItem(f.properties.name, ratio > 0 ? fill(gettext("%(percent)s encore à parcourir ce soir"), { percent: percent(ratio) }) : gettext("parcourue ce soir ✓")),
      );
    }
  }
  const near = $("zones-nearby");
  near.replaceChildren();
  if (data && !nearby.length) near.append(zoneItem(gettext("Aucune zone blanche autour de votre dernière position.")));
  for (const f of nearby) {
    near.append(zoneItem(f.properties.name, fill(gettext("%(percent)s sans passage · %(reason)s"), { percent: percent(f.properties.white_ratio), reason: f.properties.reason })));
  }
  if (data) {
    const at = clock.format(new Date(data.generated_at));
    setText("zones-updated", fill(fresh ? gettext("Mis à jour à %(time)s.") : gettext("Hors ligne : état de %(time)s."), { time: at }));
  }
  if (state.map && data) {
    state.layers.assigned.clearLayers().addData(assigned.map((f) => ({ type: "Feature", geometry: f.geometry, properties: f.properties })));
    state.layers.white.clearLayers().addData(assigned.filter((f) => f.properties.white).map((f) => ({ type: "Feature", geometry: f.properties.white, properties: {} })));
    state.layers.nearby.clearLayers().addData(nearby.filter((f) => f.geometry));
    if (!state.fitted && assigned.length) {
      state.map.fitBounds(state.layers.assigned.getBounds(), { padding: [12, 12] });
      state.fitted = true;
    }
  }
}

/* --- Traccar Client ----------------------------------------------------------------------- */

async function ensureSetup() {
  const shift = state.shift;
  if (!shift || shift.setup || !shift.token || !shift.server_id || !navigator.onLine || state.settingUp) return;
  state.settingUp = true;
  try {
    const response = await sender.request("POST", config.urls.trackSetup, { shift: shift.server_id, tracker_token: shift.token });
    if (response.status === 200) {
      state.shift = await store.updateShift(shift.local_id, (s) => {
        s.setup = response.data;
      });
      renderTraccar();
    }
  } catch (error) {
    /* retried at the next tick */
  } finally {
    state.settingUp = false;
  }
}

function renderTraccar() {
  const shift = state.shift;
  const setup = shift && shift.setup;
  $("traccar-setup").hidden = !setup;
  $("traccar-wait").hidden = Boolean(setup);
  if (setup) {
    $("traccar-qr").innerHTML = setup.qr_svg; // made by the server (segno), from our own URL
    setText("traccar-url", setup.server_url);
    setText("traccar-id", setup.device_id);
  } else if (shift && shift.token_lost) {
    setText("traccar-wait", gettext("L'identifiant de suivi a été donné au téléphone qui a démarré cette maraude."));
  }
}

async function copy(id) {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
    toast(gettext("Copié."));
  } catch (error) {
    const range = document.createRange();
    range.selectNodeContents($(id));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    toast(gettext("Sélectionné : copiez-le avec le menu du téléphone."));
  }
}

/* --- GPX ---------------------------------------------------------------------------------- */

async function uploadGpx(event) {
  event.preventDefault();
  const input = $("gpx-file");
  const file = input.files && input.files[0];
  if (!file || !state.shift) return;
  await store.enqueue({ kind: "gpx", shift: state.shift.local_id, payload: { file, name: file.name } });
  input.value = "";
  toast(navigator.onLine ? gettext("Trace en cours d'envoi.") : gettext("Trace gardée : elle partira quand le réseau reviendra."));
  sender.kick();
  refreshCounts();
}

function renderGpxResults() {
  const list = $("gpx-results");
  list.replaceChildren();
  for (const text of (state.shift && state.shift.gpx_results) || []) {
    const li = document.createElement("li");
    li.textContent = text;
    list.append(li);
  }
}

/* --- Encounters --------------------------------------------------------------------------- */

function people() {
  return Number($("people").textContent) || 1;
}

function setPeople(n) {
  const value = Math.max(1, Math.min(config.maxPeople, n));
  $("people").textContent = String(value);
  $("people-minus").disabled = value <= 1;
  $("people-plus").disabled = value >= config.maxPeople;
}

function openEncounter() {
  $("encounter-form").reset();
  setPeople(1);
  const fix = state.lastFix || (state.shift && state.shift.last_fix);
  setText(
    "encounter-where",
    fix
      ? fill(gettext("Enregistrée à votre position actuelle (précision %(metres)s m)."), { metres: Math.round(fix.accuracy) })
      : gettext("Position GPS en attente : la rencontre sera placée au prochain point reçu."),
  );
  show("encounter");
}

async function saveEncounter(event) {
  event.preventDefault();
  const shift = state.shift;
  if (!shift) return;
  const form = $("encounter-form");
  const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  const payload = {
    client_id: uuid(),
    seen_at: new Date().toISOString(),
    people_count: people(),
    needs: checked("needs"),
    actions: checked("actions"),
    note: $("note").value.trim().slice(0, config.maxNote),
  };
  const fix = state.lastFix || shift.last_fix;
  if (fix && Date.now() - Date.parse(fix.t) < 10 * 60 * 1000) {
    payload.lon = fix.lon;
    payload.lat = fix.lat;
    await flushFixes(); // the fixes before it go first
    await store.enqueue({ kind: "encounter", shift: shift.local_id, payload });
  } else {
    const waiting = await store.getMeta("awaiting_position", []);
    waiting.push({ shift: shift.local_id, payload });
    await store.setMeta("awaiting_position", waiting);
  }
  state.shift = await store.updateShift(shift.local_id, (s) => {
    s.encounters = (s.encounters || 0) + 1;
    s.people = (s.people || 0) + payload.people_count;
  });
  show("shift");
  toast(navigator.onLine ? gettext("Rencontre enregistrée.") : gettext("Rencontre enregistrée sur le téléphone : elle partira quand le réseau reviendra."));
  await refreshCounts();
  sender.kick();
}

async function placeWaitingEncounters(fix) {
  const waiting = await store.getMeta("awaiting_position", []);
  if (!waiting.length) return;
  await flushFixes();
  for (const entry of waiting) {
    await store.enqueue({ kind: "encounter", shift: entry.shift, payload: { ...entry.payload, lon: fix.lon, lat: fix.lat } });
  }
  await store.setMeta("awaiting_position", []);
  sender.kick();
}

/* --- Check-out and summary ---------------------------------------------------------------- */

function figures(target, rows) {
  const dl = $(target);
  dl.replaceChildren();
  for (const [label, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
}

function encountersText(encounters, people) {
  return fill(gettext("%(encounters)s (%(people)s)"), { encounters, people: counted(ngettext("%(count)s personne", "%(count)s personnes", people), people) });
}

function localFigures(shift) {
  const end = shift.ended_at ? Date.parse(shift.ended_at) : Date.now();
  return [
    [gettext("Durée"), duration((end - Date.parse(shift.started_at)) / 1000)],
    [gettext("Distance"), distanceText(shift.distance_m || 0)],
    [gettext("Rencontres"), encountersText(shift.encounters || 0, shift.people || 0)],
  ];
}

function openEnd() {
  figures("end-figures", localFigures(state.shift));
  show("end");
}

async function confirmEnd() {
  const shift = state.shift;
  if (!shift) return;
  stopWatch();
  await state.chain;
  await flushFixes();
  const waiting = await store.getMeta("awaiting_position", []);
  const last = shift.last_fix;
  for (const entry of waiting.filter((e) => e.shift === shift.local_id)) {
    if (last) await store.enqueue({ kind: "encounter", shift: shift.local_id, payload: { ...entry.payload, lon: last.lon, lat: last.lat } });
    else await store.refuse({ kind: "encounter", shift: shift.local_id, payload: entry.payload, seq: -1 }, gettext("aucune position GPS pendant la maraude"));
  }
  await store.setMeta("awaiting_position", waiting.filter((e) => e.shift !== shift.local_id));
  const ended_at = new Date().toISOString();
  await store.enqueue({ kind: "checkout", shift: shift.local_id, payload: { ended_at } });
  state.shift = await store.updateShift(shift.local_id, (s) => {
    s.status = "ended";
    s.ended_at = ended_at;
  });
  showSummary();
  sender.kick();
}

function showSummary() {
  const shift = state.shift;
  show("summary");
  renderSummary(shift);
  if (shift.server_id && !shift.summary) loadSummary();
  refreshCounts();
}

function renderSummary(shift) {
  const rows = localFigures(shift);
  const summary = shift.summary;
  if (summary) {
    rows[1] = [gettext("Distance"), distanceText(summary.distance_m)];
    rows[2] = [gettext("Rencontres"), encountersText(summary.encounters, summary.people)];
    const names = summary.zones.map((z) => z.name);
    rows.push([gettext("Zones couvertes"), names.length ? names.join(", ") : gettext("aucune")]);
    setText(
      "summary-source",
      fill(gettext("Chiffres du serveur : %(fixes)s."), { fixes: counted(ngettext("%(count)s point GPS reçu", "%(count)s points GPS reçus", summary.fix_count), summary.fix_count) }),
    );
  } else {
    rows.push([gettext("Zones couvertes"), gettext("connues dès l'envoi")]);
    setText("summary-source", gettext("Chiffres du téléphone : le serveur les complètera dès que tout sera envoyé."));
  }
  figures("summary-figures", rows);
}

async function loadSummary() {
  const shift = state.shift;
  if (!shift || !shift.server_id) return;
  const counts = await store.counts();
  if (counts.total) return; // not everything is there yet
  try {
    const url = config.urls.summary.replace("/0/", `/${shift.server_id}/`);
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const summary = await response.json();
    state.shift = await store.updateShift(shift.local_id, (s) => {
      s.summary = summary;
    });
    if ($("app").dataset.screen === "summary") renderSummary(state.shift);
  } catch (error) {
    /* later */
  }
}

async function closeSummary() {
  await store.setMeta("current", null);
  state.shift = null;
  state.lastFix = null;
  state.lastKept = null;
  if (state.layers.track) state.layers.track.setLatLngs([]);
  showStart();
}

/* --- Start-up ----------------------------------------------------------------------------- */

function bind() {
  const on = (id, event, handler) => {
    const node = $(id);
    if (node) node.addEventListener(event, handler);
  };
  on("start", "click", startShift);
  on("resume-button", "click", resumeShift);
  on("open-encounter", "click", openEncounter);
  on("encounter-cancel", "click", () => show("shift"));
  on("encounter-form", "submit", saveEncounter);
  on("people-minus", "click", () => setPeople(people() - 1));
  on("people-plus", "click", () => setPeople(people() + 1));
  on("open-end", "click", openEnd);
  on("end-cancel", "click", () => show("shift"));
  on("end-confirm", "click", confirmEnd);
  on("summary-done", "click", closeSummary);
  on("gpx-form", "submit", uploadGpx);
  for (const radio of document.querySelectorAll('input[name="team"]')) {
    radio.addEventListener("change", () => {
      store.setMeta("team", Number(radio.value));
      loadZones(Number(radio.value));
      lookForOpenShift(Number(radio.value));
    });
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copy(button.dataset.copy));
  }
  window.addEventListener("online", onNetwork);
  window.addEventListener("offline", onNetwork);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden" && state.shift && state.shift.status === "open") flushFixes();
    else sender.kick();
  });
}

async function init() {
  bind();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(config.urls.sw, { scope: config.urls.app }).catch(() => {});
  }
  onNetwork();
  const current = await store.getMeta("current");
  state.shift = await store.getShift(current);
  if (state.shift && state.shift.status === "open") {
    // A reload must not count again the fix the watch gives back first.
    state.lastFix = state.shift.last_fix || null;
    state.lastKept = state.shift.last_kept || null;
    enterShift();
  } else if (state.shift && state.shift.status === "ended") {
    showSummary();
  } else if ($("start")) {
    showStart();
  } else {
    show("start");
  }
  await refreshCounts();
  setInterval(tick, 5000);
  sender.kick();
}

init().catch((error) => {
  console.error(error);
  showBanner(fill(gettext("L'application n'a pas pu démarrer : %(error)s"), { error }));
});

/* The coordinator's live map (/carte/).
 *
 * Loads as "subscribe, fetch, apply" (DESIGN.md, "Live updates"): the websocket /ws/live/ is
 * opened first and its events are buffered while the layers are fetched; then the buffered
 * events are applied in `seq` order. Every event carries a `seq`: one already applied is
 * dropped, and a reconnection asks for what it missed with `?since=<highest seq seen>`.
 *
 * Events are not dropped for being numbered below the socket's hello or below the last one
 * applied: transactions commit in another order than their numbers, so the server may forward
 * a lower-numbered event late (api/consumers.py). Handlers are idempotent instead (keyed by
 * id, or by time for positions): an event that a fetch already reflects does no harm when it
 * is applied again.
 *
 * Without the socket the page still works (fetched layers, assignments through the API) and
 * says "déconnecté" while it keeps retrying with a growing delay.
 *
 * Text from the server (names of zones and teams) goes through textContent or esc(), never
 * straight into innerHTML.
 *
 * Words are French, translated by gettext(), ngettext() and interpolate() from the page's
 * JavaScript catalog (/i18n/js/<lang>/, loaded before this file; locale/en/LC_MESSAGES/djangojs.po).
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const TZ = config.timeZone; // settings.TIME_ZONE: service days are Paris nights
  const STALENESS_COLORS = {
    tonight: "#1a9850",
    "3_days": "#91cf60",
    "7_days": "#fee08b",
    "28_days": "#fc8d59",
    not_28_days: "#d73027",
  };
  const ENCOUNTER_COLOR = "#5e3c99";
  const CONFLICT_COLOR = "#b00020";
  const RETRY_MAX_S = 30;
  const HELLO_WAIT_MS = 4000;
  const COVERAGE_REFRESH_MS = 15000;
  const WHITE_LIST_SHORT = 10;
  const LEGEND_KEY = "maraudes.carte.legende";

  // Dates and numbers in the page's language (British English: a 24-hour clock, day first).
  const LOCALE = { fr: "fr-FR", en: "en-GB" }[document.documentElement.lang] || "fr-FR";
  const fmtTime = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", timeZone: TZ });
  const fmtDay = new Intl.DateTimeFormat(LOCALE, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
  const fmtIsoDay = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: TZ });
  const fmtNumber = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 });
  const fmtPercent = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 0 });

  const state = {
    map: null,
    layers: {},
    canvas: null,
    // The live feed.
    socket: null,
    seq: null, // highest seq seen (the hello's before any event): what `since` asks from
    seen: new Set(), // seqs applied, to drop the doubles of a replay
    retry: 0,
    retryAt: null,
    retryTimer: null,
    connState: "connecting",
    stopped: false,
    lastMessageAt: 0,
    socketFailedOnce: false,
    helloTimedOut: false,
    // Fetches in flight during which events are buffered; 1 until the first load is done,
    // so that nothing is applied to layers that do not exist yet.
    loading: 1,
    buffer: [],
    loadedOnce: false,
    firstLoadStarted: false,
    refetchOnHello: false, // layers fetched without a hello's baseline
    // What the map shows.
    window: { from: config.window.from, to: config.window.to },
    kind: config.kind,
    night: config.today,
    // Open shift id -> the team out on it. By shift, not by team: a shift left open and a new
    // one of the same team are two places, and a trail must not jump from one to the other.
    teams: new Map(),
    zones: new Map(), // zone id -> {id, code, name, layer}
    assignments: new Map(), // assignment id -> assignment of state.night
    encounters: new Map(), // encounter id -> {layer, people}
    white: [], // white-zone features of the window, by priority
    whiteLayers: new Map(), // zone id -> white layer
    conflicts: null,
    showAllWhite: false,
    popupZone: null,
    coverageTimer: null,
  };
  const teamInfo = new Map(config.teams.map((t) => [t.id, t]));

  // --- Small helpers ------------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  /** h("li", {class: "x", onclick: f}, "text", child…): a DOM element, text as text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "style") el.style.cssText = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function swatch(color) {
    return h("span", { class: "swatch", style: `background:${color}`, "aria-hidden": "true" });
  }

  /** A service day (YYYY-MM-DD) as "jeu. 26 nov.". */
  function dayLabel(iso) {
    return fmtDay.format(new Date(iso + "T12:00:00Z"));
  }

  function addDays(iso, n) {
    const d = new Date(iso + "T12:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  /** Tonight's service day: the Paris date of now minus DAY_START (06:00). Off by an hour
   * on the two nights of a clock change, which a planning screen can live with. */
  function serviceDayNow() {
    return fmtIsoDay.format(new Date(Date.now() - config.dayStartMinutes * 60 * 1000));
  }

  /** "%(name)s" filled from `values`: interpolate() with named placeholders. */
  function fill(format, values) {
    return interpolate(format, values, true);
  }

  function ageText(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return fill(gettext("il y a %(seconds)s s"), { seconds: s });
    const m = Math.round(s / 60);
    if (m < 60) return fill(gettext("il y a %(minutes)s min"), { minutes: m });
    const hrs = Math.floor(m / 60);
    return fill(gettext("il y a %(hours)s h %(minutes)s"), { hours: hrs, minutes: String(m % 60).padStart(2, "0") });
  }

  function ageClass(ms) {
    const s = (Date.now() - ms) / 1000;
    return s < 120 ? "fresh" : s < 600 ? "late" : "stale";
  }

  function hectares(m2) {
    return fmtNumber.format(m2 / 10000) + " ha";
  }

  function percent(ratio) {
    return fmtPercent.format(ratio);
  }

  function notice(text) {
    const el = $("notice");
    el.textContent = text || "";
    el.hidden = !text;
  }

  class HttpError extends Error {
    constructor(status, body) {
      super(`HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  /** The first message of a DRF error body: {"field": ["…"]} or {"detail": "…"}. */
  function errorText(err) {
    const body = err && err.body;
    if (body && typeof body === "object") {
      if (typeof body.detail === "string") return body.detail;
      const parts = [];
      for (const messages of Object.values(body)) parts.push(...[].concat(messages));
      if (parts.length) return parts.join(" ");
    }
    if (err && err.status) return fill(gettext("Erreur %(status)s du serveur."), { status: err.status });
    return gettext("Le serveur ne répond pas : vérifiez la connexion.");
  }

  async function api(method, url, { params, body } = {}) {
    const target = new URL(url, window.location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") target.searchParams.set(key, value);
    }
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = config.csrfToken;
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(target, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new HttpError(response.status, data);
    return data;
  }

  // --- Connection state ---------------------------------------------------------------------

  const CONN_TEXT = {
    connecting: () => gettext("Connexion au direct…"),
    live: () => gettext("En direct"),
    offline: () => {
      const s = state.retryAt ? Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000)) : 0;
      return s > 0 ? fill(gettext("Déconnecté · nouvel essai dans %(seconds)s s"), { seconds: s }) : gettext("Déconnecté · nouvel essai…");
    },
    auth: () => gettext("Déconnecté · session expirée"),
    forbidden: () => gettext("Déconnecté · direct refusé pour ce compte"),
  };

  function setConn(name) {
    state.connState = name;
    renderConn();
  }

  function renderConn() {
    const el = $("conn");
    el.dataset.state = state.connState;
    const text = el.querySelector(".conn-text");
    text.textContent = CONN_TEXT[state.connState]();
    if (state.connState === "auth") {
      text.append(" · ", h("a", { href: config.loginUrl }, gettext("se reconnecter")));
    }
  }

  // --- The live feed: subscribe… ----------------------------------------------------------

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const since = state.seq !== null ? `?since=${state.seq}` : "";
    return `${scheme}://${window.location.host}${config.ws}${since}`;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    state.retryAt = null;
    if (state.stopped) return;
    setConn("connecting");
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (e) {
      onSocketClosed(null, { code: 1006 });
      return;
    }
    state.socket = socket;
    socket.onmessage = (e) => {
      if (state.socket !== socket) return;
      let message;
      try {
        message = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      onMessage(message);
    };
    socket.onclose = (e) => onSocketClosed(socket, e);
  }

  function onSocketClosed(socket, event) {
    if (socket && state.socket !== socket) return; // an older socket we replaced
    state.socket = null;
    state.socketFailedOnce = true;
    maybeFirstLoad(); // the page works without the live feed
    if (event.code === 4401) {
      setConn("auth");
      scheduleReconnect(60); // the session may come back from another tab
      return;
    }
    if (event.code === 4403) {
      state.stopped = true;
      setConn("forbidden");
      return;
    }
    if (event.code === 4400) {
      // `since` refused: start over from a fresh hello and refetch the layers.
      state.seq = null;
      state.refetchOnHello = state.firstLoadStarted;
      state.retry = 0;
      scheduleReconnect(0);
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect(delayS) {
    if (state.stopped) return;
    if (delayS === undefined) {
      // 1, 2, 4, 8… 30 s, with jitter so that a restarted server is not hit all at once.
      delayS = Math.min(RETRY_MAX_S, 2 ** state.retry) * (0.8 + Math.random() * 0.4);
      state.retry += 1;
    }
    if (state.connState !== "auth") setConn("offline");
    state.retryAt = Date.now() + delayS * 1000;
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, delayS * 1000);
  }

  function reconnectNow() {
    if (state.stopped || state.socket) return;
    state.retry = 0;
    connect();
  }

  function onMessage(message) {
    state.lastMessageAt = Date.now();
    if (message.type === "hello") return onHello(message);
    if (message.type === "reload") return window.location.reload();
    if (typeof message.seq !== "number") return;
    if (state.loading > 0) state.buffer.push(message);
    else apply(message);
  }

  function onHello(message) {
    state.retry = 0;
    setConn("live");
    if (state.seq === null) {
      state.seq = message.seq;
      if (state.refetchOnHello) {
        // The layers were fetched while the feed was down: what happened between that fetch
        // and this hello was never sent to us, so fetch them again (events buffered).
        state.refetchOnHello = false;
        reloadLayers();
      } else maybeFirstLoad();
    } else if (message.seq < state.seq) {
      window.location.reload(); // the server's events were reset behind our back
    }
    // Otherwise the events we missed follow, in order.
  }

  function apply(event) {
    if (state.seen.has(event.seq)) return; // applied already
    state.seen.add(event.seq);
    if (state.seq === null || event.seq > state.seq) state.seq = event.seq;
    if (state.seen.size > 20000) {
      // Only recent numbers can come twice: forget the old ones.
      for (const seq of state.seen) if (seq < state.seq - 10000) state.seen.delete(seq);
    }
    const handler = HANDLERS[event.type];
    if (handler) {
      try {
        handler(event);
      } catch (err) {
        console.error("event", event, err); // one bad event must not stop the feed
      }
    }
  }

  /** Fetch while buffering the live events; apply the buffer when done (…fetch, apply). */
  async function buffered(work) {
    state.loading += 1;
    try {
      return await work();
    } finally {
      release();
    }
  }

  function release() {
    state.loading -= 1;
    if (state.loading === 0) {
      const events = state.buffer.sort((a, b) => a.seq - b.seq);
      state.buffer = [];
      events.forEach(apply);
    }
  }

  // --- …fetch… ----------------------------------------------------------------------------

  function maybeFirstLoad() {
    if (!state.map || state.loadedOnce || state.firstLoadStarted) return;
    if (state.seq === null && !state.socketFailedOnce && !state.helloTimedOut) return;
    state.firstLoadStarted = true;
    state.refetchOnHello = state.seq === null;
    reloadLayers().then(() => {
      state.loadedOnce = true;
      fitToZones();
      release(); // the hold of the first load: apply what arrived meanwhile
    });
  }

  function reloadLayers() {
    return buffered(() =>
      Promise.allSettled([
        report(loadZones(), gettext("les zones")),
        report(loadCoverage(), gettext("les zones blanches")),
        report(loadEncounters(), gettext("les rencontres")),
        report(loadTeams(), gettext("les équipes en maraude")),
        report(loadAssignments(), gettext("les affectations")),
      ]),
    ).then(() => {
      restyleZones();
      loadConflicts();
    });
  }

  async function report(promise, what) {
    try {
      return await promise;
    } catch (err) {
      if (err instanceof HttpError && (err.status === 401 || err.status === 403)) {
        notice(gettext("Votre session a expiré : rechargez la page pour vous reconnecter."));
      } else {
        notice(fill(gettext("Impossible de charger %(what)s : %(error)s"), { what, error: errorText(err) }));
      }
      throw err;
    }
  }

  async function loadZones() {
    const collection = await api("GET", config.api.zones, { params: { kind: state.kind } });
    state.layers.zones.clearLayers();
    state.zones.clear();
    const layer = L.geoJSON(collection, {
      pane: "zones",
      className: "zone",
      style: { color: "#14213d", weight: 1, opacity: 0.55, fillOpacity: 0 },
      onEachFeature: (feature, featureLayer) => {
        const p = feature.properties;
        state.zones.set(feature.id, { id: feature.id, code: p.code, name: p.name, layer: featureLayer });
        featureLayer.bindTooltip(`${esc(p.name)} <small>${esc(p.code)}</small>`, { sticky: true, direction: "top" });
        featureLayer.on("click", (e) => openZonePopup(feature.id, e.latlng));
      },
    });
    layer.addTo(state.layers.zones);
    for (const zone of state.zones.values()) {
      const el = zone.layer.getElement();
      if (el) {
        el.dataset.zone = zone.id;
        el.dataset.zoneCode = zone.code;
      }
    }
  }

  async function loadCoverage() {
    const [staleness, white] = await Promise.all([
      api("GET", config.api.staleness, { params: { day: state.window.to, kind: state.kind } }),
      api("GET", config.api.whiteZones, { params: { from: state.window.from, to: state.window.to, kind: state.kind } }),
    ]);
    state.layers.staleness.clearLayers();
    L.geoJSON(staleness, {
      pane: "staleness",
      interactive: false,
      style: (f) => ({ stroke: false, fillColor: STALENESS_COLORS[f.properties.staleness] || "#999", fillOpacity: 0.5 }),
    }).addTo(state.layers.staleness);

    state.layers.white.clearLayers();
    state.whiteLayers.clear();
    state.white = white.features;
    L.geoJSON(
      { type: "FeatureCollection", features: white.features.filter((f) => f.geometry) },
      {
        pane: "white",
        interactive: false,
        className: "white-zone",
        style: { color: "#14213d", weight: 1.2, opacity: 0.8, dashArray: "4 3", fillOpacity: 1 },
        onEachFeature: (feature, featureLayer) => state.whiteLayers.set(feature.id, featureLayer),
      },
    ).addTo(state.layers.white);
    state.coverageLoadedAt = Date.now();
    renderWhiteList();
  }

  async function loadEncounters() {
    const collection = await api("GET", config.api.encounters, { params: { from: state.window.from, to: state.window.to } });
    state.layers.encounters.clearLayers();
    state.encounters.clear();
    // Oldest first, so that the latest are drawn on top.
    for (const f of collection.features.slice().reverse()) {
      const [lon, lat] = f.geometry.coordinates;
      addEncounter(f.id, lat, lon, f.properties.people_count);
    }
    state.encountersTruncated = collection.truncated;
    renderWindowSummary();
  }

  function addEncounter(id, lat, lon, people) {
    if (state.encounters.has(id)) return;
    const marker = L.circleMarker([lat, lon], {
      renderer: state.canvas,
      interactive: false,
      radius: 3 + Math.min(people, 6),
      color: "#ffffff",
      weight: 1,
      fillColor: ENCOUNTER_COLOR,
      fillOpacity: 0.8,
    });
    state.layers.encounters.addLayer(marker);
    state.encounters.set(id, { layer: marker, people });
  }

  async function loadTeams() {
    const teams = await api("GET", config.api.liveTeams);
    for (const team of state.teams.values()) removeTeamLayers(team);
    state.teams.clear();
    for (const t of teams) {
      const team = upsertTeam(t);
      if (t.last_fix) {
        const times = t.trail_times || [];
        const coords = t.trail ? t.trail.coordinates : [];
        team.trailPoints = coords.map(([lon, lat], i) => [lat, lon, times[i] * 1000]);
        setLastFix(team, Date.parse(t.last_fix.t), t.last_fix.lat, t.last_fix.lon, t.last_fix.accuracy);
      }
    }
    renderTeams();
  }

  async function loadAssignments() {
    const night = state.night;
    const list = await api("GET", config.api.assignments, { params: { day: night, kind: state.kind } });
    if (night !== state.night) return; // the night changed meanwhile
    state.assignments.clear();
    for (const a of list) state.assignments.set(a.id, a);
    restyleZones();
    renderAssignments();
  }

  let conflictsTimer = null;
  function loadConflictsSoon() {
    clearTimeout(conflictsTimer);
    conflictsTimer = setTimeout(loadConflicts, 300);
  }

  async function loadConflicts() {
    const night = state.night;
    try {
      const conflicts = await api("GET", config.api.conflicts, { params: { day: night, kind: state.kind } });
      if (night !== state.night) return;
      state.conflicts = conflicts;
    } catch (err) {
      state.conflicts = null;
    }
    restyleZones();
    renderConflicts();
    renderWhiteList();
  }

  // --- …apply: the live events ----------------------------------------------------------

  const HANDLERS = {
    shift_started(e) {
      upsertTeam({ team: e.team, team_name: e.team_name, color: e.color, shift: e.shift, started_at: e.started_at });
      renderTeams();
    },
    shift_ended(e) {
      const team = state.teams.get(e.shift);
      if (team) {
        removeTeamLayers(team);
        state.teams.delete(e.shift);
        renderTeams();
      }
    },
    position(e) {
      let team = state.teams.get(e.shift);
      if (!team) {
        const info = teamInfo.get(e.team) || {};
        team = upsertTeam({ team: e.team, team_name: info.name || fill(gettext("Équipe %(id)s"), { id: e.team }), color: info.color || "#555555", shift: e.shift });
      }
      const t = Date.parse(e.t);
      if (team.lastFix && t <= team.lastFix.t) return; // an older fix arriving late
      setLastFix(team, t, e.lat, e.lon, e.accuracy);
      renderTeamsSoon();
    },
    encounter_created(e) {
      // A new encounter belongs to tonight: shown when the window reaches tonight.
      if (state.window.to < serviceDayNow()) return;
      addEncounter(e.encounter, e.lat, e.lon, e.people_count);
      renderWindowSummary();
    },
    coverage_changed(e) {
      const touches = (e.zones || []).some((z) => z.day >= state.window.from && z.day <= state.window.to);
      if (touches) refreshCoverageSoon();
    },
    assignment_changed(e) {
      if (e.day !== state.night) return;
      if (e.action === "deleted") state.assignments.delete(e.id);
      else state.assignments.set(e.id, stripEvent(e));
      assignmentsChanged(e.zone);
    },
  };

  function stripEvent(e) {
    const { seq, type, action, ...data } = e;
    return data;
  }

  /** White zones shrink as teams walk: refetch the coverage layers at most every 15 s. */
  function refreshCoverageSoon() {
    if (state.coverageTimer) return;
    const wait = Math.max(0, COVERAGE_REFRESH_MS - (Date.now() - (state.coverageLoadedAt || 0)));
    state.coverageTimer = setTimeout(() => {
      state.coverageTimer = null;
      report(loadCoverage(), gettext("les zones blanches")).then(loadConflicts, () => {});
    }, wait);
  }

  // --- Teams ------------------------------------------------------------------------------

  function upsertTeam(t) {
    let team = state.teams.get(t.shift);
    if (!team) {
      team = { id: t.team, trailPoints: [], lastFix: null, marker: null, trail: null };
      state.teams.set(t.shift, team);
    }
    team.name = t.team_name || team.name;
    team.color = t.color || team.color;
    team.shift = t.shift;
    team.startedAt = t.started_at ? Date.parse(t.started_at) : team.startedAt;
    return team;
  }

  function initials(name) {
    const words = name.split(/\s+/).filter(Boolean);
    const letters = words.map((w) => (/^\d/.test(w) ? w : w[0])).join("");
    return letters.slice(0, 3).toUpperCase();
  }

  function setLastFix(team, t, lat, lon, accuracy) {
    team.lastFix = { t, lat, lon, accuracy };
    const points = team.trailPoints;
    const last = points[points.length - 1];
    if (!last || last[2] < t) points.push([lat, lon, t]);
    const since = t - config.trailMinutes * 60 * 1000;
    while (points.length && points[0][2] < since) points.shift();
    const latlngs = points.map((p) => [p[0], p[1]]);
    if (!team.trail) {
      team.trail = L.polyline(latlngs, { pane: "trails", color: team.color, weight: 3, opacity: 0.75, interactive: false });
      state.layers.teams.addLayer(team.trail);
    } else {
      team.trail.setLatLngs(latlngs);
    }
    if (!team.marker) {
      team.marker = L.marker([lat, lon], {
        icon: L.divIcon({
          className: "team-marker",
          html: `<span style="background:${esc(team.color)}">${esc(initials(team.name))}</span>`,
          iconSize: [30, 30],
          iconAnchor: [15, 15],
        }),
        keyboard: false,
        riseOnHover: true,
      });
      team.marker.bindTooltip("", { direction: "top", offset: [0, -14] });
      state.layers.teams.addLayer(team.marker);
      const el = team.marker.getElement();
      if (el) Object.assign(el.dataset, { team: team.id, shift: team.shift });
    } else {
      team.marker.setLatLng([lat, lon]);
    }
    updateTeamMarker(team);
  }

  function updateTeamMarker(team) {
    if (!team.marker) return;
    const el = team.marker.getElement();
    if (el) {
      el.classList.remove("fresh", "late", "stale");
      el.classList.add(ageClass(team.lastFix.t));
      el.dataset.lat = team.lastFix.lat;
      el.dataset.lon = team.lastFix.lon;
    }
    team.marker.setTooltipContent(`<strong>${esc(team.name)}</strong><br>${esc(fill(gettext("dernier point %(age)s"), { age: ageText(team.lastFix.t) }))}`);
  }

  function removeTeamLayers(team) {
    if (team.marker) state.layers.teams.removeLayer(team.marker);
    if (team.trail) state.layers.teams.removeLayer(team.trail);
  }

  let teamsTimer = null;
  function renderTeamsSoon() {
    if (!teamsTimer) teamsTimer = setTimeout(() => ((teamsTimer = null), renderTeams()), 500);
  }

  function renderTeams() {
    const list = $("teams-list");
    const teams = [...state.teams.values()].sort((a, b) => a.name.localeCompare(b.name, "fr"));
    $("teams-count").textContent = teams.length;
    $("teams-empty").hidden = teams.length > 0;
    list.replaceChildren(
      ...teams.map((team) =>
        h(
          "li",
          { dataset: { team: team.id, shift: team.shift } },
          h(
            "button",
            {
              type: "button",
              class: "team-item",
              disabled: !team.lastFix,
              onclick: () => team.lastFix && state.map.setView([team.lastFix.lat, team.lastFix.lon], Math.max(state.map.getZoom(), 15)),
            },
            swatch(team.color),
            h(
              "span",
              { class: "team-name" },
              team.name,
              team.startedAt ? h("small", { class: "team-since" }, " ", fill(gettext("depuis %(time)s"), { time: fmtTime.format(new Date(team.startedAt)) })) : null,
            ),
            h(
              "span",
              { class: `team-age ${team.lastFix ? ageClass(team.lastFix.t) : "none"}` },
              team.lastFix ? fill(gettext("dernier point %(age)s"), { age: ageText(team.lastFix.t) }) : gettext("pas encore de position"),
            ),
          ),
        ),
      ),
    );
  }

  // --- Zones and assignments ----------------------------------------------------------------

  function assignmentsOfZone(zoneId) {
    return [...state.assignments.values()].filter((a) => a.zone === zoneId).sort((a, b) => a.team_name.localeCompare(b.team_name, "fr"));
  }

  function conflictZoneSets() {
    const c = state.conflicts;
    const sets = { double: new Set(), far: new Set(), priority: new Map() };
    if (!c || c.day !== state.night) return sets;
    c.double_booked.forEach((d) => sets.double.add(d.zone));
    c.far_apart.forEach((f) => f.zones.forEach((z) => sets.far.add(z.zone)));
    c.uncovered_priorities.forEach((u) => sets.priority.set(u.zone, u));
    return sets;
  }

  function restyleZones() {
    const sets = conflictZoneSets();
    for (const zone of state.zones.values()) {
      const assigned = assignmentsOfZone(zone.id);
      let style = { color: "#14213d", weight: 1, opacity: 0.55, fillColor: "#14213d", fillOpacity: 0, dashArray: null };
      if (assigned.length === 1) {
        style = { color: assigned[0].color, weight: 4, opacity: 1, fillColor: assigned[0].color, fillOpacity: 0.3, dashArray: null };
      } else if (assigned.length > 1) {
        style = { color: CONFLICT_COLOR, weight: 5, opacity: 1, fillColor: assigned[0].color, fillOpacity: 0.3, dashArray: "10 6" };
      }
      zone.layer.setStyle(style);
      const el = zone.layer.getElement();
      if (el) {
        el.classList.toggle("is-assigned", assigned.length > 0);
        el.classList.toggle("is-double", sets.double.has(zone.id));
        el.classList.toggle("is-far", sets.far.has(zone.id));
        el.classList.toggle("is-priority-free", sets.priority.has(zone.id));
        el.dataset.teams = assigned.map((a) => a.team).join(",");
      }
    }
    drawFlags(sets);
  }

  /** Badges and lines over the map for what the conflicts list says. */
  function drawFlags(sets) {
    const flags = state.layers.flags;
    flags.clearLayers();
    const c = state.conflicts;
    if (!c || c.day !== state.night) return;
    const centre = (zoneId) => {
      const zone = state.zones.get(zoneId);
      return zone ? zone.layer.getBounds().getCenter() : null;
    };
    const badge = (latlng, cls, text, title) =>
      L.marker(latlng, {
        pane: "flags",
        interactive: false,
        keyboard: false,
        icon: L.divIcon({ className: `flag ${cls}`, html: `<span title="${esc(title)}">${esc(text)}</span>`, iconSize: null }),
      }).addTo(flags);
    for (const d of c.double_booked) {
      const at = centre(d.zone);
      if (at) badge(at, "flag-double", fill(ngettext("%(count)s équipe", "%(count)s équipes", d.teams.length), { count: d.teams.length }), d.message);
    }
    for (const u of c.uncovered_priorities) {
      const at = centre(u.zone);
      if (at) badge(at, "flag-priority", fill(gettext("! n° %(rank)s"), { rank: u.rank }), u.message);
    }
    for (const f of c.far_apart) {
      const a = centre(f.zones[0].zone);
      const b = centre(f.zones[1].zone);
      if (!a || !b) continue;
      L.polyline([a, b], { pane: "flags", color: f.color, weight: 3, dashArray: "2 8", lineCap: "round", interactive: false }).addTo(flags);
      badge(L.latLng((a.lat + b.lat) / 2, (a.lng + b.lng) / 2), "flag-far", `${fmtNumber.format(f.distance_m / 1000)} km`, f.message);
    }
  }

  function assignmentsChanged(zoneId) {
    restyleZones();
    renderAssignments();
    renderWhiteList();
    if (state.popupZone === zoneId) refreshPopup();
    loadConflictsSoon();
  }

  function nightIsPast() {
    return state.night < serviceDayNow();
  }

  async function assign(zoneId, teamId, errorEl, button) {
    errorEl.hidden = true;
    button.disabled = true;
    try {
      const created = await api("POST", config.api.assignments, { body: { zone: zoneId, team: teamId, day: state.night } });
      if (created.day === state.night) state.assignments.set(created.id, created);
      assignmentsChanged(zoneId);
    } catch (err) {
      errorEl.textContent = errorText(err);
      errorEl.hidden = false;
      button.disabled = false;
    }
  }

  async function unassign(assignment, errorEl) {
    try {
      await api("DELETE", `${config.api.assignments}${assignment.id}/`);
    } catch (err) {
      if (!(err instanceof HttpError && err.status === 404)) {
        const text = errorText(err);
        if (errorEl) {
          errorEl.textContent = text;
          errorEl.hidden = false;
        } else notice(text);
        return;
      }
    }
    state.assignments.delete(assignment.id);
    assignmentsChanged(assignment.zone);
  }

  function whiteOf(zoneId) {
    return state.white.find((f) => f.id === zoneId);
  }

  function popupContent(zoneId) {
    const zone = state.zones.get(zoneId);
    const white = whiteOf(zoneId);
    const assigned = assignmentsOfZone(zoneId);
    const error = h("p", { class: "error popup-error", role: "alert", hidden: true });
    const facts = [];
    if (white) {
      const p = white.properties;
      facts.push(fill(gettext("Blanc sur la période : %(percent)s (%(area)s)"), { percent: percent(p.white_ratio), area: hectares(p.white_m2) }));
      facts.push(p.last_visit ? fill(gettext("dernier passage : %(day)s"), { day: dayLabel(p.last_visit) }) : gettext("jamais visitée"));
    } else {
      facts.push(gettext("Entièrement couverte sur la période"));
    }
    const taken = new Set(assigned.map((a) => a.team));
    const choices = config.teams.filter((t) => !taken.has(t.id));
    let form = null;
    if (nightIsPast()) {
      form = h("p", { class: "muted" }, gettext("Nuit passée : les affectations ne changent plus."));
    } else if (choices.length) {
      const select = h(
        "select",
        { name: "team", "aria-label": gettext("Équipe"), required: true },
        choices.map((t) => h("option", { value: t.id }, `${t.name} · ${t.organization}`)),
      );
      const button = h("button", { type: "submit", class: "primary" }, gettext("Affecter"));
      form = h(
        "form",
        {
          class: "assign-form",
          onsubmit: (e) => {
            e.preventDefault();
            assign(zoneId, Number(select.value), error, button);
          },
        },
        h("label", {}, gettext("Équipe"), " ", select),
        button,
      );
    }
    return h(
      "div",
      { class: "zone-popup-body", dataset: { zone: zoneId } },
      h("h3", {}, zone.name, " ", h("small", {}, zone.code)),
      h("p", { class: "muted" }, facts.join(" · ")),
      h("p", { class: "popup-night" }, h("strong", {}, fill(gettext("Nuit du %(day)s"), { day: dayLabel(state.night) }))),
      assigned.length
        ? h(
            "ul",
            { class: "popup-teams" },
            assigned.map((a) =>
              h(
                "li",
                {},
                swatch(a.color),
                h("span", {}, a.team_name),
                nightIsPast()
                  ? null
                  : h("button", { type: "button", class: "link remove", "aria-label": fill(gettext("Retirer %(team)s"), { team: a.team_name }), onclick: () => unassign(a, error) }, gettext("retirer")),
              ),
            ),
          )
        : h("p", { class: "muted" }, gettext("Aucune équipe cette nuit.")),
      form,
      error,
    );
  }

  function openZonePopup(zoneId, latlng) {
    const zone = state.zones.get(zoneId);
    if (!zone) return;
    state.popupZone = zoneId;
    state.popup = L.popup({ maxWidth: 360, minWidth: 260, className: "zone-popup", autoPanPadding: [20, 20] })
      .setLatLng(latlng || zone.layer.getBounds().getCenter())
      .setContent(popupContent(zoneId))
      .openOn(state.map);
    const select = state.popup.getElement() && state.popup.getElement().querySelector("select");
    if (select) select.focus({ preventScroll: true });
  }

  function refreshPopup() {
    if (state.popup && state.map.hasLayer(state.popup) && state.popupZone !== null) {
      state.popup.setContent(popupContent(state.popupZone));
    }
  }

  function renderAssignments() {
    const byTeam = new Map();
    for (const a of state.assignments.values()) {
      if (!byTeam.has(a.team)) byTeam.set(a.team, { name: a.team_name, color: a.color, zones: [] });
      byTeam.get(a.team).zones.push(a);
    }
    const teams = [...byTeam.values()].sort((a, b) => a.name.localeCompare(b.name, "fr"));
    const list = $("assignments-list");
    if (!teams.length) {
      list.replaceChildren(h("li", { class: "muted" }, fill(gettext("Aucune zone affectée pour la nuit du %(day)s"), { day: dayLabel(state.night) })));
      return;
    }
    const past = nightIsPast();
    list.replaceChildren(
      ...teams.map((team) =>
        h(
          "li",
          { class: "assign-team" },
          h("span", { class: "assign-team-name" }, swatch(team.color), team.name),
          h(
            "span",
            { class: "chips" },
            team.zones
              .sort((a, b) => a.zone_code.localeCompare(b.zone_code, "fr"))
              .map((a) =>
                h(
                  "span",
                  { class: "chip", dataset: { assignment: a.id } },
                  h("button", { type: "button", class: "link chip-zone", title: a.zone_name, onclick: () => zoomToZone(a.zone, true) }, a.zone_name.replace(/^Secteur /, "")),
                  past ? null : h("button", { type: "button", class: "chip-remove", "aria-label": fill(gettext("Retirer %(zone)s à %(team)s"), { zone: a.zone_name, team: a.team_name }), onclick: () => unassign(a) }, "×"),
                ),
              ),
          ),
        ),
      ),
    );
  }

  function renderConflicts() {
    const box = $("conflicts");
    const c = state.conflicts;
    if (!c || c.day !== state.night) {
      box.replaceChildren();
      return;
    }
    const items = [
      ...c.double_booked.map((d) => ({ cls: "conflict-double", zone: d.zone, text: d.message })),
      ...c.far_apart.map((f) => ({ cls: "conflict-far", zone: f.zones[0].zone, text: f.message })),
      ...c.uncovered_priorities.map((u) => ({ cls: "conflict-priority", zone: u.zone, text: u.message })),
    ];
    if (!items.length) {
      box.replaceChildren(h("p", { class: "ok" }, gettext("Rien à signaler pour cette nuit.")));
      return;
    }
    box.replaceChildren(
      h("h3", {}, fill(gettext("À vérifier (%(count)s)"), { count: items.length })),
      h(
        "ul",
        { class: "conflicts-list" },
        items.map((item) =>
          h("li", { class: `conflict ${item.cls}` }, h("button", { type: "button", class: "link", onclick: () => zoomToZone(item.zone, true) }, item.text)),
        ),
      ),
    );
  }

  function zoomToZone(zoneId, openPopup) {
    const zone = state.zones.get(zoneId);
    const white = state.whiteLayers.get(zoneId);
    const target = white || (zone && zone.layer);
    if (!target) return;
    state.map.fitBounds(target.getBounds(), { padding: [40, 40], maxZoom: 16 });
    if (white && white.getElement()) {
      const el = white.getElement();
      el.classList.remove("flash");
      void el.getBoundingClientRect();
      el.classList.add("flash");
    }
    if (openPopup && zone) openZonePopup(zoneId);
  }

  // --- White zones ranked by priority ------------------------------------------------------

  function renderWhiteList() {
    const list = $("white-list");
    const features = state.white;
    $("white-count").textContent = features.length;
    const shown = state.showAllWhite ? features : features.slice(0, WHITE_LIST_SHORT);
    const tonight = state.night;
    list.replaceChildren(
      ...shown.map((f, i) => {
        const p = f.properties;
        const assigned = assignmentsOfZone(f.id);
        return h(
          "li",
          { class: "white-item", dataset: { zone: f.id, code: p.code } },
          h(
            "button",
            { type: "button", class: "white-zoom", onclick: () => zoomToZone(f.id, false), title: gettext("Centrer la carte sur cette zone blanche") },
            h("span", { class: "rank" }, i + 1),
            h("span", { class: "white-name" }, p.name, " ", h("small", {}, p.code)),
            h("span", { class: "white-fig" }, `${hectares(p.white_m2)} · ${percent(p.white_ratio)}`),
          ),
          h("p", { class: "reason" }, p.reason),
          h(
            "p",
            { class: "white-assign" },
            assigned.length
              ? h("span", { class: "assigned" }, swatch(assigned[0].color), fill(gettext("%(day)s : %(teams)s"), { day: dayLabel(tonight), teams: assigned.map((a) => a.team_name).join(", ") }))
              : h("span", { class: "unassigned" }, fill(gettext("%(day)s : sans équipe"), { day: dayLabel(tonight) })),
            h("button", { type: "button", class: "link", onclick: () => zoomToZone(f.id, true) }, gettext("affecter…")),
          ),
        );
      }),
    );
    if (!features.length) list.replaceChildren(h("li", { class: "muted" }, gettext("Aucune zone blanche sur la période.")));
    const more = $("white-more");
    more.hidden = features.length <= WHITE_LIST_SHORT;
    more.textContent = state.showAllWhite
      ? fill(gettext("Afficher les %(count)s premières"), { count: WHITE_LIST_SHORT })
      : fill(ngettext("Afficher %(count)s zone", "Afficher les %(count)s zones", features.length), { count: features.length });
  }

  function renderWindowSummary() {
    let people = 0;
    for (const e of state.encounters.values()) people += e.people;
    const n = state.encounters.size;
    const period = fill(gettext("du %(from)s au %(to)s"), { from: dayLabel(state.window.from), to: dayLabel(state.window.to) });
    const text = n
      ? fill(gettext("%(encounters)s (%(people)s) %(period)s"), {
          encounters: fill(ngettext("%(count)s rencontre", "%(count)s rencontres", n), { count: n }),
          people: fill(ngettext("%(count)s personne", "%(count)s personnes", people), { count: people }),
          period,
        })
      : fill(gettext("Aucune rencontre %(period)s"), { period });
    $("window-summary").textContent = state.encountersTruncated ? fill(gettext("%(summary)s — liste tronquée, réduisez la période"), { summary: text }) : text;
  }

  // --- The map itself ---------------------------------------------------------------------

  function legendControl() {
    const control = L.control({ position: "bottomleft" });
    control.onAdd = () => {
      const row = (sample, text) => h("li", {}, sample, h("span", {}, text));
      const box = (cls, style) => h("span", { class: `legend-sample ${cls}`, style, "aria-hidden": "true" });
      const body = h(
        "div",
        { class: "legend-body", id: "legend-body" },
        h("h3", {}, gettext("Dernier passage")),
        h("ul", {}, config.staleness.map((s) => row(box("fill", `background:${STALENESS_COLORS[s.key]}`), s.label.replace(/^couverte /, "")))),
        h("h3", {}, gettext("Sur la carte")),
        h(
          "ul",
          {},
          row(box("hatch"), gettext("zone blanche de la période")),
          row(box("dot", `background:${ENCOUNTER_COLOR}`), gettext("rencontre (taille : personnes)")),
          row(box("team"), fill(gettext("équipe, trace de %(minutes)s min"), { minutes: config.trailMinutes })),
          row(box("assigned"), gettext("zone affectée (couleur d'équipe)")),
          row(box("double"), gettext("zone à plusieurs équipes")),
          row(box("priority"), gettext("priorité sans équipe")),
        ),
      );
      // Open at first; a coordinator who knows it by heart folds it away, and it stays so.
      const setOpen = (open) => {
        body.hidden = !open;
        toggle.setAttribute("aria-expanded", String(open));
        try {
          window.localStorage.setItem(LEGEND_KEY, open ? "open" : "closed");
        } catch (e) {
          /* private browsing: not remembered */
        }
      };
      const toggle = h(
        "button",
        { type: "button", class: "legend-toggle", "aria-expanded": "true", "aria-controls": "legend-body", onclick: () => setOpen(body.hidden) },
        gettext("Légende"),
      );
      let remembered = null;
      try {
        remembered = window.localStorage.getItem(LEGEND_KEY);
      } catch (e) {
        remembered = null;
      }
      if (remembered === "closed") setOpen(false);
      const el = h("section", { class: "legend leaflet-bar", "aria-label": gettext("Légende") }, toggle, body);
      L.DomEvent.disableClickPropagation(el);
      L.DomEvent.disableScrollPropagation(el);
      return el;
    };
    return control;
  }

  function fitToZones() {
    const bounds = L.latLngBounds([]);
    for (const zone of state.zones.values()) bounds.extend(zone.layer.getBounds());
    if (!bounds.isValid()) return;
    // Keep the zones clear of the open legend, in the bottom-left corner.
    const legend = document.querySelector(".legend");
    const open = legend && !document.getElementById("legend-body").hidden;
    const left = open ? legend.offsetWidth + 20 : 12;
    state.map.fitBounds(bounds, { paddingTopLeft: [left, 12], paddingBottomRight: [12, 12], animate: false });
  }

  window.maraudesMapInit = function (map) {
    state.map = map;
    // Quarter zoom steps: the territory fills the screen instead of jumping a whole level.
    map.options.zoomSnap = 0.25;
    const panes = [["staleness", 405], ["white", 410], ["zones", 420], ["encounters", 430], ["trails", 440], ["flags", 610]];
    for (const [name, z] of panes) map.createPane(name).style.zIndex = z;
    // Clicks go through encounters, trails and badges to the zones below them.
    for (const name of ["encounters", "trails", "flags"]) map.getPane(name).style.pointerEvents = "none";
    // A week of encounters is thousands of dots: one canvas draws them all.
    state.canvas = L.canvas({ pane: "encounters", padding: 0.3 });
    for (const name of ["staleness", "white", "zones", "encounters", "teams", "flags"]) {
      state.layers[name] = L.layerGroup().addTo(map);
    }
    L.control
      .layers(
        null,
        {
          [gettext("Dernier passage")]: state.layers.staleness,
          [gettext("Zones blanches de la période")]: state.layers.white,
          [gettext("Rencontres")]: state.layers.encounters,
          [gettext("Équipes en maraude")]: state.layers.teams,
          [gettext("Alertes d'affectation")]: state.layers.flags,
        },
        { collapsed: true, position: "topright" },
      )
      .addTo(map);
    legendControl().addTo(map);
    map.on("popupclose", () => {
      state.popupZone = null;
    });
    window.maraudes = { state, map, reloadLayers }; // for the console and the browser tests
    maybeFirstLoad();
  };

  // --- The panel's controls --------------------------------------------------------------

  function setUpControls() {
    const from = $("window-from");
    const to = $("window-to");
    const night = $("night");
    from.value = state.window.from;
    to.value = state.window.to;
    night.value = state.night;
    const onWindow = () => {
      if (!from.value || !to.value || from.value > to.value) {
        notice(gettext("La période doit aller d'une date à une date qui la suit."));
        return;
      }
      notice("");
      state.window = { from: from.value, to: to.value };
      buffered(() => Promise.allSettled([report(loadCoverage(), gettext("les zones blanches")), report(loadEncounters(), "les rencontres")]));
    };
    from.addEventListener("change", onWindow);
    to.addEventListener("change", onWindow);
    const kind = $("window-kind");
    if (kind) {
      kind.addEventListener("change", () => {
        state.kind = kind.value;
        reloadLayers().then(fitToZones);
      });
    }
    night.addEventListener("change", () => {
      if (!night.value) return;
      state.night = night.value;
      state.conflicts = null;
      state.map && state.map.closePopup();
      buffered(() => report(loadAssignments(), gettext("les affectations"))).then(loadConflicts, () => {});
    });
    $("white-more").addEventListener("click", () => {
      state.showAllWhite = !state.showAllWhite;
      renderWhiteList();
    });
    $("window-form").addEventListener("submit", (e) => e.preventDefault());
  }

  // Ages tick, and the retry countdown with them.
  setInterval(() => {
    if (state.connState === "offline") renderConn();
  }, 1000);
  setInterval(() => {
    for (const team of state.teams.values()) updateTeamMarker(team);
    renderTeams();
  }, 15000);

  // Back from sleep or from a network change: reconnect now rather than at the next retry,
  // and drop a socket that has been silent through a suspend (it may be dead without knowing).
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    if (!state.socket) reconnectNow();
    else if (Date.now() - state.lastMessageAt > 60000) state.socket.close();
  });
  window.addEventListener("online", reconnectNow);

  setUpControls();
  renderConn();
  // Subscribe first: the socket opens now, before the map and its layers exist.
  connect();
  setTimeout(() => {
    state.helloTimedOut = true;
    maybeFirstLoad();
  }, HELLO_WAIT_MS);
})();

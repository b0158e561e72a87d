/* The weekly report page: sortable table, white-zone map, print button. No dependency but
 * Leaflet (from django-leaflet) and the page's JavaScript catalog (/i18n/js/<lang>/: gettext,
 * ngettext, interpolate; locale/en/LC_MESSAGES/djangojs.po); the page reads fine without this file. */
(function () {
  "use strict";

  // Numbers in the page's language.
  var LOCALE = { fr: "fr-FR", en: "en-GB" }[document.documentElement.lang] || "fr-FR";

  /** "%(name)s" filled from `values`: interpolate() with named placeholders. */
  function fill(format, values) {
    return interpolate(format, values, true);
  }

  // --- Sorting ------------------------------------------------------------------------------

  function value(row, index, type) {
    var raw = row.cells[index].getAttribute("data-sort");
    if (raw === null) raw = row.cells[index].textContent.trim();
    if (type === "number") {
      var n = parseFloat(raw);
      return isNaN(n) ? -Infinity : n;
    }
    return raw;
  }

  function sortTable(table, th, index, direction) {
    var type = th.getAttribute("data-type") || "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = direction === "ascending" ? 1 : -1;
    rows.sort(function (a, b) {
      var va = value(a, index, type);
      var vb = value(b, index, type);
      var order = type === "number" ? va - vb : String(va).localeCompare(String(vb), "fr");
      if (order === 0) {
        // Ties keep the zones' own order (their code), whatever the direction.
        return value(a, 0, "number") - value(b, 0, "number");
      }
      return sign * order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var headers = table.tHead.rows[0].cells;
    var status = document.getElementById("sort-status");
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var current = th.getAttribute("aria-sort");
        var first = th.getAttribute("data-first") || "descending";  // biggest first
        var direction = current === "descending" ? "ascending"
          : current === "ascending" ? "descending" : first;
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", direction);
        sortTable(table, th, index, direction);
        if (status) {
          status.textContent = fill(
            direction === "ascending" ? gettext("Trié par « %(column)s », croissant.") : gettext("Trié par « %(column)s », décroissant."),
            { column: button.textContent.trim() }
          );
        }
      });
    });
  });

  // --- Form and print -----------------------------------------------------------------------

  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  // --- Map of the week's white zones --------------------------------------------------------

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(url + " : " + response.status);
        return response.json();
      });
  }

  function number(n, digits) {
    return n.toLocaleString(LOCALE, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function popup(props) {
    var div = document.createElement("div");
    var title = document.createElement("strong");
    title.textContent = props.name + " (" + props.code + ")";
    div.appendChild(title);
    var lines = [
      fill(gettext("Non couvert : %(area)s ha (%(percent)s)"), {
        area: number(props.white_ha, 1),
        percent: props.white_ratio.toLocaleString(LOCALE, { style: "percent", maximumFractionDigits: 0 }),
      }),
      fill(gettext("Passages : %(count)s"), { count: props.passages }),
      fill(gettext("Dernière visite : %(day)s"), {
        day: props.last_visit ? props.last_visit.split("-").reverse().join("/") : gettext("jamais"),
      }),
    ];
    lines.forEach(function (text) {
      div.appendChild(document.createElement("br"));
      div.appendChild(document.createTextNode(text));
    });
    return div;
  }

  window.maraudesReportMap = function (map) {
    var box = document.getElementById("report-map-box");
    var count = document.getElementById("report-map-count");
    var tiles = document.getElementById("report-map-tiles");
    if (!box) return;
    var warned = false;
    map.eachLayer(function (layer) {
      if (!(layer instanceof L.TileLayer)) return;
      layer.on("tileerror", function () {
        if (warned) return;
        warned = true;
        box.setAttribute("data-tiles", "unreachable");
        tiles.textContent = " " + gettext("Fond de carte injoignable : les zones restent lisibles.");
      });
    });
    var bounds = null;
    function fit() {
      map.invalidateSize();
      if (bounds && bounds.isValid()) map.fitBounds(bounds, { padding: [6, 6] });
    }
    Promise.all([getJson(box.getAttribute("data-zones-url")), getJson(box.getAttribute("data-white-url"))])
      .then(function (layers) {
        var outlines = L.geoJSON(layers[0], {
          interactive: false,
          style: { color: "#4a5563", weight: 1, fillColor: "#ffffff", fillOpacity: 0.35 },
        }).addTo(map);
        var white = layers[1];
        L.geoJSON(white, {
          style: function (feature) {
            return {
              color: "#b00020", weight: 1,
              fillColor: "#e4572e", fillOpacity: 0.35 + 0.4 * feature.properties.white_ratio,
            };
          },
          onEachFeature: function (feature, layer) { layer.bindPopup(popup(feature.properties)); },
        }).addTo(map);
        bounds = outlines.getBounds();
        fit();
        var n = white.features.length;
        count.textContent = n === 0 ? gettext("Aucune zone blanche cette semaine.") :
          fill(ngettext("%(count)s zone a une partie non couverte.", "%(count)s zones ont une partie non couverte.", n), { count: n });
        box.setAttribute("data-features", String(n));
        box.setAttribute("data-state", "ready");
      })
      .catch(function () {
        box.setAttribute("data-state", "error");
        count.textContent = gettext("Les zones n'ont pas pu être chargées : rechargez la page.");
      });
    // Paper is narrower than the screen: refit the map to it before printing.
    window.addEventListener("beforeprint", fit);
    window.addEventListener("afterprint", fit);
    if (window.matchMedia) {
      var print = window.matchMedia("print");
      if (print.addEventListener) print.addEventListener("change", fit);
    }
  };
})();

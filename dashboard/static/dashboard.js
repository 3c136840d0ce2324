// Streamwatch live page: polls the dashboard's named-query API every refresh_ms and redraws uPlot charts.
// Plain browser JavaScript, no build step; uPlot is served from /static/vendor (no CDN, works offline).
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const state = { range: config.range, charts: {}, timer: null, injecting: false, selected: null };
  const colors = {
    axis: "#8b95a5", grid: "rgba(139,149,165,0.14)", actual: "#e6edf3", expected: "#58a6ff",
    band: "rgba(88,166,255,0.22)", bound: "rgba(88,166,255,0.45)", anomaly: "#ff5d6c",
    score: "#f0b429", threshold: "#ff5d6c",
  };

  // ---- small helpers -------------------------------------------------------------------------------
  const $ = (sel, root) => (root || document).querySelector(sel);

  function fmtNumber(v, digits) {
    if (v === null || v === undefined) return "–";
    const abs = Math.abs(v);
    if (abs >= 1000) return v.toFixed(0);
    if (abs >= 100) return v.toFixed(1);
    return v.toFixed(digits === undefined ? 2 : digits);
  }
  function fmtCount(v) { return v === null || v === undefined ? "–" : String(Math.round(v)); }
  function fmtPercent(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %"; }
  function fmtTime(t) { return new Date(t * 1000).toLocaleTimeString([], { hour12: false }); }
  function fmtDuration(s) {
    s = Math.round(s);
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60), r = s % 60;
    if (m < 60) return m + " min" + (r ? " " + r + " s" : "");
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  class ApiError extends Error {
    constructor(message, status, source) { super(message); this.status = status; this.source = source; }
  }

  async function getJson(url, options) {
    let resp;
    try {
      resp = await fetch(url, Object.assign({ cache: "no-store" }, options || {}));
    } catch (e) {
      throw new ApiError("the dashboard server is unreachable", 0, "dashboard");
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const msg = (body && body.error) || ("HTTP " + resp.status);
      throw new ApiError(msg, resp.status, body && body.source);
    }
    return body;
  }

  // ---- charts --------------------------------------------------------------------------------------
  function timeTicks(u, splits, axisIdx, space, incr) {
    // One line per tick: seconds only when the ticks are closer than a minute.
    const opts = { hour12: false, hour: "2-digit", minute: "2-digit" };
    if (incr < 60) opts.second = "2-digit";
    return splits.map((t) => new Date(t * 1000).toLocaleTimeString([], opts));
  }

  function axes(valueLabel) {
    return [
      { stroke: colors.axis, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid },
        values: timeTicks, space: 70 },
      { stroke: colors.axis, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid },
        size: 56, label: valueLabel, labelSize: 18, labelFont: "12px system-ui, sans-serif" },
    ];
  }

  function bandOptions(el) {
    return {
      width: el.clientWidth || 600, height: 230, cursor: { drag: { x: false, y: false } },
      legend: { show: false }, axes: axes(null),
      series: [
        {},
        // Lines only: the anomaly marks are the one thing on this chart drawn as points.
        { label: "lower", stroke: colors.bound, width: 1, points: { show: false } },
        { label: "upper", stroke: colors.bound, width: 1, points: { show: false } },
        { label: "forecast", stroke: colors.expected, width: 1.5, dash: [6, 4], points: { show: false } },
        { label: "actual", stroke: colors.actual, width: 2, points: { show: false } },
        // Anomalous samples: points only, drawn on top of the actual line.
        { label: "anomaly", stroke: colors.anomaly, fill: colors.anomaly, width: 0, paths: () => null,
          points: { show: true, size: 9, width: 1, stroke: colors.anomaly, fill: colors.anomaly } },
      ],
      bands: [{ series: [2, 1], fill: colors.band }],
    };
  }

  function scoreOptions(el) {
    return {
      width: el.clientWidth || 600, height: 130, cursor: { drag: { x: false, y: false } },
      legend: { show: false }, axes: axes(null),
      scales: { y: { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.15] } },
      series: [
        {},
        { label: "score", stroke: colors.score, width: 2, fill: "rgba(240,180,41,0.12)", points: { show: false } },
        { label: "threshold", stroke: colors.threshold, width: 1.5, dash: [5, 5], points: { show: false } },
      ],
    };
  }

  function overlay(el, text) {
    let o = el.querySelector(".overlay");
    if (!o) { o = document.createElement("div"); o.className = "overlay"; el.appendChild(o); }
    o.textContent = text || "";
    o.hidden = !text;
  }

  function draw(id, makeOptions, columns, samples, emptyText) {
    const el = document.getElementById(id);
    let chart = state.charts[id];
    if (!chart) {
      chart = new uPlot(makeOptions(el), columns, el);
      state.charts[id] = chart;
    } else {
      chart.setData(columns);
    }
    el.dataset.samples = String(samples);
    overlay(el, samples > 0 ? "" : emptyText);
  }

  function resizeCharts() {
    for (const id in state.charts) {
      const el = document.getElementById(id);
      const chart = state.charts[id];
      if (el.clientWidth && chart.width !== el.clientWidth) chart.setSize({ width: el.clientWidth, height: chart.height });
    }
  }

  // ---- page sections -------------------------------------------------------------------------------
  function showError(err) {
    const box = $("#error");
    if (!err) { box.hidden = true; box.textContent = ""; return; }
    const secs = (config.refresh_ms / 1000).toString();
    if (err.source === "prometheus") {
      box.textContent = "Prometheus unreachable, retrying every " + secs + " s: " + err.message;
    } else if (err.source === "dashboard") {
      box.textContent = "The dashboard server is unreachable, retrying every " + secs + " s.";
    } else {
      box.textContent = "Could not update the page (" + err.message + "), retrying every " + secs + " s.";
    }
    box.hidden = false;
    // Every chart says why it is not updating, including charts never drawn because Prometheus was down
    // from the start.
    const why = err.source === "prometheus" ? "Prometheus unreachable, retrying" : "No update, retrying";
    for (const el of document.querySelectorAll(".chart")) overlay(el, why);
  }

  // The banner and the incident list come from one /state of the incident detector (via /api/incidents):
  // the severity, the metrics it names and the start times are the incident log's own.
  function renderBanner(doc) {
    const banner = $("#banner");
    let cls, label, detail;
    if (!doc) {
      cls = "unknown"; label = "No answer from the incident detector";
      detail = "Its /state could not be read; retrying.";
    } else if (doc.severity === 0) {
      cls = "normal"; label = "Normal"; detail = "No open incident. Every series' score is under the threshold.";
    } else if (doc.severity === 1 || doc.severity === 2) {
      cls = doc.severity === 1 ? "sev1" : "sev2"; label = doc.severity_label + " incident";
      const what = doc.severity === 1 ? "Several metrics in trouble: " : "One metric in trouble: ";
      detail = what + doc.metrics.join(", ") + ".";
      if (doc.series.length) {
        const more = doc.series_in_trouble - doc.series.length;
        detail += " Series: " + doc.series.slice(0, 5).join(", ") + (more > 0 ? " and " + more + " more" : "") + ".";
      }
    } else {
      cls = "unknown"; label = "Severity " + doc.severity; detail = "";
    }
    banner.className = "banner " + cls;
    banner.dataset.severity = cls;
    $("#banner-label").textContent = label;
    $("#banner-detail").textContent = detail;
  }

  function renderTop(doc) {
    const body = $("#top-body");
    body.textContent = "";
    if (!doc.series.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = 3; td.className = "muted"; td.textContent = "No series scored yet.";
      return;
    }
    for (const row of doc.series) {
      const tr = body.insertRow();
      tr.className = "top-row";
      tr.dataset.name = row.name;
      tr.tabIndex = 0;
      tr.classList.toggle("selected", !!state.selected && state.selected.name === row.name);
      tr.insertCell().textContent = row.name;
      tr.insertCell().textContent = row.metric;
      const score = tr.insertCell();
      score.textContent = fmtNumber(row.score, 2);
      score.classList.toggle("hot", row.anomalous);  // above the one scale's threshold (the server decides)
      const pick = () => select(row);
      tr.addEventListener("click", pick);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") pick(); });
    }
  }

  function select(row) {
    state.selected = row;
    $("#selected").hidden = false;
    $("#selected-name").textContent = row.name;
    for (const tr of document.querySelectorAll(".top-row")) tr.classList.toggle("selected", tr.dataset.name === row.name);
    refreshSelected();
  }

  async function refreshSelected() {
    const row = state.selected;
    if (!row) return;
    const q = "/api/series?name=band&metric=" + encodeURIComponent(row.metric) + "&range=" +
      encodeURIComponent(state.range) + "&series=" + encodeURIComponent(JSON.stringify(row.labels));
    try {
      const band = await getJson(q);
      if (state.selected !== row) return;  // another row was picked meanwhile
      draw("band-selected", bandOptions,
        [band.timestamps, band.lower, band.upper, band.expected, band.actual, band.anomalies], band.samples,
        "No data yet for " + row.name + " in this range.");
      $("#selected-count").textContent = fmtCount(band.anomaly_count);
    } catch (e) {
      overlay(document.getElementById("band-selected"), "Could not load " + row.name + ": " + e.message);
    }
  }

  function renderStats(summary) {
    for (const el of document.querySelectorAll(".range-label")) el.textContent = state.range;
    for (const m of config.metrics) {
      const card = document.querySelector('.metric[data-metric="' + m + '"]');
      const s = summary.metrics[m];
      $('[data-field="anomalies_in_range"]', card).textContent = fmtCount(s.anomalies_in_range);
      $('[data-field="cycle_anomalies"]', card).textContent = fmtCount(s.cycle_anomalies);
      $('[data-field="mae"]', card).textContent = fmtNumber(s.mae);
      $('[data-field="mape_ratio"]', card).textContent = fmtPercent(s.mape_ratio);
      $('[data-field="warming"]', card).textContent = fmtCount(s.warming);
      const score = $('[data-field="score"]', card);
      score.textContent = s.score === null ? "–" : fmtNumber(s.score, 1) + " / " + fmtNumber(summary.threshold, 1);
      score.classList.toggle("hot", s.score !== null && summary.threshold !== null && s.score > summary.threshold);
    }
    const t = summary.targets;
    const targets = $("#targets");
    targets.textContent = t.total ? t.up + "/" + t.total + " targets up" : "";
    targets.title = t.down.length ? "down: " + t.down.join(", ") : "every scrape target is up";
    targets.classList.toggle("bad", t.up < t.total);
  }

  function renderIncidents(doc) {
    const body = $("#incidents-body");
    body.textContent = "";
    if (!doc) {
      const td = body.insertRow().insertCell();
      td.colSpan = 5; td.className = "muted"; td.textContent = "The incident detector does not answer.";
      return;
    }
    if (!doc.incidents.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = 5; td.className = "muted"; td.textContent = "No incidents since the detector started.";
      return;
    }
    for (const inc of doc.incidents.slice(0, 10)) {
      const tr = body.insertRow();
      tr.dataset.incident = inc.incident_id;
      const sev = tr.insertCell();
      const pill = document.createElement("span");
      pill.className = "pill " + (inc.severity === 1 ? "sev1" : "sev2");
      pill.textContent = inc.severity_label;
      sev.appendChild(pill);
      const started = tr.insertCell();
      started.textContent = fmtTime(inc.start);
      started.dataset.time = String(inc.start);
      tr.insertCell().textContent = inc.ongoing ? "ongoing" : fmtTime(inc.end);
      tr.insertCell().textContent = fmtDuration(inc.duration_s);
      const more = inc.series_in_trouble - inc.series.length;
      tr.insertCell().textContent = (inc.metrics.join(", ") || "–") +
        (inc.series.length ? " (" + inc.series.join(", ") + (more > 0 ? " +" + more : "") + ")" : "");
    }
  }

  function renderInject(sim) {
    const box = $("#inject");
    box.hidden = !sim.reachable;
    const holder = $("#inject-buttons");
    if (!sim.reachable) { holder.textContent = ""; return; }
    if (holder.childElementCount) return;
    for (const c of sim.cases) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "inject-button"; b.id = "inject-" + c.id; b.dataset.case = c.id;
      b.textContent = c.label;
      b.title = c.duration_s + " s spike; expected: " + c.expect;
      b.addEventListener("click", () => inject(c));
      holder.appendChild(b);
    }
  }

  async function inject(c) {
    if (state.injecting) return;
    state.injecting = true;
    const status = $("#inject-status");
    status.textContent = "Injecting: " + c.label + "…";
    try {
      const doc = await getJson("/api/inject", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ case: c.id }),
      });
      status.textContent = "Injected at " + fmtTime(Date.now() / 1000) + ": " + doc.label + " (" + c.duration_s +
        " s). Expected: " + c.expect + ".";
    } catch (e) {
      status.textContent = "Injection failed: " + e.message;
    } finally {
      state.injecting = false;
    }
  }

  // ---- the refresh loop ----------------------------------------------------------------------------
  // The probe runs beside the chart loop, never inside it: a hung simulator (the server waits out its
  // timeout) must not hold the charts back. At most one probe is in flight.
  async function refreshSimulator() {
    if (state.probing) return;
    state.probing = true;
    try { renderInject(await getJson("/api/simulator")); } catch (e) { renderInject({ reachable: false, cases: [] }); }
    finally { state.probing = false; }
  }

  async function refresh() {
    const range = encodeURIComponent(state.range);
    // The incident detector is a peer of its own: when it does not answer, the charts still update.
    const incidents = getJson("/api/incidents").catch(() => null);
    const jobs = [getJson("/api/summary?range=" + range), getJson("/api/top")];
    for (const m of config.metrics) {
      const q = "&metric=" + encodeURIComponent(m) + "&range=" + range;
      jobs.push(getJson("/api/series?name=band" + q), getJson("/api/series?name=score" + q));
    }
    try {
      const [summary, top, ...series] = await Promise.all(jobs);
      const doc = await incidents;
      renderBanner(doc);
      renderStats(summary);
      renderIncidents(doc);
      renderTop(top);
      config.metrics.forEach((m, i) => {
        const band = series[2 * i], score = series[2 * i + 1];
        draw("band-" + m, bandOptions,
          [band.timestamps, band.lower, band.upper, band.expected, band.actual, band.anomalies], band.samples,
          "No data yet: neither " + m + " nor its monitor's band is in Prometheus for this range.");
        // A query with several series: the card draws one of them whole; the table below has the rest.
        const note = document.querySelector('.metric[data-metric="' + m + '"] [data-field="series_note"]');
        const shown = Object.entries(band.shown || {}).filter(([k]) => k !== "job" && k !== "instance")
          .map(([k, v]) => k + '="' + v + '"').join(",");  // named as in the table: without the target labels
        note.hidden = !(band.series_count > 1);
        note.textContent = band.series_count > 1 ? "Showing " + m + "{" + shown + "}, one of " +
          band.series_count + " series; pick any in the table below." : "";
        draw("score-" + m, scoreOptions, [score.timestamps, score.score, score.threshold], score.samples,
          "No data yet: the incident detector has not exported a score for " + m + " in this range.");
      });
      await refreshSelected();
      showError(null);
      $("#updated").textContent = "updated " + fmtTime(Date.now() / 1000);
    } catch (e) {
      showError(e);
    }
  }

  async function loop() {
    // A range click restarts the loop; the generation stops the older loop from scheduling itself again.
    const gen = (state.gen = (state.gen || 0) + 1);
    refreshSimulator();
    await refresh();
    if (gen === state.gen) state.timer = setTimeout(loop, config.refresh_ms);
  }

  for (const b of document.querySelectorAll(".range")) {
    b.addEventListener("click", () => {
      state.range = b.dataset.range;
      for (const o of document.querySelectorAll(".range")) o.classList.toggle("active", o === b);
      clearTimeout(state.timer);
      loop();
    });
  }
  window.addEventListener("resize", resizeCharts);
  window.streamwatch = state;  // for the browser test and for curious operators in the console
  loop();
})();

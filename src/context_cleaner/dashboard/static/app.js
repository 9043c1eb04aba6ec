/* context-cleaner dashboard: fetches the JSON API and draws the page.
 * Data is only ever inserted with textContent (never as HTML). */
(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const FILTERS = ["start", "end", "model", "project", "host"];
  const PAGE = 10;
  const REFRESH_MS = 30000;
  const COLORS = {
    input: "#4e79a7",
    output: "#f28e2b",
    cacheWrite: "#e15759",
    cacheRead: "#76b7b2",
    cost: "#59a14f",
    bar: "#2f6fdf",
  };
  const state = { filters: {}, search: "", offset: 0, total: 0, loads: 0 };
  FILTERS.forEach((k) => { if (params.get(k)) state.filters[k] = params.get(k); });
  if (params.get("search")) state.search = params.get("search");

  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat("en-US");
  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

  function query(extra, useFilters) {
    const q = new URLSearchParams();
    Object.entries(Object.assign({}, useFilters ? state.filters : {}, extra || {})).forEach(([k, v]) => {
      if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    });
    const s = q.toString();
    return s ? "?" + s : "";
  }

  async function api(path, extra, useFilters = true) {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const res = await fetch("api/" + path + query(extra, useFilters), { headers, cache: "no-store" });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && body.error ? body.error : res.status + " " + res.statusText;
      throw new Error(msg);
    }
    return body;
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message;
    el.hidden = !message;
  }

  function text(el, value) { el.textContent = value; return el; }
  function cell(tr, value, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = value;
    tr.appendChild(td);
    return td;
  }
  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " days";
  }

  /* ---- charts ---- */
  const charts = {};
  function chart(id, config) {
    if (typeof Chart === "undefined") throw new Error("The chart library did not load.");
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
      return charts[id];
    }
    config.options = Object.assign(
      { animation: false, responsive: true, maintainAspectRatio: false },
      config.options || {}
    );
    charts[id] = new Chart($(id), config);
    return charts[id];
  }
  const tokenAxis = { beginAtZero: true, ticks: { callback: (v) => compact.format(v) } };
  const tokenTip = { callbacks: { label: (c) => c.dataset.label + ": " + nf.format(c.raw) } };

  function drawDays(days) {
    const labels = days.map((d) => d.day);
    chart("chart-days", {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "Input", data: days.map((d) => d.input_tokens), backgroundColor: COLORS.input },
          { label: "Output", data: days.map((d) => d.output_tokens), backgroundColor: COLORS.output },
          { label: "Cache write", data: days.map((d) => d.cache_creation_tokens), backgroundColor: COLORS.cacheWrite },
          { label: "Cache read", data: days.map((d) => d.cache_read_tokens), backgroundColor: COLORS.cacheRead },
        ],
      },
      options: {
        datasets: { bar: { maxBarThickness: 48 } },
        scales: { x: { stacked: true }, y: Object.assign({ stacked: true }, tokenAxis) },
        plugins: { tooltip: tokenTip, legend: { position: "bottom" } },
      },
    });
    chart("chart-cost", {
      type: "bar",
      data: {
        labels,
        datasets: [{ label: "Cost (USD)", data: days.map((d) => d.cost_usd), backgroundColor: COLORS.cost, maxBarThickness: 48 }],
      },
      options: {
        scales: { y: { beginAtZero: true, ticks: { callback: (v) => usd.format(v) } } },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (c) => usd.format(c.raw) } },
        },
      },
    });
  }

  function drawRanking(id, items, key) {
    const top = items.slice(0, 8);
    chart(id, {
      type: "bar",
      data: {
        labels: top.map((i) => (i[key] || "(none)") + "  ·  " + usd.format(i.cost_usd)),
        datasets: [{ label: "Tokens", data: top.map((i) => i.total_tokens), backgroundColor: COLORS.bar, maxBarThickness: 28 }],
      },
      options: {
        indexAxis: "y",
        scales: { x: tokenAxis, y: { ticks: { autoSkip: false } } },
        plugins: { legend: { display: false }, tooltip: tokenTip },
      },
    });
  }

  /* ---- panels ---- */
  function drawTotals(t, sessions) {
    const tokens = $("total-tokens");
    tokens.dataset.value = String(t.total_tokens);
    text(tokens, nf.format(t.total_tokens));
    const cost = $("total-cost");
    cost.dataset.value = String(t.cost_usd);
    text(cost, usd.format(t.cost_usd));
    text($("total-input"), nf.format(t.input_tokens));
    text($("total-output"), nf.format(t.output_tokens));
    text($("total-cache-creation"), nf.format(t.cache_creation_tokens));
    text($("total-cache-read"), nf.format(t.cache_read_tokens));
    text($("total-sessions"), nf.format(sessions));
  }

  function fillSelect(id, values, current) {
    const sel = $(id);
    const first = sel.options[0];
    sel.replaceChildren(first);
    const all = values.slice();
    if (current && !all.includes(current)) all.push(current);
    all.forEach((v) => {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = v || "(none)";
      sel.appendChild(o);
    });
    sel.value = current || "";
  }

  function drawSessions(page) {
    state.total = page.total;
    const body = $("sessions").tBodies[0];
    body.replaceChildren();
    if (!page.items.length) {
      const tr = body.insertRow();
      const td = cell(tr, "No sessions match.", "empty");
      td.colSpan = 5;
    }
    page.items.forEach((s) => {
      const tr = body.insertRow();
      cell(tr, s.session, "mono");
      cell(tr, s.project || "–");
      cell(tr, when(s.last_timestamp));
      cell(tr, nf.format(s.total_tokens), "num");
      cell(tr, usd.format(s.cost_usd), "num");
    });
    const from = page.total ? page.offset + 1 : 0;
    const to = Math.min(page.offset + page.items.length, page.total);
    text($("page-info"), from + "–" + to + " of " + nf.format(page.total));
    $("page-prev").disabled = page.offset <= 0;
    $("page-next").disabled = page.offset + PAGE >= page.total;
  }

  function badge(parent, label, cls) {
    const span = document.createElement("span");
    span.className = "badge " + cls;
    span.textContent = label;
    parent.appendChild(span);
  }

  function drawRuns(runs) {
    const body = $("runs").tBodies[0];
    body.replaceChildren();
    if (!runs.length) {
      const td = cell(body.insertRow(), "No migration runs yet.", "empty");
      td.colSpan = 9;
    }
    runs.forEach((r) => {
      const tr = body.insertRow();
      cell(tr, r.migration_id, "mono");
      cell(tr, r.run_kind);
      badge(cell(tr, ""), r.status, r.status);
      cell(tr, when(r.started_at));
      cell(tr, r.finished_at ? when(r.finished_at) : "–");
      const prog = cell(tr, "");
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = Math.round(r.progress * 100) + "%";
      bar.appendChild(fill);
      prog.appendChild(bar);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = r.files_done + "/" + r.files_found + " files";
      prog.appendChild(pct);
      cell(tr, nf.format(r.records_inserted), "num");
      cell(tr, r.total_tokens ? nf.format(r.total_tokens) : "–", "num");
      const v = cell(tr, "");
      if (r.validation_passed === true) badge(v, "passed", "passed");
      else if (r.validation_passed === false) badge(v, "failed", "failed");
      else badge(v, "–", "none");
    });
  }

  function drawHealth(h) {
    const f = h.freshness || {};
    const dl = $("freshness");
    dl.replaceChildren();
    const fact = (k, v) => {
      dl.appendChild(text(document.createElement("dt"), k));
      dl.appendChild(text(document.createElement("dd"), v));
    };
    fact("Newest record", when(f.newest_record_at));
    fact("Data lag", ago(f.data_lag_seconds));  // newest line on disk not in the database yet
    if (f.analysed_at) fact("Transcripts read", when(f.analysed_at));
    else fact("Last sync", when(f.last_sync_at));
    fact("Files tracked", nf.format(f.files_tracked || 0));
    fact("Files behind", nf.format(f.files_behind || 0) + (f.bytes_behind ? " (" + nf.format(f.bytes_behind) + " bytes)" : ""));
    if (f.files_unfinished) fact("Last line being written", nf.format(f.files_unfinished) + " file(s), " + nf.format(f.bytes_unfinished || 0) + " bytes; counted once it ends");
    const v = h.validation;
    fact("Validation", v ? (v.passed ? "passed" : "FAILED") + " · " + (v.migration_id || "") + " · " + when(v.at) : "not run yet");
    text($("fresh-short"), "Newest record " + ago(f.newest_record_age_seconds) + " ago · checked " + when(f.checked_at));
    const ul = $("alerts");
    ul.replaceChildren();
    const list = h.alerts || [];
    if (!list.length) {
      const li = text(document.createElement("li"), "No alerts.");
      li.className = "none";
      ul.appendChild(li);
    }
    list.forEach((a) => {
      const li = text(document.createElement("li"), a.message);
      li.className = a.level;
      ul.appendChild(li);
    });
  }

  function drawInfo(info) {
    text($("source-label"), info.source === "direct" ? "source: transcripts (direct)" : "source: " + info.location);
    const banner = $("banner");
    banner.textContent = info.banner || "";
    banner.hidden = !info.banner;
  }

  /* Answers kept from an earlier read while another process writes (``stale``). */
  function drawStale(answers) {
    const old = answers.filter((a) => a && a.stale);
    const el = $("stale");
    if (!old.length) {
      el.hidden = true;
      el.textContent = "";
      delete document.body.dataset.stale;
      return;
    }
    const asOf = old.map((a) => a.as_of).sort()[0];
    const at = new Date(asOf).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
    el.textContent = "The database is busy: " + old[0].busy + " is using it. Showing the numbers " +
      "as read at " + at + "; they refresh once it has finished.";
    el.hidden = false;
    document.body.dataset.stale = asOf;
  }

  /* ---- loading ---- */
  async function loadSessions() {
    const page = await api("sessions", { search: state.search, limit: PAGE, offset: state.offset });
    drawSessions(page);
    return page;
  }

  async function load() {
    document.body.dataset.state = "loading";
    try {
      const [info, overview, health] = await Promise.all([api("info", null, false), api("overview"), api("health", null, false)]);
      drawInfo(info);
      drawTotals(overview.totals, overview.sessions);
      drawDays(overview.days);
      drawRanking("chart-models", overview.models, "model");
      drawRanking("chart-projects", overview.projects, "project");
      fillSelect("f-model", overview.options.models, state.filters.model);
      fillSelect("f-project", overview.options.projects, state.filters.project);
      fillSelect("f-host", overview.options.hosts, state.filters.host);
      drawHealth(health);
      drawRuns(health.runs || []);
      const page = await loadSessions();
      drawStale([info, overview, health, page]);
      showError("");
      state.loads += 1;
      document.body.dataset.loads = String(state.loads);
      document.body.dataset.state = "ready";
    } catch (e) {
      showError("Could not load the dashboard: " + e.message);
      document.body.dataset.state = "error";
    }
  }

  function syncUrl() {
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    Object.entries(state.filters).forEach(([k, v]) => { if (v) q.set(k, v); });
    if (state.search) q.set("search", state.search);
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  function readForm() {
    state.filters = {};
    FILTERS.forEach((k) => {
      const v = $("f-" + k).value;
      if (v) state.filters[k] = v;
    });
    state.offset = 0;
  }

  function setup() {
    FILTERS.forEach((k) => { if (state.filters[k] && $("f-" + k).tagName === "INPUT") $("f-" + k).value = state.filters[k]; });
    $("session-search").value = state.search;
    $("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      readForm();
      syncUrl();
      load();
    });
    $("f-reset").addEventListener("click", () => {
      $("filters").reset();
      FILTERS.forEach((k) => { $("f-" + k).value = ""; });
      state.search = "";
      $("session-search").value = "";
      readForm();
      syncUrl();
      load();
    });
    let timer = null;
    $("session-search").addEventListener("input", (ev) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.search = ev.target.value.trim();
        state.offset = 0;
        syncUrl();
        loadSessions().then(() => showError("")).catch((e) => showError("Could not load sessions: " + e.message));
      }, 250);
    });
    $("page-prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE);
      loadSessions().catch((e) => showError(e.message));
    });
    $("page-next").addEventListener("click", () => {
      state.offset += PAGE;
      loadSessions().catch((e) => showError(e.message));
    });
    load();
    setInterval(() => { if (document.visibilityState === "visible") load(); }, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();

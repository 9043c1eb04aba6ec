/* context-cleaner dashboard: fetches the JSON API and draws the page.
 * Data is only ever inserted with textContent (never as HTML). The view (filters,
 * timezone, period, session search, order and page) lives in the query string, so a
 * reload or a shared link shows the same view. */
(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const FILTERS = ["start", "end", "model", "project", "host"];
  const PERIODS = ["daily", "weekly", "monthly", "blocks"];
  const SORTS = ["total_tokens", "cost_usd", "last_timestamp"];
  const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];  // getUTCDay()
  const SHOWN = 6;  // bars per ranking; the rest are one "other" bar
  const R = window.ContextCleanerReports;
  const BROWSER_ZONE = (() => {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  })();
  const PAGE = 10;
  const REFRESH_MS = 30000;
  const COLORS = {
    input: "#4e79a7",
    output: "#f28e2b",
    cacheWrite: "#e15759",
    cacheRead: "#76b7b2",
    cost: "#59a14f",
    bar: "#2f6fdf",
    other: "#9aa5b4",
  };
  const state = {
    filters: {},
    search: params.get("search") || "",
    timezone: params.get("timezone") || BROWSER_ZONE,
    period: PERIODS.includes(params.get("period")) ? params.get("period") : "daily",
    sort: SORTS.includes(params.get("sort")) ? params.get("sort") : "total_tokens",
    direction: params.get("dir") === "asc" ? "asc" : "desc",
    weekStart: WEEKDAYS.includes(params.get("week_start")) ? params.get("week_start") : "sunday",
    page: Math.max(1, parseInt(params.get("page"), 10) || 1),
    loads: 0,
  };
  FILTERS.forEach((k) => { if (params.get(k)) state.filters[k] = params.get(k); });

  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat("en-US");
  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const FMT = { number: nf, usd, compact };

  /* The filters' days (start, end) are days in the chosen zone, as in the reports. Without
   * days the zone changes nothing the page takes from the overview and the sessions (only
   * the overview's day list, unused here, which would cost a scan of the finer rollup). */
  function query(extra, useFilters) {
    const q = new URLSearchParams();
    const f = state.filters;
    const zone = f.start || f.end ? { timezone: state.timezone } : {};
    const filters = useFilters ? Object.assign(zone, f) : {};
    Object.entries(Object.assign(filters, extra || {})).forEach(([k, v]) => {
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
    if (isNaN(d)) return iso;
    try { return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: state.timezone }); }
    catch (e) { return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }); }
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
    config.options = Object.assign(
      { animation: false, responsive: true, maintainAspectRatio: false },
      config.options || {}
    );
    if (charts[id]) {
      charts[id].options = config.options;
      charts[id].data = config.data;
      charts[id].update("none");
      return charts[id];
    }
    charts[id] = new Chart($(id), config);
    return charts[id];
  }

  /* The period charts: tokens (cache on the left scale, input and output on the right,
   * so both are readable) and cost, on a real time axis. */
  function drawPeriods(report) {
    const s = R.series(report, {
      timezone: state.timezone,
      since: state.filters.start,
      until: state.filters.end,
      startOfWeek: WEEKDAYS.indexOf(state.weekStart),
      width: $("chart-days").parentElement.clientWidth,
    });
    const noun = R.NOUN[report.report];
    text($("caption-days"), "Tokens per " + noun + ", by type");
    text($("caption-cost"), "Cost per " + noun + " (USD)");
    chart("chart-days", R.tokenConfig(s, FMT, COLORS));
    chart("chart-cost", R.costConfig(s, FMT, COLORS));
    const plural = report.report === "blocks" ? "five-hour block" : noun;
    let range = s.count + " " + plural + (s.count === 1 ? "" : "s") + " · " + state.timezone;
    if (report.report !== "blocks") range += " · " + s.empty + " without usage";
    const active = report.report === "blocks" ? report.rows.find((r) => r.is_active) : null;
    if (active && active.projection) {
      const end = R.zoned(state.timezone, { hour: "2-digit", minute: "2-digit" }).format(new Date(active.end));
      range += " · active block: " + compact.format(active.total_tokens) + " tokens so far, " +
        compact.format(active.projection.total_tokens) + " (" + usd.format(active.projection.cost_usd) +
        ") projected by " + end;
    }
    text($("range"), range);
  }

  /* Projects come from the overview's aggregate (the largest ones); what it leaves out
   * joins the "other" bar. */
  function drawRankings(periodReport, overview) {
    const width = $("chart-models").parentElement.clientWidth;
    const models = R.ranked(R.models(periodReport), SHOWN);
    chart("chart-models", R.rankingConfig(models, FMT, COLORS, width));
    const items = overview.projects.map((p) => ({ name: p.project || "(none)", total_tokens: p.total_tokens, cost_usd: p.cost_usd }));
    const listed = items.reduce((a, p) => [a[0] + p.total_tokens, a[1] + p.cost_usd], [0, 0]);
    const left = [overview.totals.total_tokens - listed[0], overview.totals.cost_usd - listed[1]];
    if (left[0] > 0) items.push({ name: "(smaller projects)", total_tokens: left[0], cost_usd: Math.max(0, left[1]) });
    const projects = R.ranked(items, SHOWN);
    chart("chart-projects", R.rankingConfig(projects, FMT, COLORS, width));
  }

  /* ---- panels ---- */
  function figure(id, value) {
    const el = text($(id), value);
    el.style.setProperty("--chars", String(Math.max(8, value.length)));  // style.css sizes by it
    return el;
  }

  function drawTotals(t, sessions) {
    figure("total-tokens", nf.format(t.total_tokens)).dataset.value = String(t.total_tokens);
    figure("total-cost", usd.format(t.cost_usd)).dataset.value = String(t.cost_usd);
    figure("total-input", nf.format(t.input_tokens));
    figure("total-output", nf.format(t.output_tokens));
    figure("total-cache-creation", nf.format(t.cache_creation_tokens));
    figure("total-cache-read", nf.format(t.cache_read_tokens));
    figure("total-sessions", nf.format(sessions));
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

  function shortModel(name) { return name.replace(/^claude-/, "").replace(/-\d{8}$/, ""); }

  /* Labels for the narrow layout, where each row is a card of "label value" lines. */
  function labelCells(table) {
    const heads = Array.from(table.tHead.rows[0].cells).map((th) => th.textContent.trim());
    Array.from(table.tBodies[0].rows).forEach((tr) => {
      Array.from(tr.cells).forEach((td, i) => { if (td.colSpan === 1) td.dataset.label = heads[i] || ""; });
    });
  }

  /* One page of sessions, searched, ordered and paged by the server (the view is in the URL). */
  function sessionParams() {
    return { search: state.search, order: state.sort, direction: state.direction, limit: PAGE, offset: (state.page - 1) * PAGE };
  }

  async function fetchSessions() {
    let got = await api("sessions", sessionParams());
    const pages = Math.max(1, Math.ceil(got.total / PAGE));
    if (state.page > pages) {  // a page from an old link, past the end now
      state.page = pages;
      syncUrl();
      got = await api("sessions", sessionParams());
    }
    return got;
  }

  function drawSessions(got) {
    const pages = Math.max(1, Math.ceil(got.total / PAGE));
    const page = state.page;
    const offset = (page - 1) * PAGE;
    const table = $("sessions");
    const body = table.tBodies[0];
    body.replaceChildren();
    if (!got.items.length) {
      const td = cell(body.insertRow(), "No sessions match.", "empty");
      td.colSpan = 6;
    }
    got.items.forEach((s) => {
      const tr = body.insertRow();
      cell(tr, s.session, "mono");
      cell(tr, s.project || "–");
      cell(tr, (s.models || []).map(shortModel).join(", ") || "–");
      cell(tr, when(s.last_timestamp));
      cell(tr, nf.format(s.total_tokens), "num");
      cell(tr, usd.format(s.cost_usd), "num");
    });
    labelCells(table);
    const sorted = state.direction === "asc" ? "ascending" : "descending";
    table.querySelectorAll("th[aria-sort]").forEach((th) => {
      th.setAttribute("aria-sort", th.querySelector("button").dataset.sort === state.sort ? sorted : "none");
    });
    const from = got.total ? offset + 1 : 0;
    text($("page-info"), from + "–" + Math.min(offset + PAGE, got.total) + " of " + nf.format(got.total) +
      (pages > 1 ? " · page " + page + " of " + pages : ""));
    $("page-prev").disabled = page <= 1;
    $("page-next").disabled = page >= pages;
  }

  let latestPage = 0;  // a page answer that a newer click overtook draws nothing

  async function loadSessions() {
    const mine = ++latestPage;
    try {
      const got = await fetchSessions();
      if (mine !== latestPage) return;
      drawSessions(got);
      showError("");
    } catch (e) {
      if (mine === latestPage) showError("Could not load the sessions: " + e.message);
    }
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
    labelCells($("runs"));
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
    // Claude Code deletes old transcripts: their rows stay, so the totals do not drop.
    if (f.files_missing) fact("Deleted from disk", nf.format(f.files_missing) + " file(s); their rows are kept");
    if (f.files_replaced) fact("Replaced on disk", nf.format(f.files_replaced) + " file(s); read again from the start by the next sync, earlier rows kept");
    if (f.files_with_errors) fact("Read failed", nf.format(f.files_with_errors) + " file(s); context-cleaner status names them");
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
  function reportParams(extra) {
    const f = state.filters;
    return Object.assign({
      since: f.start, until: f.end, model: f.model, project: f.project, host: f.host, timezone: state.timezone,
    }, extra || {});
  }

  function fillZones() {
    const sel = $("f-timezone");
    let zones = [];
    try { zones = Intl.supportedValuesOf("timeZone"); } catch (e) { zones = []; }
    const all = ["UTC"].concat(zones.filter((z) => z !== "UTC"));
    [BROWSER_ZONE, state.timezone].forEach((z) => { if (!all.includes(z)) all.splice(1, 0, z); });
    sel.replaceChildren();
    all.forEach((z) => {
      const o = document.createElement("option");
      o.value = z;
      o.textContent = z === BROWSER_ZONE ? z + " (this browser)" : z;
      sel.appendChild(o);
    });
    sel.value = state.timezone;
  }

  function drawSwitch() {
    document.querySelectorAll("#period button").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.period === state.period));
    });
    document.body.dataset.period = state.period;
    $("week-start-label").hidden = state.period !== "weekly";
    $("week-start").value = state.weekStart;
  }

  let latest = 0;  // a load that a newer one overtook (a click during a refresh) draws nothing

  async function load() {
    const mine = ++latest;
    document.body.dataset.state = "loading";
    drawSwitch();
    try {
      latestPage += 1;  // this load draws the sessions; an older page answer must not
      const [info, overview, health, periods, sessions] = await Promise.all([
        api("info", null, false),
        api("overview"),
        api("health", null, false),
        api("report/" + state.period, reportParams(state.period === "weekly" ? { breakdown: 1, start_of_week: state.weekStart } : { breakdown: 1 }), false),
        fetchSessions(),
      ]);
      if (mine !== latest) return;
      drawInfo(info);
      drawTotals(periods.totals, overview.sessions);
      drawPeriods(periods);
      drawRankings(periods, overview);
      fillSelect("f-model", overview.options.models, state.filters.model);
      fillSelect("f-project", overview.options.projects, state.filters.project);
      fillSelect("f-host", overview.options.hosts, state.filters.host);
      drawHealth(health);
      drawRuns(health.runs || []);
      drawSessions(sessions);
      drawStale([info, overview, health, periods, sessions]);
      showError("");
      state.loads += 1;
      document.body.dataset.loads = String(state.loads);
      document.body.dataset.state = "ready";
    } catch (e) {
      if (mine !== latest) return;
      showError("Could not load the dashboard: " + e.message);
      document.body.dataset.state = "error";
    }
  }

  function syncUrl() {
    const q = new URLSearchParams();
    if (token) q.set("token", token);
    Object.entries(state.filters).forEach(([k, v]) => { if (v) q.set(k, v); });
    if (state.timezone !== BROWSER_ZONE) q.set("timezone", state.timezone);
    if (state.period !== "daily") q.set("period", state.period);
    if (state.weekStart !== "sunday") q.set("week_start", state.weekStart);
    if (state.search) q.set("search", state.search);
    if (state.sort !== "total_tokens") q.set("sort", state.sort);
    if (state.direction !== "desc") q.set("dir", state.direction);
    if (state.page > 1) q.set("page", String(state.page));
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  function readForm() {
    state.filters = {};
    FILTERS.forEach((k) => {
      const v = $("f-" + k).value;
      if (v) state.filters[k] = v;
    });
    state.timezone = $("f-timezone").value || BROWSER_ZONE;
    state.page = 1;
  }

  function toPage(page) {
    state.page = page;
    syncUrl();
    loadSessions();
  }

  function setup() {
    FILTERS.forEach((k) => { if (state.filters[k] && $("f-" + k).tagName === "INPUT") $("f-" + k).value = state.filters[k]; });
    $("session-search").value = state.search;
    fillZones();
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
      $("f-timezone").value = BROWSER_ZONE;
      state.period = "daily";
      state.sort = "total_tokens";
      state.direction = "desc";
      state.weekStart = "sunday";
      readForm();
      syncUrl();
      load();
    });
    let timer = null;
    $("session-search").addEventListener("input", (ev) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.search = ev.target.value.trim();
        toPage(1);
      }, 250);
    });
    $("page-prev").addEventListener("click", () => toPage(Math.max(1, state.page - 1)));
    $("page-next").addEventListener("click", () => toPage(state.page + 1));
    document.querySelectorAll("#sessions button.sort").forEach((b) => {
      b.addEventListener("click", () => {
        // the same column again turns the order round; another column starts largest first
        state.direction = state.sort === b.dataset.sort && state.direction === "desc" ? "asc" : "desc";
        state.sort = b.dataset.sort;
        toPage(1);
      });
    });
    $("week-start").addEventListener("change", (ev) => {
      state.weekStart = ev.target.value;
      syncUrl();
      load();
    });
    document.querySelectorAll("#period button").forEach((b) => {
      b.addEventListener("click", () => {
        if (b.dataset.period === state.period) return;
        state.period = b.dataset.period;
        syncUrl();
        load();
      });
    });
    load();
    setInterval(() => { if (document.visibilityState === "visible") load(); }, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();

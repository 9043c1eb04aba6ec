/* context-cleaner dashboard: the report views (/api/report/...) as charts.
 * Pure helpers on the report documents, plus the Chart.js configurations; app.js
 * fetches and calls them. Periods get a real time axis: days, weeks or months
 * without usage are empty slots, never skipped; 5-hour blocks sit on a linear
 * time axis at their real start. */
(function () {
  "use strict";

  const DAY_MS = 86400000;
  const HOUR_MS = 3600000;
  const BLOCK_MS = 5 * HOUR_MS;
  const MAX_SLOTS = 3700;  // ten years of days: a longer range shows its rows only
  const PERIOD_KEY = { daily: "date", weekly: "week", monthly: "month" };
  const NOUN = { daily: "day", weekly: "week", monthly: "month", blocks: "5-hour block" };

  function dayMs(day) { return Date.UTC(+day.slice(0, 4), +day.slice(5, 7) - 1, +day.slice(8, 10)); }
  function isoDay(ms) { return new Date(ms).toISOString().slice(0, 10); }

  /* The period (row key) holding ``day``: weeks start on ``startOfWeek`` (0 = Sunday). */
  function periodOf(kind, day, startOfWeek) {
    if (kind === "monthly") return day.slice(0, 7);
    if (kind === "weekly") {
      const ms = dayMs(day);
      return isoDay(ms - ((new Date(ms).getUTCDay() - startOfWeek + 7) % 7) * DAY_MS);
    }
    return day;
  }

  function nextPeriod(kind, key) {
    if (kind === "monthly") {
      let y = +key.slice(0, 4), m = +key.slice(5, 7) + 1;
      if (m > 12) { m = 1; y += 1; }
      return y + "-" + String(m).padStart(2, "0");
    }
    return isoDay(dayMs(key) + (kind === "weekly" ? 7 : 1) * DAY_MS);
  }

  /* Every period from ``since`` (or the first row) to ``until`` (or the last row), each
   * with its row or null: the real time axis of a day, week or month report. */
  function slots(kind, rows, since, until, startOfWeek) {
    const key = PERIOD_KEY[kind];
    const byKey = new Map(rows.map((r) => [r[key], r]));
    const keys = rows.map((r) => r[key]).sort();
    let lo = since ? periodOf(kind, since, startOfWeek) : keys[0];
    let hi = until ? periodOf(kind, until, startOfWeek) : keys[keys.length - 1];
    if (keys.length && keys[0] < lo) lo = keys[0];
    if (keys.length && keys[keys.length - 1] > hi) hi = keys[keys.length - 1];
    if (!lo || !hi) return [];
    const out = [];
    for (let k = lo; k <= hi && out.length < MAX_SLOTS; k = nextPeriod(kind, k)) {
      out.push({ key: k, row: byKey.get(k) || null });
    }
    if (out.length >= MAX_SLOTS) return keys.map((k) => ({ key: k, row: byKey.get(k) }));
    return out;
  }

  /* Items ranked by tokens: the first ``shown``, then one "other (N)" item for the rest. */
  function ranked(items, shown) {
    const sorted = items.slice().sort((a, b) => b.total_tokens - a.total_tokens || (a.name < b.name ? -1 : 1));
    if (sorted.length <= shown) return sorted;
    const rest = sorted.slice(shown);
    const other = { name: "other (" + rest.length + ")", other: true, total_tokens: 0, cost_usd: 0 };
    rest.forEach((i) => { other.total_tokens += i.total_tokens; other.cost_usd += i.cost_usd; });
    return sorted.slice(0, shown).concat([other]);
  }

  function sumBy(rows, nameOf) {
    const out = new Map();
    rows.forEach((r) => {
      const name = nameOf(r);
      const item = out.get(name) || { name, total_tokens: 0, cost_usd: 0 };
      item.total_tokens += r.total_tokens;
      item.cost_usd += r.cost_usd;
      out.set(name, item);
    });
    return Array.from(out.values());
  }

  /* Tokens per model, from a report asked with ``breakdown``. */
  function models(report) {
    const parts = [];
    report.rows.forEach((r) => (r.breakdown || []).forEach((p) => parts.push(p)));
    return sumBy(parts, (p) => p.model);
  }

  /* Minutes ``tz`` is ahead of UTC at ``ms``. */
  function offsetMs(ms, fmt) {
    const p = {};
    fmt.formatToParts(new Date(ms)).forEach((x) => { p[x.type] = +x.value; });
    return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute) - Math.floor(ms / 60000) * 60000;
  }

  /* Ticks of a time axis at whole hours or days of ``tz``, about ``count`` of them. */
  function timeTicks(lo, hi, tz, count) {
    const steps = [1, 3, 6, 12, 24, 48, 168, 336, 720, 2160, 4320, 8760].map((h) => h * HOUR_MS);
    const step = steps.find((s) => (hi - lo) / s <= count) || steps[steps.length - 1];
    const parts = zoned(tz, { hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric" });
    const ticks = [];
    for (let t = Math.floor(lo / HOUR_MS) * HOUR_MS; t <= hi && ticks.length < 200; t += HOUR_MS) {
      const local = t + offsetMs(t, parts);
      if (step < DAY_MS ? local % step === 0 : local % DAY_MS === 0 && Math.floor(local / DAY_MS) % (step / DAY_MS) === 0) {
        ticks.push({ value: t });
      }
    }
    return { ticks, daily: step >= DAY_MS };
  }

  function zoned(tz, opts) {
    try { return new Intl.DateTimeFormat(undefined, Object.assign({ timeZone: tz }, opts)); }
    catch (e) { return new Intl.DateTimeFormat(undefined, opts); }
  }

  /* The datasets and x axis of a report: category slots, or time for blocks. */
  function series(report, opts) {
    const kind = report.report;
    const pick = (r, k) => (r ? r[k] : 0);
    if (kind === "blocks") {
      const rows = report.rows.slice().sort((a, b) => (a.start < b.start ? -1 : 1));
      const at = rows.map((r) => Date.parse(r.start) + BLOCK_MS / 2);
      const fmt = zoned(opts.timezone, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      const lo = rows.length ? Date.parse(rows[0].start) : 0;
      const hi = rows.length ? Date.parse(rows[rows.length - 1].end) : BLOCK_MS;
      const span = Math.max(hi - lo, BLOCK_MS * 4);
      const min = lo - span * 0.02, max = lo + span * 1.02;
      const axis = timeTicks(min, max, opts.timezone, opts.width < 600 ? 4 : 8);
      const tick = zoned(opts.timezone, axis.daily ? { month: "short", day: "numeric" } : { month: "short", day: "numeric", hour: "2-digit" });
      return {
        empty: 0,
        count: rows.length,
        value: (k) => rows.map((r, i) => ({ x: at[i], y: r[k] })),
        title: (i) => fmt.format(new Date(rows[i].start)) + " – " + fmt.format(new Date(rows[i].end)),
        x: {
          type: "linear",
          min,
          max,
          afterBuildTicks: (scale) => { scale.ticks = axis.ticks; },
          ticks: { maxRotation: 0, autoSkipPadding: 16, callback: (v) => tick.format(new Date(v)) },
        },
        /* bars as wide as 5 hours on this axis (the chart area is about the canvas) */
        thickness: Math.max(3, (opts.width - 110) * BLOCK_MS / (span * 1.04)),
      };
    }
    const all = slots(kind, report.rows, opts.since, opts.until, opts.startOfWeek || 0);
    return {
      empty: all.filter((s) => !s.row).length,
      count: all.length,
      labels: all.map((s) => s.key),
      value: (k) => all.map((s) => pick(s.row, k)),
      title: (i) => all[i].key,
      x: { ticks: { maxRotation: 0, autoSkipPadding: 12 } },
      thickness: 48,
    };
  }

  function tokenConfig(s, fmt, colors) {
    const bar = (label, key, color, axis) => ({
      label, data: s.value(key), backgroundColor: color, yAxisID: axis, stack: axis, maxBarThickness: s.thickness,
    });
    const axis = (title, side) => ({
      position: side,
      stacked: true,
      beginAtZero: true,
      title: { display: true, text: title },
      ticks: { callback: (v) => fmt.compact.format(v) },
      grid: { drawOnChartArea: side === "left" },
    });
    return {
      type: "bar",
      data: {
        labels: s.labels,
        datasets: [
          bar("Cache write", "cache_creation_tokens", colors.cacheWrite, "y"),
          bar("Cache read", "cache_read_tokens", colors.cacheRead, "y"),
          bar("Input", "input_tokens", colors.input, "io"),
          bar("Output", "output_tokens", colors.output, "io"),
        ],
      },
      options: {
        scales: {
          x: Object.assign({ stacked: true }, s.x),
          y: axis("cache tokens", "left"),
          io: axis("input + output", "right"),
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? s.title(items[0].dataIndex) : ""),
              label: (c) => c.dataset.label + ": " + fmt.number.format(c.parsed.y),
            },
          },
        },
      },
    };
  }

  function costConfig(s, fmt, colors) {
    return {
      type: "bar",
      data: {
        labels: s.labels,
        datasets: [{ label: "Cost (USD)", data: s.value("cost_usd"), backgroundColor: colors.cost, maxBarThickness: s.thickness }],
      },
      options: {
        scales: { x: s.x, y: { beginAtZero: true, ticks: { callback: (v) => fmt.usd.format(v) } } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? s.title(items[0].dataIndex) : ""),
              label: (c) => fmt.usd.format(c.parsed.y),
            },
          },
        },
      },
    };
  }

  function rankingConfig(items, fmt, colors, width) {
    /* Chart.js gives the labels under half the width: long names keep their end (a
     * project folder's last part, a model's version) and the cost stays whole. */
    const budget = Math.max(24, Math.floor(width / 15));
    const label = (i) => {
      const cost = "  ·  " + fmt.usd.format(i.cost_usd);
      const name = i.name.replace(/^claude-/, "").replace(/-\d{8}$/, "");
      const most = Math.max(8, budget - cost.length);
      return (i.other || name.length <= most ? name : "…" + name.slice(-(most - 1))) + cost;
    };
    return {
      type: "bar",
      data: {
        labels: items.map(label),
        datasets: [{
          label: "Tokens",
          data: items.map((i) => i.total_tokens),
          backgroundColor: items.map((i) => (i.other ? colors.other : colors.bar)),
          maxBarThickness: 28,
        }],
      },
      options: {
        indexAxis: "y",
        scales: {
          x: { beginAtZero: true, ticks: { callback: (v) => fmt.compact.format(v) } },
          y: { ticks: { autoSkip: false } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (c) => "Tokens: " + fmt.number.format(c.raw) } },
        },
      },
    };
  }

  window.ContextCleanerReports = {
    NOUN, slots, ranked, models, series, tokenConfig, costConfig, rankingConfig, zoned,
  };
})();

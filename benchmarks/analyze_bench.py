"""Benchmark ``context-cleaner analyze`` against the corpus manifest and ccusage.

Rows: reading the files (the page-cache warm-up, a physical baseline), our
``analyze --source-dir <corpus>/projects --json``, and, when it is installed,
``ccusage claude daily --json --offline`` on the same corpus (``CLAUDE_CONFIG_DIR``
pointing at it, ``TZ=UTC``). Both tools' totals (and per-day totals) are checked
against the manifest's exact expected values and against each other.
"""

from __future__ import annotations

import json
import os
import shutil

from benchmarks.harness import (
    BenchContext,
    Result,
    RunResult,
    measure_repeated,
    warm_page_cache,
)

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
)
_CCUSAGE_FIELDS = {
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "cache_creation_tokens": "cacheCreationTokens",
    "cache_read_tokens": "cacheReadTokens",
    "total_tokens": "totalTokens",
}

Totals = dict[str, int]
Days = dict[str, Totals]


def _expected(ctx: BenchContext) -> tuple[Totals, Days]:
    totals = ctx.manifest["totals"]
    days = ctx.manifest["days"]
    assert isinstance(totals, dict) and isinstance(days, list)
    return (
        {k: int(totals[k]) for k in TOKEN_FIELDS},
        {d["date"]: {k: int(d[k]) for k in TOKEN_FIELDS} for d in days},
    )


def _ours(doc: dict[str, object]) -> tuple[Totals, Days | None]:
    totals = doc["totals"]
    assert isinstance(totals, dict)
    days_raw = doc.get("days")
    days = (
        {d["date"]: {k: int(d.get(k, 0)) for k in TOKEN_FIELDS} for d in days_raw}
        if isinstance(days_raw, list)
        else None
    )
    return {k: int(totals.get(k, 0)) for k in TOKEN_FIELDS}, days


def _ccusage(doc: dict[str, object]) -> tuple[Totals, Days]:
    totals = doc["totals"]
    daily = doc.get("daily", [])
    assert isinstance(totals, dict) and isinstance(daily, list)
    return (
        {k: int(totals.get(c, 0)) for k, c in _CCUSAGE_FIELDS.items()},
        {d["date"]: {k: int(d.get(c, 0)) for k, c in _CCUSAGE_FIELDS.items()} for d in daily},
    )


def diff_totals(got: Totals, want: Totals) -> list[str]:
    """``field got X want Y`` for each field that differs."""
    return [
        f"{k} {got.get(k, 0):,} vs {want[k]:,} ({got.get(k, 0) - want[k]:+,})"
        for k in TOKEN_FIELDS
        if got.get(k, 0) != want[k]
    ]


def diff_days(got: Days, want: Days) -> list[str]:
    out = []
    for day in sorted(set(got) | set(want)):
        g, w = got.get(day), want.get(day)
        if g != w:
            out.append(f"{day}: {g} vs {w}")
    return out


def check_sessions(doc: dict[str, object], manifest: dict[str, object]) -> tuple[bool, str]:
    """Compare per-session totals; sessions linked by resuming are compared by their sum.

    Returns (ok, message). Within a resumed group the split between sessions depends
    on the file-path tie-break of rule 3, so only a differing sum is a failure.
    """
    raw = doc.get("sessions")
    if not isinstance(raw, list):
        return True, "no per-session totals in the output"
    zero = dict.fromkeys(TOKEN_FIELDS, 0)
    got = {str(x["session_id"]): {k: int(x.get(k, 0)) for k in TOKEN_FIELDS} for x in raw}
    want_list = manifest.get("sessions", [])
    groups_raw = manifest.get("session_groups", [])
    assert isinstance(want_list, list) and isinstance(groups_raw, list)
    want = {str(x["session_id"]): {k: int(x[k]) for k in TOKEN_FIELDS} for x in want_list}
    groups = [list(map(str, g)) for g in groups_raw]
    grouped = {s for g in groups for s in g}
    bad = [
        s for s in sorted((set(got) | set(want)) - grouped) if got.get(s, zero) != want.get(s, zero)
    ]
    split_differs = 0
    for g in groups:
        sums = [
            {k: sum(src.get(s, zero)[k] for s in g) for k in TOKEN_FIELDS} for src in (got, want)
        ]
        if sums[0] != sums[1]:
            bad.append("+".join(g))
        elif any(got.get(s, zero) != want.get(s, zero) for s in g):
            split_differs += 1
    n = len(set(got) | set(want))
    if bad:
        return False, f"{len(bad)} of {n} sessions differ from the manifest, first: {bad[0]}"
    note = f"all {n} sessions = manifest"
    if split_differs:
        note += (
            f" ({split_differs} resumed group(s) split differently between their sessions: "
            "file-path tie-break of rule 3)"
        )
    return True, note


def _row(ctx: BenchContext, tool: str, run: RunResult) -> Result:
    wall = run.wall_s
    return Result(
        benchmark="analyze",
        corpus=ctx.size_label,
        tool=tool,
        wall_s=wall,
        mb_per_s=ctx.corpus_bytes / 1e6 / wall if wall else None,
        lines_per_s=ctx.corpus_lines / wall if wall else None,
        peak_rss_mb=run.peak_rss / 1e6,
        notes=f"largest process {run.max_process_rss / 1e6:,.0f} MB",
    )


def _failure(ctx: BenchContext, tool: str, run: RunResult) -> Result:
    row = _row(ctx, tool, run)
    row.failed = True
    reason = "timed out" if run.timed_out else f"exit {run.returncode}"
    tail = run.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    row.check = "FAILED"
    row.notes = f"{reason}: {tail[0][:120]}"
    return row


def _check(
    row: Result,
    name: str,
    totals: Totals,
    days: Days | None,
    want_totals: Totals,
    want_days: Days,
) -> None:
    problems = diff_totals(totals, want_totals)
    day_problems = diff_days(days, want_days) if days is not None else []
    if not problems and not day_problems:
        row.check = "= manifest" + ("" if days is not None else " (totals; no days)")
        return
    row.check = "MISMATCH"
    row.failed = True
    if problems:
        row.comparisons.append(f"{name} totals differ from the manifest: " + "; ".join(problems))
    if day_problems:
        row.comparisons.append(
            f"{name} per-day totals differ on {len(day_problems)} day(s), first: {day_problems[0]}"
        )


def run(ctx: BenchContext) -> list[Result]:
    opts = ctx.options
    results: list[Result] = []
    want_totals, want_days = _expected(ctx)

    nbytes, seconds = warm_page_cache(ctx.projects_dir)
    results.append(
        Result(
            benchmark="analyze",
            corpus=ctx.size_label,
            tool="read files (baseline)",
            wall_s=seconds,
            mb_per_s=nbytes / 1e6 / seconds if seconds else None,
            lines_per_s=ctx.corpus_lines / seconds if seconds else None,
            notes=f"{ctx.manifest['files']} files, {ctx.corpus_lines:,} lines",
        )
    )

    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_CONFIG_DIR"}
    env["TZ"] = "UTC"
    ours_cmd = [*opts.context_cleaner, "analyze", "--source-dir", str(ctx.projects_dir), "--json"]
    ours_totals: Totals | None = None
    ours_run: RunResult | None = None
    exe = opts.context_cleaner[0]
    if not (os.path.exists(exe) or shutil.which(exe)):
        results.append(
            Result(
                "analyze",
                ctx.size_label,
                "context-cleaner",
                check="NOT RUN",
                notes=f"{exe} not found",
                failed=True,
            )
        )
    else:
        ours_run = measure_repeated(ours_cmd, opts.repeat, env=env, timeout=opts.timeout)
        if ours_run.returncode != 0:
            results.append(_failure(ctx, "context-cleaner", ours_run))
            ours_run = None
        else:
            row = _row(ctx, "context-cleaner", ours_run)
            try:
                doc = json.loads(ours_run.stdout)
                ours_totals, ours_days = _ours(doc)
                _check(row, "context-cleaner", ours_totals, ours_days, want_totals, want_days)
                ok, message = check_sessions(doc, ctx.manifest)
                row.comparisons.append(f"context-cleaner {ctx.size_label} sessions: {message}")
                if not ok:
                    row.check, row.failed = "MISMATCH", True
                skipped = doc.get("skipped_lines")
                n_skipped = len(skipped) if isinstance(skipped, list) else skipped
                if n_skipped:
                    row.notes += f"; skipped_lines {n_skipped}"
            except (ValueError, KeyError, TypeError, AssertionError) as exc:
                row.check, row.failed = "BAD JSON", True
                row.comparisons.append(f"context-cleaner --json output unreadable: {exc!r}")
            results.append(row)

    if opts.ccusage:
        cc_env = {**os.environ, "CLAUDE_CONFIG_DIR": str(ctx.corpus_dir), "TZ": "UTC"}
        cc_cmd = [*opts.ccusage, "claude", "daily", "--json", "--offline"]
        cc_run = measure_repeated(cc_cmd, opts.repeat, env=cc_env, timeout=opts.timeout)
        if cc_run.returncode != 0:
            results.append(_failure(ctx, "ccusage", cc_run))
        else:
            row = _row(ctx, "ccusage", cc_run)
            cc_totals, cc_days = _ccusage(json.loads(cc_run.stdout))
            _check(row, "ccusage", cc_totals, cc_days, want_totals, want_days)
            row.failed = False  # ccusage disagreeing is information, not our failure
            results.append(row)
            if ours_run is not None:
                same = ours_totals is not None and not diff_totals(ours_totals, cc_totals)
                row.comparisons.append(
                    f"analyze {ctx.size_label}: ours/ccusage wall time "
                    f"{ours_run.wall_s / cc_run.wall_s:.2f}x "
                    f"({ours_run.wall_s:.2f} s vs {cc_run.wall_s:.2f} s), peak RSS "
                    f"{ours_run.peak_rss / max(cc_run.peak_rss, 1):.2f}x "
                    f"({ours_run.peak_rss / 1e6:,.0f} MB vs {cc_run.peak_rss / 1e6:,.0f} MB); "
                    f"totals ours == ccusage: {'yes' if same else 'NO'}"
                )
    return results

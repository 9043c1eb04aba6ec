"""Full migration into a fresh embedded database, beside ccusage's full scan of the same corpus.

Per corpus: ``context-cleaner migrate --json`` into a new ``chdb://`` directory, with
``--no-validate`` and with its own validation (the default)
(wall time and peak memory of the whole process tree, plus the run's own
working memory = peak minus the memory after connecting), a second run that
must insert nothing, and ccusage's ``daily --json --offline`` for the ratio.
The database totals must equal the manifest's.

The fresh migration and ccusage run ``--repeat`` times each, alternately (so a
noisy stretch of the machine falls on both); the fastest of each counts, and the
memory figures are the largest seen. The fresh migration without and with its
validation and ccusage are also timed ``--repeat`` times more, in turn, with nothing
sampling them (``harness.time_command``): the ratios of those medians are given beside
the sampled ones (the sampler's reads of ``/proc`` take CPU from a run of three processes
on two cores more than from ccusage's one).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import NamedTuple

from benchmarks.harness import (
    BenchContext,
    Result,
    RunResult,
    largest_memory,
    measure_command,
    time_command,
)

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


def _command(
    ctx: BenchContext, db: Path, *extra: str, command: str = "migrate"
) -> tuple[list[str], dict[str, str]]:
    """A context-cleaner command over the corpus into the database ``db``, and its
    environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "PREFECT_API_URL")}
    env["CONTEXT_CLEANER_CLICKHOUSE_URL"] = f"chdb://{db}"
    cmd = [
        *ctx.options.context_cleaner,
        command,
        "--source-dir",
        str(ctx.projects_dir),
        *extra,
        "--json",
    ]
    return cmd, env


def _migrate(
    ctx: BenchContext, db: Path, *extra: str, command: str = "migrate"
) -> tuple[RunResult, dict[str, object] | None]:
    cmd, env = _command(ctx, db, *extra, command=command)
    run = measure_command(cmd, env=env, timeout=ctx.options.timeout)
    try:
        return run, json.loads(run.stdout) if run.returncode == 0 else None
    except ValueError:
        return run, None


class Unsampled(NamedTuple):
    """Wall seconds of the three commands run in turn, round after round, nothing sampling."""

    plain: list[float]
    """A fresh ``migrate --no-validate``."""
    validated: list[float]
    """A fresh ``migrate`` (with its validation)."""
    ccusage: list[float]

    def ratios(self, ours: list[float]) -> list[float]:
        """Each round's ``ours`` over the same round's ccusage, sorted: a machine's load
        drifts over a benchmark, and a ratio of neighbouring runs cancels most of it."""
        return sorted(a / b for a, b in zip(ours, self.ccusage, strict=True))


def _unsampled(
    ctx: BenchContext, workdir: Path, cc_cmd: list[str] | None, cc_env: dict[str, str]
) -> Unsampled | None:
    """A fresh ``migrate --no-validate``, a fresh ``migrate`` (with its validation) and
    ccusage's scan, run in turn with nothing sampling them (None when one failed or
    ccusage is absent)."""
    if cc_cmd is None:
        return None
    plain = _command(ctx, workdir / "db-timed", "--engine", "local", "--no-validate")
    validated = _command(ctx, workdir / "db-timed", "--engine", "local")
    times: tuple[list[float], list[float], list[float]] = ([], [], [])
    for _ in range(max(1, ctx.options.repeat)):
        for (cmd, env), seconds in zip((plain, (cc_cmd, cc_env), validated), times, strict=True):
            shutil.rmtree(workdir / "db-timed", ignore_errors=True)
            took = time_command(cmd, env=env, timeout=ctx.options.timeout)
            if took is None:
                return None
            seconds.append(took)
    plain_s, theirs, checked = times
    return Unsampled(plain_s, checked, theirs)


def run(ctx: BenchContext) -> list[Result]:
    results: list[Result] = []
    want = ctx.manifest["totals"]
    assert isinstance(want, dict)
    # Beside the corpus, on its file system, as a user's database is beside their
    # transcripts (both below the home folder): the engine creates a few hundred files a
    # migration, and /tmp of the machine the results below came from took ~1 ms to create
    # one (its inode group crowded with recently deleted ones) against 17-44 us elsewhere.
    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-db-", dir=ctx.corpus_dir.parent))
    cc_cmd = (
        [*ctx.options.ccusage, "claude", "daily", "--json", "--offline"]
        if ctx.options.ccusage
        else None
    )
    cc_env = {k: v for k, v in os.environ.items() if k != "CLAUDE_CONFIG_DIR"}
    cc_env.update(TZ="UTC", CLAUDE_CONFIG_DIR=str(ctx.corpus_dir))
    try:
        fresh: list[tuple[RunResult, dict[str, object] | None]] = []
        validated: list[tuple[RunResult, dict[str, object] | None]] = []
        cc_runs: list[RunResult] = []
        for i in range(max(1, ctx.options.repeat)):
            # The migration with its own validation (what `migrate` does by default).
            shutil.rmtree(workdir / "db-validated", ignore_errors=True)
            validated.append(_migrate(ctx, workdir / "db-validated", "--engine", "local"))
            if i:
                shutil.rmtree(workdir / "db", ignore_errors=True)
            fresh.append(_migrate(ctx, workdir / "db", "--engine", "local", "--no-validate"))
            if fresh[-1][1] is None:
                break
            if cc_cmd is not None:
                cc_runs.append(measure_command(cc_cmd, env=cc_env))
        failed = [f for f in fresh if f[1] is None]
        first, doc = failed[0] if failed else min(fresh, key=lambda f: f[0].wall_s)
        largest_memory([f[0] for f in fresh], first)
        row = ctx.row(
            "migrate", "context-cleaner migrate --no-validate (fresh db)", first, per_line=True
        )
        if doc is None:
            row.failed, row.check = True, "FAILED"
            row.notes = first.stderr.decode(errors="replace").strip()[-200:]
            return [row]
        totals = doc["database_totals"]
        bad = [k for k in (*TOKEN_KEYS, "total_tokens") if totals.get(k) != want.get(k)]
        row.check = "= manifest" if not bad else "MISMATCH"
        row.failed = bool(bad)
        memory = max(float(f[1]["working_memory_mb"]) for f in fresh if f[1] is not None)  # type: ignore[arg-type]
        private = max(float(f[1]["peak_memory_usage_mb"]) for f in fresh if f[1] is not None)  # type: ignore[arg-type]
        outside = first.peak_tree_private / 2**20
        row.notes = (
            f"private peak {outside:,.0f} MiB sampled every 30 ms ({private:,.0f} MiB by the "
            f"run's own sampling); working memory {memory:,.0f} MiB; "
            f"{first.private_note()}; insert "
            f"{doc['database_insertion_time']:.1f} s; {doc['total_records_inserted']:,} records"
        )
        if bad:
            row.comparisons.append(f"migrate totals differ from the manifest in {bad}")
        results.append(row)

        best, vdoc = min(validated, key=lambda f: f[0].wall_s)
        with_check = ctx.row(
            "migrate",
            "context-cleaner migrate, with its validation (fresh db)",
            best,
            per_line=True,
            peak_rss_mb=max(f[0].peak_rss for f in validated) / 1e6,
        )
        passed = bool(vdoc and vdoc.get("validation_passed"))
        with_check.check = "passed" if passed else "FAILED"
        with_check.failed = not passed
        if vdoc:
            vmem = max(float(f[1]["working_memory_mb"]) for f in validated if f[1] is not None)  # type: ignore[arg-type]
            seconds = vdoc.get("consistency_check_results", {}).get("duration_seconds", 0.0)  # type: ignore[union-attr]
            vpeak = max(f[0].peak_tree_private for f in validated) / 2**20
            vown = max(float(f[1]["peak_memory_usage_mb"]) for f in validated if f[1] is not None)  # type: ignore[arg-type]
            with_check.notes = (
                f"private peak {vpeak:,.0f} MiB sampled every 30 ms ({vown:,.0f} MiB by the "
                f"run's own sampling); working memory {vmem:,.0f} MiB; validation {seconds:.2f} s"
            )
        results.append(with_check)

        check, report = _migrate(ctx, workdir / "db", "--full-validation", command="validate")
        checked = ctx.row("migrate", "context-cleaner validate --full-validation", check)
        checked.check = "passed" if report and report.get("passed") else "FAILED"
        checked.failed = checked.check != "passed"
        results.append(checked)

        second, doc2 = _migrate(ctx, workdir / "db", "--engine", "local")
        again = ctx.row(
            "migrate", "context-cleaner migrate (again, nothing new)", second, throughput=False
        )
        inserted = doc2.get("total_records_inserted") if doc2 else None
        again.check = "inserted 0" if inserted == 0 else f"inserted {inserted}"
        again.failed = inserted != 0
        results.append(again)

        if cc_runs:
            cc = min(cc_runs, key=lambda r: r.wall_s if r.returncode == 0 else float("inf"))
            largest_memory(cc_runs, cc)
            check_cc = "ran" if cc.returncode == 0 else "FAILED"
            cc_row = ctx.row("migrate", "ccusage daily (full scan)", cc, check=check_cc)
            cc_row.notes = (
                f"private peak {cc.peak_tree_private / 2**20:,.0f} MiB sampled every 30 ms; "
                + cc.private_note()
            )
            results.append(cc_row)
            if cc.returncode == 0 and cc.wall_s:
                row.comparisons.append(
                    f"migrate {ctx.size_label}: full migration / ccusage full scan = "
                    f"{first.wall_s / cc.wall_s:.2f}x (target <= 2x, stretch 1.5x)"
                )
                plain = _unsampled(ctx, workdir, cc_cmd, cc_env)
                if plain is not None:
                    ours, checked, theirs = (
                        statistics.median(t) for t in (plain.plain, plain.validated, plain.ccusage)
                    )
                    paired = plain.ratios(plain.validated)
                    row.comparisons.append(
                        f"migrate {ctx.size_label}, nothing sampling (medians of "
                        f"{ctx.options.repeat}): --no-validate {ours:.2f} s, with its "
                        f"validation {checked:.2f} s, ccusage {theirs:.2f} s = "
                        f"{ours / theirs:.2f}x and {checked / theirs:.2f}x; with its validation "
                        f"over the same round's ccusage: median {statistics.median(paired):.2f}x "
                        f"({', '.join(f'{r:.2f}' for r in paired)})"
                    )
                row.comparisons.append(
                    f"migrate {ctx.size_label}: migration with its validation / ccusage full "
                    f"scan = {best.wall_s / cc.wall_s:.2f}x (target <= 2x); validate "
                    f"--full-validation / ccusage = {check.wall_s / cc.wall_s:.2f}x"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results

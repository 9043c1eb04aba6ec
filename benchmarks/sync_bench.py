"""Incremental sync over the corpus, beside ccusage's full re-scan of the same history.

The corpus is hard-linked into a scratch folder (the one file that receives appends
is a real copy, so the corpus itself never changes) and migrated into a fresh
embedded database (not timed). Then:

- ``sync``, nothing new: wall time of the whole command (target < 0.5 s on 1 GB; it
  only stats files);
- 1 MB appended to one file, then ``sync``: wall time of the command, i.e. until the
  bytes are in the database (target < 1 s);
- ``sync --watch``: 1 MB appended while it runs; time from the append until the
  watcher reports the sync committed (target < 5 s);
- ccusage ``daily --json --offline`` on the same history: what a ccusage user pays
  for every refresh.

The appended lines are a generated session's lines under new message ids; the
database totals must end equal to the manifest's plus the analyser's count of
the appended bytes.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchContext, Result, measure_command, measure_repeated
from context_cleaner.testing.transcripts import generate_corpus

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
APPEND_BYTES = 1_000_000


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link every file of ``source`` into ``target`` (same filesystem), else copy."""
    for folder, _dirs, files in os.walk(source):
        out = target / Path(folder).relative_to(source)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                os.link(Path(folder) / name, out / name)
            except OSError:
                shutil.copy2(Path(folder) / name, out / name)


def _unlink_copy(path: Path) -> None:
    """Replace a hard link by a private copy (appends must not reach the corpus)."""
    tmp = path.with_name(path.name + ".copy")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


class Appender:
    """Chunks of ~1 MB of complete transcript lines whose message ids are new each time."""

    def __init__(self, scratch: Path) -> None:
        generate_corpus(scratch / "extra", 3 * APPEND_BYTES, seed=4242)
        sessions = sorted(
            (p for p in (scratch / "extra" / "projects").glob("*/*.jsonl")),
            key=lambda p: p.stat().st_size,
            reverse=True,
        )
        self.lines = [ln for p in sessions for ln in p.read_bytes().splitlines(keepends=True)]
        self.scratch = scratch
        self.count = 0

    def chunk(self) -> bytes:
        """About 1 MB of whole lines, every ``msg_`` id renamed for this chunk."""
        self.count += 1
        out, size = [], 0
        for line in self.lines:
            if size >= APPEND_BYTES:
                break
            out.append(line.replace(b'"msg_', f'"msg_b{self.count}x'.encode()))
            size += len(line)
        return b"".join(out)

    def tokens(self, chunk: bytes, cc: list[str]) -> dict[str, int]:
        """What the analyser counts in ``chunk`` alone."""
        folder = self.scratch / f"count{self.count}" / "projects" / "-p"
        folder.mkdir(parents=True)
        (folder / "c.jsonl").write_bytes(chunk)
        out = subprocess.run(
            [*cc, "analyze", "--source-dir", str(folder.parent), "--json"],
            capture_output=True,
            check=True,
        )
        totals = json.loads(out.stdout)["totals"]
        return {k: int(totals[k]) for k in (*TOKEN_KEYS, "total_tokens")}


def _status_totals(cc: list[str], env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run([*cc, "status", "--json"], env=env, capture_output=True, check=True)
    totals = json.loads(out.stdout)["totals"]
    return {k: int(totals[k]) for k in (*TOKEN_KEYS, "total_tokens")}


def _watch_latencies(
    cc: list[str], env: dict[str, str], projects: Path, target: Path, appender: Appender, n: int
) -> tuple[list[float], dict[str, int], str]:
    """Run ``sync --watch``; append ``n`` chunks; seconds from each append to its sync."""
    proc = subprocess.Popen(
        [*cc, "sync", "--watch", "--json", "--source-dir", str(projects)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    lines: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put((time.perf_counter(), json.loads(raw)))

    threading.Thread(target=read, daemon=True).start()
    added = dict.fromkeys((*TOKEN_KEYS, "total_tokens"), 0)
    latencies: list[float] = []
    try:
        lines.get(timeout=120)  # the initial sync
        time.sleep(1.5)  # the watcher is up and its first full sync is done
        while not lines.empty():
            lines.get()
        for _ in range(n):
            chunk = appender.chunk()
            for k, v in appender.tokens(chunk, cc).items():
                added[k] += v
            with target.open("ab") as out:
                out.write(chunk)
            appended = time.perf_counter()
            while True:
                at, doc = lines.get(timeout=60)
                if doc.get("records_inserted"):
                    latencies.append(at - appended)
                    break
            time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    return latencies, added, err.decode(errors="replace")


def run(ctx: BenchContext) -> list[Result]:
    cc = ctx.options.context_cleaner
    want = {k: int(ctx.manifest["totals"][k]) for k in (*TOKEN_KEYS, "total_tokens")}  # type: ignore[index]
    scratch = Path(tempfile.mkdtemp(prefix="cc-sync-bench-", dir=ctx.corpus_dir.parent))
    results: list[Result] = []
    label = ctx.size_label

    def row(tool: str, wall: float | None, **kw: Any) -> Result:
        r = Result(benchmark="sync", corpus=label, tool=tool, wall_s=wall, **kw)
        results.append(r)
        return r

    try:
        projects = scratch / "history" / "projects"
        _link_tree(ctx.projects_dir, projects)
        target = max(projects.glob("*/*.jsonl"), key=lambda p: p.stat().st_size)
        _unlink_copy(target)
        env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR",)}
        env.pop("PREFECT_API_URL", None)
        env["CONTEXT_CLEANER_CLICKHOUSE_URL"] = f"chdb://{scratch / 'db'}"
        sync = [*cc, "sync", "--source-dir", str(projects)]
        setup = measure_command(
            [*cc, "migrate", "--source-dir", str(projects), "--engine", "local"], env=env
        )
        if setup.returncode != 0:
            row("migrate (set-up)", setup.wall_s, check="FAILED", failed=True)
            return results
        first = measure_command(sync, env=env)  # after a migrate: plans from the database
        row(
            "sync, first after migrate",
            first.wall_s,
            peak_rss_mb=first.peak_rss / 1e6,
            notes=f"migrate (set-up) {setup.wall_s:.1f} s; builds the stat cache",
        )

        noop = measure_repeated(sync, max(3, ctx.options.repeat), env=env)
        files = int(ctx.manifest["files"])  # type: ignore[call-overload]
        target_s = 0.3 if ctx.manifest.get("shape") == "many-files" else 0.5
        row(
            "sync, nothing new",
            noop.wall_s,
            mb_per_s=ctx.corpus_bytes / 1e6 / noop.wall_s,
            peak_rss_mb=noop.peak_rss / 1e6,
            notes=f"{files:,} files stat'ed; {noop.private_note()}; target < {target_s} s",
            check="ok" if noop.returncode == 0 else "FAILED",
            failed=noop.returncode != 0,
        )

        appender = Appender(scratch)
        added = dict.fromkeys((*TOKEN_KEYS, "total_tokens"), 0)
        walls = []
        for _ in range(max(1, ctx.options.repeat)):
            chunk = appender.chunk()
            for k, v in appender.tokens(chunk, cc).items():
                added[k] += v
            with target.open("ab") as out:
                out.write(chunk)
            walls.append(measure_command(sync, env=env).wall_s)
        expected = {k: want[k] + added[k] for k in want}
        got = _status_totals(cc, env)
        ok = got == expected
        r = row(
            "sync, 1 MB appended to one file",
            min(walls),
            peak_rss_mb=None,
            check="= manifest + appended" if ok else "MISMATCH",
            failed=not ok,
            notes=f"runs {', '.join(f'{w:.2f}' for w in walls)} s; target < 1 s",
        )
        if not ok:
            r.comparisons.append(f"sync totals {got} != expected {expected}")

        latencies, watched, err = _watch_latencies(
            cc, env, projects, target, appender, max(1, ctx.options.repeat)
        )
        expected = {k: expected[k] + watched[k] for k in expected}
        got = _status_totals(cc, env)
        ok = got == expected and len(latencies) == max(1, ctx.options.repeat)
        r = row(
            "sync --watch, 1 MB appended",
            min(latencies) if latencies else None,
            check="= manifest + appended" if ok else "MISMATCH",
            failed=not ok,
            notes="append -> committed: "
            + ", ".join(f"{x:.2f}" for x in latencies)
            + " s; target < 5 s",
        )
        if not ok:
            r.comparisons.append(f"watch totals {got} != expected {expected}; {err[-300:]}")

        if ctx.options.ccusage:
            cc_env = {**os.environ, "CLAUDE_CONFIG_DIR": str(projects.parent), "TZ": "UTC"}
            scan = measure_repeated(
                [*ctx.options.ccusage, "claude", "daily", "--json", "--offline"],
                ctx.options.repeat,
                env=cc_env,
                timeout=ctx.options.timeout,
            )
            row(
                "ccusage daily (full re-scan)",
                scan.wall_s,
                mb_per_s=ctx.corpus_bytes / 1e6 / scan.wall_s,
                peak_rss_mb=scan.peak_rss / 1e6,
                notes="what every ccusage refresh costs",
                check="ok" if scan.returncode == 0 else "FAILED",
            )
            if scan.returncode == 0 and noop.returncode == 0:
                results[-1].comparisons.append(
                    f"sync {label}: nothing new {noop.wall_s:.2f} s, 1 MB appended "
                    f"{min(walls):.2f} s, watch {min(latencies) if latencies else float('nan'):.2f}"
                    f" s; ccusage re-scan {scan.wall_s:.2f} s "
                    f"({scan.wall_s / noop.wall_s:,.0f}x the no-op sync)"
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results

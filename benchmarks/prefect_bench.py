"""What Prefect costs: per run (running server, temporary server), per task, and throughput.

A ``prefect server start`` is started for the benchmark on a free loopback port
(its own PREFECT_HOME in tmp, analytics off). Rows:

- ``migrate --engine local`` and ``migrate --engine prefect`` (server up) of the
  corpus into fresh embedded databases: the throughput ratio (target: Prefect
  within 20 % of local). Both totals must equal the manifest's.
- ``sync`` with nothing new, ``--engine local`` / ``prefect`` (server up) /
  ``prefect`` (no PREFECT_API_URL: Prefect's temporary server): per-run cost as a
  user sees it (process start, Prefect import, flow run).
- In one process with the server up (imports done): ``HistoricalDataMigrator.run``
  and ``historical_migration_flow`` on the corpus, alternately, twice each (the
  fastest of each counts): the flow's own cost, without process start and imports.
- In one process against the server: an empty flow run (warm), and a flow of
  200 no-op tasks with the batch task's options (cache key, persisted result,
  retries): Prefect's cost per run and per task.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import BenchContext, Result, RunResult, measure_command

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
TASKS = 200

TASKS_SCRIPT = r"""
import json, sys, time
from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True, retries=3)
def noop(i: int, salt: str) -> int:
    return i

@flow
def many(n: int, salt: str) -> float:
    started = time.perf_counter()
    for i in range(n):
        noop.with_options(refresh_cache=True)(i, salt)
    return time.perf_counter() - started

if __name__ == "__main__":
    n = int(sys.argv[1])
    t = time.perf_counter(); many(0, "first"); first = time.perf_counter() - t
    t = time.perf_counter(); many(0, "warm"); empty = time.perf_counter() - t
    t = time.perf_counter(); inside = many(n, str(time.time())); full = time.perf_counter() - t
    print(json.dumps({"first_run_s": first, "empty_run_s": empty, "tasks_s": inside,
                      "run_with_tasks_s": full}))
"""


IN_PROCESS_SCRIPT = r"""
import json, shutil, sys, tempfile, time
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.orchestration.flows import historical_migration_flow
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

if __name__ == "__main__":
    source, work = sys.argv[1], tempfile.mkdtemp()
    times = {"local": [], "prefect": []}
    totals = {}
    for i in range(2):
        for kind in times:
            url = f"chdb://{work}/{kind}{i}"
            started = time.perf_counter()
            if kind == "local":
                bridge = EnhancedTokenDatabaseBridge(url)
                result = HistoricalDataMigrator(bridge_service=bridge).run([source])
            else:
                result = historical_migration_flow(source_dirs=[source], clickhouse_url=url)
            times[kind].append(time.perf_counter() - started)
            totals[kind] = result.database_totals["total_tokens"]
            shutil.rmtree(f"{work}/{kind}{i}", ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"times": times, "totals": totals}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    return env


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A ``prefect server start`` on a free port; yields its API URL."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = (home / "server.log").open("w")
    prefect = str(Path(sys.executable).with_name("prefect"))
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**_base_env(home), "PREFECT_UI_ENABLED": "false"},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(api + "/health") as r:
                if r.read().strip() == b"true":
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.5)
        yield api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _cc(ctx: BenchContext, command: str, engine: str, db: Path, env: dict[str, str]) -> RunResult:
    cmd = [*ctx.options.context_cleaner, command, "--source-dir", str(ctx.projects_dir)]
    cmd += ["--engine", engine, "--clickhouse-url", f"chdb://{db}", "--json"]
    return measure_command(cmd, env=env, timeout=ctx.options.timeout)


def _migration_row(ctx: BenchContext, tool: str, run: RunResult) -> Result:
    row = Result(
        benchmark="prefect",
        corpus=ctx.size_label,
        tool=tool,
        wall_s=run.wall_s,
        mb_per_s=ctx.corpus_bytes / 1e6 / run.wall_s,
        lines_per_s=ctx.corpus_lines / run.wall_s,
        peak_rss_mb=run.peak_rss / 1e6,
    )
    want = ctx.manifest["totals"]
    assert isinstance(want, dict)
    try:
        doc = json.loads(run.stdout) if run.returncode == 0 else None
    except ValueError:
        doc = None
    if doc is None:
        row.failed, row.check = True, "FAILED"
        row.notes = run.stderr.decode(errors="replace").strip()[-200:]
        return row
    totals = doc["database_totals"]
    bad = [k for k in (*TOKEN_KEYS, "total_tokens") if totals.get(k) != want.get(k)]
    row.check = "= manifest" if not bad else "MISMATCH"
    row.failed = bool(bad)
    row.notes = f"insert {doc['database_insertion_time']:.1f} s"
    return row


def _overhead_row(ctx: BenchContext, tool: str, run: RunResult, notes: str = "") -> Result:
    ok = run.returncode == 0
    return Result(
        benchmark="prefect",
        corpus=ctx.size_label,
        tool=tool,
        wall_s=run.wall_s,
        peak_rss_mb=run.peak_rss / 1e6,
        check="" if ok else "FAILED",
        failed=not ok,
        notes=notes if ok else run.stderr.decode(errors="replace").strip()[-200:],
    )


def _temporary(work: Path) -> dict[str, str]:
    """No PREFECT_API_URL: Prefect starts its temporary server (given time to start)."""
    (work / "temp-home").mkdir(exist_ok=True)
    env = _base_env(work / "temp-home")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    return env


def _in_process(ctx: BenchContext, env: dict[str, str]) -> list[Result]:
    """The migrator and the flow in one warm process: the flow's own cost."""
    done = measure_command(
        [sys.executable, "-c", IN_PROCESS_SCRIPT, str(ctx.projects_dir)],
        env=env,
        timeout=ctx.options.timeout,
    )
    if done.returncode != 0:
        return [_overhead_row(ctx, "in-process: migrator vs flow", done)]
    doc = json.loads(done.stdout.decode().strip().splitlines()[-1])
    want = ctx.manifest["totals"]["total_tokens"]  # type: ignore[index]
    rows = []
    for kind, tool in (
        ("local", "in-process: HistoricalDataMigrator.run"),
        ("prefect", "in-process: historical_migration_flow (server up)"),
    ):
        wall = min(doc["times"][kind])
        ok = doc["totals"][kind] == want
        rows.append(
            Result(
                benchmark="prefect",
                corpus=ctx.size_label,
                tool=tool,
                wall_s=wall,
                mb_per_s=ctx.corpus_bytes / 1e6 / wall,
                lines_per_s=ctx.corpus_lines / wall,
                check="= manifest" if ok else "MISMATCH",
                failed=not ok,
                notes="runs: " + ", ".join(f"{t:.1f} s" for t in doc["times"][kind]),
            )
        )
    ratio = (rows[1].wall_s or 0) / (rows[0].wall_s or 1)
    rows[1].comparisons.append(
        f"{ctx.size_label}: in one warm process the flow takes {ratio:.2f}x the migrator's "
        f"time ({rows[1].wall_s:.1f} s vs {rows[0].wall_s:.1f} s; target <= 1.20x)"
    )
    return rows


def run(ctx: BenchContext) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="cc-bench-prefect-"))
    results: list[Result] = []
    try:
        home = work / "home"
        home.mkdir()
        with prefect_server(home) as api:
            served = {**_base_env(home), "PREFECT_API_URL": api}
            local = _cc(ctx, "migrate", "local", work / "local", _base_env(home))
            results.append(_migration_row(ctx, "migrate --engine local", local))
            flow = _cc(ctx, "migrate", "prefect", work / "prefect", served)
            results.append(_migration_row(ctx, "migrate --engine prefect (server up)", flow))
            if not (results[-1].failed or results[-2].failed):
                ratio = flow.wall_s / local.wall_s
                results[-1].comparisons.append(
                    f"{ctx.size_label}: `migrate --engine prefect` (a new process: Prefect import, "
                    f"flow run) takes {ratio:.2f}x the local engine's time "
                    f"({flow.wall_s:.1f} s vs {local.wall_s:.1f} s)"
                )

            results += _in_process(ctx, served)
            for tool, engine, env in (
                ("sync, nothing new --engine local", "local", _base_env(home)),
                ("sync, nothing new --engine prefect (server up)", "prefect", served),
                ("sync, nothing new --engine prefect (temporary server)", "prefect", None),
            ):
                run_env = env if env is not None else _temporary(work)
                done = _cc(ctx, "sync", engine, work / "local", run_env)
                results.append(_overhead_row(ctx, tool, done))

            script = measure_command(
                [sys.executable, "-c", TASKS_SCRIPT, str(TASKS)], env=served, timeout=600
            )
            if script.returncode == 0:
                t = json.loads(script.stdout.decode().strip().splitlines()[-1])
                per_task = t["tasks_s"] / TASKS * 1000
                results.append(
                    _overhead_row(
                        ctx,
                        f"in-process: empty flow run, then {TASKS} tasks (server up)",
                        script,
                        f"first run {t['first_run_s']:.2f} s, warm run {t['empty_run_s']:.2f} s, "
                        f"{per_task:.1f} ms per task",
                    )
                )
                results[-1].comparisons.append(
                    f"Prefect per run (server up, in process, warm): {t['empty_run_s']:.2f} s; "
                    f"per task (cached key + persisted result): {per_task:.1f} ms"
                )
            else:
                results.append(_overhead_row(ctx, f"{TASKS} no-op tasks", script))
            temp = measure_command(
                [sys.executable, "-c", TASKS_SCRIPT, "0"], env=_temporary(work), timeout=600
            )
            if temp.returncode == 0:
                t = json.loads(temp.stdout.decode().strip().splitlines()[-1])
                results.append(
                    _overhead_row(
                        ctx,
                        "in-process: first flow run with the temporary server",
                        temp,
                        f"first run {t['first_run_s']:.2f} s (starts the server), "
                        f"warm run {t['empty_run_s']:.2f} s",
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results

"""A killed flow run, resumed: the batches it finished come back Cached. The CLI's --engine prefect.

Real processes: ``context-cleaner migrate --engine prefect`` runs in a subprocess
against the session's Prefect API and is SIGKILLed part-way. To stop it at a known
point the test holds the database itself (the bridge's lock) and lets the run have it
for one unit of work at a time, counting the committed files in between; it kills
the run, between two of its batches, once two files are committed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.lock import read_holder
from context_cleaner.bridge.token_bridge import query_rows

from .helpers import batch_states, database_totals, exact, task_runs

pytestmark = pytest.mark.slow

#: What two runs of the same migration print alike (the rest are ids, times and memory).
DETERMINISTIC = (
    "success",
    "dry_run",
    "total_files_found",
    "files_processed",
    "files_skipped",
    "files_failed",
    "total_tokens_migrated",
    "total_sessions_created",
    "total_records_inserted",
    "errors",
    "warnings",
    "skipped_files",
    "data_integrity_score",
    "validation_passed",
    "bytes_processed",
    "skipped_lines",
    "resumed_files",
    "database_totals",
)


def _committed_files(database: Database) -> int:
    with database.session() as client:
        if not query_rows(client, "EXISTS TABLE migration_file_tracking")[0][0]:
            return 0
        rows = query_rows(client, "SELECT uniqExact(file_path) FROM migration_file_tracking")
        return int(rows[0][0])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "context_cleaner", *args]


def test_a_run_after_a_crash_shows_finished_batches_cached(
    prefect_harness: Any, small_corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow

    projects, manifest = small_corpus
    files = int(manifest["files"])  # type: ignore[call-overload]
    url = f"chdb://{tmp_path}/db"
    log = (tmp_path / "killed-run.log").open("w")
    run = _cli(
        "migrate",
        "--engine",
        "prefect",
        "--source-dir",
        str(projects),
        "--clickhouse-url",
        url,
        "--batch-size",
        "1",
        "--parallel-workers",
        "1",
        "--json",
    )
    proc = subprocess.Popen(
        run, env=prefect_harness.env(), stdout=log, stderr=log, start_new_session=True
    )
    database = Database(url, lock_timeout=60)
    assert database.lock_path is not None
    # Stay announced as a waiter the whole time, so the run hands the database back after
    # every unit of work instead of keeping it between units (Database.held()).
    waiting = os.open(f"{database.lock_path}.wait", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(waiting, fcntl.LOCK_SH)
    committed = 0
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            with database.session():  # the run waits for the database while this block runs
                committed = _committed_files(database)
                assert committed <= files - 2, "the run was not stopped part-way"
                if committed >= 2:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    break
            # Released: wait until the run has taken the database (its note names it); it
            # gives it back at the end of that unit, since this test stays announced.
            let_go = time.monotonic()
            while (
                read_holder(database.lock_path).pid != proc.pid
                and proc.poll() is None
                and time.monotonic() - let_go < 5
            ):
                time.sleep(0.002)
    finally:
        os.close(waiting)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed-run.log").read_text()[-3000:]
    assert database_totals(url)["total_tokens"] < manifest["totals"]["total_tokens"]  # type: ignore[index]

    state = historical_migration_flow(
        source_dirs=[str(projects)],
        clickhouse_url=url,
        batch_size=1,
        parallel_workers=1,
        return_state=True,
    )
    assert state.name == "Completed"
    runs = task_runs(state.state_details.flow_run_id, expected=files + 1)
    plan = [r.state.name for r in runs if r.name.startswith("plan-batches")]
    assert plan == ["Cached"]  # the same layout, so the same batch keys
    states = batch_states(runs)
    assert sum(states.values()) == files
    # Each committed batch was recorded unless the kill fell between its commit and its record.
    assert committed - 1 <= states["Cached"] <= committed
    assert states["Completed"] == files - states["Cached"]
    assert database_totals(url) == exact(manifest["totals"])  # type: ignore[arg-type]
    assert state.result().files_skipped == committed  # the resumed files were unchanged


def test_engine_prefect_prints_what_the_local_engine_prints(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    source = str(fixtures_dir / "projects")
    outputs = {}
    for engine in ("local", "prefect"):
        url = f"chdb://{tmp_path}/{engine}"
        done = subprocess.run(
            [
                *_cli("migrate", "--engine", engine, "--source-dir", source),
                "--json",
                "--clickhouse-url",
                url,
            ],
            env=prefect_harness.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[engine] = json.loads(done.stdout)
        text = subprocess.run(
            _cli("validate", "--engine", engine, "--source-dir", source, "--clickhouse-url", url),
            env=prefect_harness.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert text.returncode == 0, text.stderr[-3000:]
        outputs[f"{engine}-validate"] = text.stdout
    local, prefect = outputs["local"], outputs["prefect"]
    assert local.keys() == prefect.keys()
    assert {k: local[k] for k in DETERMINISTIC} == {k: prefect[k] for k in DETERMINISTIC}
    assert outputs["local-validate"] == outputs["prefect-validate"]
    assert "Validation PASSED" in outputs["prefect-validate"]


def test_engine_prefect_fails_clearly_without_a_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_HOME=str(tmp_path), DO_NOT_TRACK="1"
    )
    done = subprocess.run(
        _cli("sync", "--engine", "auto", "--clickhouse-url", f"chdb://{tmp_path}/db"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "The Prefect API at http://127.0.0.1:9/api does not answer" in done.stderr
    assert "--engine local" in done.stderr
    serve = subprocess.run(
        _cli("serve"),
        env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serve.returncode == 1
    assert "prefect server start" in serve.stderr

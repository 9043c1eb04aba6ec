"""Real processes at the same time: a writer appending to transcripts, ``sync --watch``, and
repeated ``status --json`` calls. No errors anywhere, and once the writer stops the
database reaches the analyser's exact totals within a bounded wait (a correctness
bound, not a speed assertion: speed is measured in benchmarks/sync_bench.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    REPO,
    analyse,
    assert_matches_analyser,
    assistant_line,
    cli,
    cli_env,
    exact,
    hold_database,
    migrator,
    status_json,
)

WRITER = Path(__file__).with_name("_writer.py")
#: How long the database may take to catch up once the writer stopped (correctness bound).
CATCH_UP_SECONDS = 60.0

pytestmark = pytest.mark.e2e


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(predicate: Any, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the watcher exited ({proc.returncode}) while waiting: {what}"
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("mode", "stop_signal", "seconds"),
    [("events", signal.SIGTERM, 6.0), ("polling", signal.SIGINT, 3.0)],
)
def test_writer_watch_and_status_together(
    tmp_path: Path,
    small_corpus: tuple[Path, dict[str, Any]],
    db_url: str,
    mode: str,
    stop_signal: signal.Signals,
    seconds: float,
) -> None:
    target = tmp_path / "live" / "projects"
    target.mkdir(parents=True)
    out_path, err_path = tmp_path / "watch.out", tmp_path / "watch.err"
    extra = {"CONTEXT_CLEANER_WATCH_POLL": "1"} if mode == "polling" else {}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        watch = subprocess.Popen(
            cli("sync", "--watch", "--json", "--debounce", "0.5", "--source-dir", str(target)),
            env=cli_env(db_url, **extra),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    try:
        _wait_for(lambda: bool(_lines(out_path)), 60, "the initial sync", watch)
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(small_corpus[0]), str(target), "5", str(seconds)]
        )
        statuses = 0
        while writer.poll() is None:  # readers while the writer writes and the watcher syncs
            payload = status_json(db_url)
            assert payload["initialised"]
            statuses += 1
        assert writer.returncode == 0
        assert statuses >= 1

        want = exact(analyse(target).totals.model_dump())
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            payload = status_json(db_url)
            states = {f["state"] for f in payload["files"]}
            if payload["totals"] and exact(payload["totals"]) == want and states == {"synced"}:
                break
            assert watch.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, (
                f"database {payload['totals']} != analyser {want} or files {states} not all "
                f"synced after {CATCH_UP_SECONDS} s\n" + err_path.read_text()[-3000:]
            )
            time.sleep(0.5)
        assert payload["data_lag_seconds"] == 0
    finally:
        if watch.poll() is None:
            watch.send_signal(stop_signal)
        try:
            code = watch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watch.kill()
            raise
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert "stopped" in stderr and "Traceback" not in stderr
    lines = _lines(out_path)
    assert all(line["success"] for line in lines), [line for line in lines if not line["success"]]
    triggers = {line["trigger"] for line in lines}
    # A polling watcher also runs its safety-net full sync every few seconds; on a loaded machine
    # that sync can pick the writes up before a poll reports them. With events it is a minute away.
    picked_up_by = {"change"} if mode == "events" else {"change", "full"}
    assert "initial" in triggers and triggers & picked_up_by, triggers
    assert len({line["migration_id"] for line in lines}) == 1  # one run for the whole watch
    assert sum(line["files_new"] for line in lines) == len(list(target.rglob("*.jsonl")))
    assert_matches_analyser(migrator(db_url), target)


def test_watch_logs_failed_syncs_and_retries_without_dying(
    tmp_path: Path, db_url: str, small_corpus: tuple[Path, dict[str, Any]]
) -> None:
    """The database held by another process past the lock timeout: the sync fails, is
    logged and retried with backoff; once the holder lets go, the data lands."""
    target = tmp_path / "live" / "projects"
    shutil.copytree(small_corpus[0], target)
    out_path, err_path = tmp_path / "watch.out", tmp_path / "watch.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        watch = subprocess.Popen(
            cli("sync", "--watch", "--json", "--debounce", "0.2", "--source-dir", str(target)),
            env=cli_env(db_url, CONTEXT_CLEANER_LOCK_TIMEOUT="0.5"),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
    try:
        _wait_for(lambda: bool(_lines(out_path)), 60, "the initial sync", watch)
        with hold_database(db_url, tmp_path):
            victim = sorted(target.rglob("*.jsonl"))[0]
            with victim.open("ab") as out:
                out.write(assistant_line("while-locked", 77, session_id="locked"))
            _wait_for(
                lambda: any(line["trigger"] == "error" for line in _lines(out_path)),
                60,
                "a failed sync",
                watch,
            )
        _wait_for(
            lambda: any(line.get("records_inserted") for line in _lines(out_path)[1:]),
            90,
            "the retried sync",
            watch,
        )
    finally:
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(timeout=30)
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert "error: sync failed" in stderr and "in use by" in stderr and "retrying in" in stderr
    assert_matches_analyser(migrator(db_url), target)

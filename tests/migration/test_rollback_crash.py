"""Rollback is crash-safe (DESIGN §6): SIGKILL between any two of its writes, reopen, and
the database is exactly as before the rollback or exactly as after it, in every mode.

A template database holds two real migrations (the second with checkpoints). For
each mode, a copy of it is rolled back by the real command (``context-cleaner
rollback ... --yes``) told to stop before its k-th write statement
(``CONTEXT_CLEANER_PAUSE_BEFORE_WRITE=k``, which the process announces on stderr), is
SIGKILLed there, and the database is opened again: k = 1, 2, ... until the command
runs to its end, so the kill lands between every pair of its statements (in the
modes whose steps repeat, between the first ones and then every third pair). After each
kill the usage rows and the summaries agree, and every table equals the state before
or the state after, row for row. Kills at random moments and a kill of the repair
itself are tested too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge import Database
from context_cleaner.bridge.snapshot import JOURNAL, PAUSE_ENV
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.status import get_migration_status

from .helpers import (
    DATA_TABLES,
    REPO,
    bridge,
    cli_command,
    cli_env,
    dump_tables,
    pick,
    readable,
    run_cli,
)
from .test_rollback import corpus_files, write_part, write_rest

HISTORY = ("enhanced_analysis_metadata", "migration_execution_log")
SEED = 20261205


@dataclass
class Template:
    """A database (closed) with two migrations, and its table contents."""

    path: Path
    first: str
    second: str
    checkpoint: str
    after_first: dict[str, Any]
    after_second: dict[str, Any]
    at_checkpoint: dict[str, Any]
    history: dict[str, Any]


@pytest.fixture(scope="module")
def template(
    tmp_path_factory: pytest.TempPathFactory, corpus_small: tuple[Path, dict[str, Any]]
) -> Template:
    work = tmp_path_factory.mktemp("rollback_crash")
    source = corpus_small[0] / "projects"
    files = corpus_files(source)
    dest = work / "claude" / "projects"
    path = work / "template"
    url = f"chdb://{path}"
    migrator = HistoricalDataMigrator(
        bridge_service=bridge(url),
        batch_size=1,
        parallel_workers=1,
        checkpoint_interval=2,
        min_snapshot_interval=0.0,
        commit_every=0.0,
    )
    write_part(source, dest, files, 0.5)
    first = migrator.run(str(dest))
    after_first = dump_tables(url)
    write_rest(source, dest, files)
    second = migrator.run(str(dest))
    assert first.success and second.success and second.checkpoints
    checkpoint = second.checkpoints[0]
    # What the checkpoint holds: a rollback to it on a scratch copy (checked row for row
    # against the run's own progress in test_rollback.py).
    scratch = copy_database(path, work / "scratch")
    out = run_cli(
        "rollback",
        "--migration-id",
        second.migration_id,
        "--to-checkpoint",
        checkpoint,
        "--yes",
        url=f"chdb://{scratch}",
    )
    assert out.returncode == 0, out.stderr
    at_checkpoint = dump_tables(f"chdb://{scratch}")
    template = Template(
        path,
        first.migration_id,
        second.migration_id,
        checkpoint,
        after_first,
        dump_tables(url),
        at_checkpoint,
        dump_tables(url, HISTORY),
    )
    assert len({repr(s) for s in (after_first, template.after_second, at_checkpoint)}) == 3
    return template


def copy_database(template: Path, dest: Path) -> Path:
    """A copy of a closed embedded database (its folder; the lock file is per copy)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(template, dest, symlinks=True)
    return dest


#: mode -> (extra rollback arguments, the template's field holding the state after).
MODES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "complete": ((), "after_first"),
    "partial": (("--to-checkpoint", "CP"), "at_checkpoint"),
    "data-only": (("--mode", "data-only"), None),
    "schema": (("--mode", "schema"), None),
}


def rollback_args(t: Template, mode: str) -> tuple[str, ...]:
    extra = tuple(t.checkpoint if a == "CP" else a for a in MODES[mode][0])
    return ("rollback", "--migration-id", t.second, *extra, "--yes")


def expected_after(t: Template, mode: str) -> dict[str, Any] | None:
    field = MODES[mode][1]
    if mode == "data-only":
        return {table: [] for table in DATA_TABLES}
    if mode == "schema":
        return None
    assert field is not None
    return getattr(t, field)


def start_paused(args: tuple[str, ...], url: str, pause_at: int | None) -> subprocess.Popen:
    extra = {PAUSE_ENV: str(pause_at)} if pause_at is not None else {}
    return subprocess.Popen(
        cli_command(*args),
        env=cli_env(url, **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
        start_new_session=True,
    )


def kill_when_paused(proc: subprocess.Popen, timeout: float = 60) -> str | None:
    """SIGKILL ``proc`` once it says it paused; returns where, or None when it ended first."""
    assert proc.stderr is not None
    try:
        return _kill_when_paused(proc, timeout)
    finally:
        proc.stderr.close()


def _kill_when_paused(proc: subprocess.Popen, timeout: float) -> str | None:
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if readable(proc.stderr.fileno(), 0.05):
            chunk = os.read(proc.stderr.fileno(), 65536)
            seen += chunk
            if b"paused before write" in seen:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                line = seen[seen.index(b"paused before write") :].split(b"\n")[0]
                return line.decode("utf-8", "replace")
            if not chunk:
                proc.wait(timeout=60)
                assert proc.returncode == 0, seen.decode("utf-8", "replace")[-3000:]
                return None
        elif proc.poll() is not None:
            assert proc.returncode == 0, seen.decode("utf-8", "replace")[-3000:]
            return None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    raise AssertionError(f"the rollback neither paused nor ended: {seen[-2000:]!r}")


def tables_of(db: Database) -> list[str]:
    with db.session() as client:
        rows = client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY 1"
        ).result_rows
    return [r[0] for r in rows]


def assert_before_or_after(t: Template, url: str, mode: str, where: str) -> str:
    """Open the database (which finishes an interrupted rollback: the first open below),
    check that the usage rows and the summaries agree, and say whether every table equals
    the state ``before`` the rollback or the one ``after`` it (else fail)."""
    db = Database(url, lock_timeout=30)
    with db.held():  # one open engine for every read
        tables = tables_of(db)
        if JOURNAL in tables:
            with db.session() as client:
                assert client.query(f"SELECT count() FROM {JOURNAL}").result_rows == [(0,)]
        b = EnhancedTokenDatabaseBridge(db)
        if "enhanced_token_details" in tables:
            assert pick(b.get_migration_totals()) == pick(b.summary_totals()), where
        data = dump_tables(db)
        history = dump_tables(db, HISTORY)
        if data == t.after_second and history == t.history:
            return "before"
        after = expected_after(t, mode)
        if after is None:
            assert tables == [], (where, tables)
            return "after"
        assert data == after, f"{mode} killed {where}: neither before nor after"
        runs = {r["migration_id"]: r["status"] for r in b.migration_runs()}
        assert runs[t.second] == "rolled_back", (where, runs)
        assert runs[t.first] == ("rolled_back" if mode == "data-only" else "completed"), runs
        assert get_migration_status(b, t.second).status == "rolled_back"
        logged = [r for r in history["migration_execution_log"] if r[2] == "rollback"]
        assert len(logged) >= 1, where  # the rollback is recorded
    return "after"


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_a_rollback_killed_between_any_two_writes_is_before_or_after(
    template: Template, tmp_path: Path, mode: str
) -> None:
    outcomes: list[tuple[str, str]] = []
    # Every write of the modes with distinct steps; partial (the steps of complete) and
    # schema (dozens of drops) at the first writes, then every third (the suite's time).
    stride = 3 if mode in ("partial", "schema") else 1
    k = 0
    while True:
        k += 1 if k < 6 else stride
        assert k < 300, "the rollback never ran to its end"
        path = copy_database(template.path, tmp_path / f"k{k}")
        url = f"chdb://{path}"
        where = kill_when_paused(start_paused(rollback_args(template, mode), url, k))
        outcome = assert_before_or_after(template, url, mode, where or "never (it finished)")
        outcomes.append((where or "finished", outcome))
        shutil.rmtree(path)
        if where is None:
            break
    states = [o for _, o in outcomes]
    # Killed before the journal is written: as before; from then on: as after.
    assert states[-1] == "after" and "before" in states, outcomes
    first_after = states.index("after")
    assert all(s == "after" for s in states[first_after:]), outcomes
    assert len(outcomes) >= 6, outcomes  # the kills landed between many statements


@pytest.mark.slow
def test_a_killed_repair_is_finished_by_the_next_open(template: Template, tmp_path: Path) -> None:
    """Kill a data-only rollback half-way, then kill the command that repairs it half-way
    too: the open after that still ends in the after state, and `status` runs on it."""
    path = copy_database(template.path, tmp_path / "db")
    url = f"chdb://{path}"
    args = rollback_args(template, "data-only")
    assert kill_when_paused(start_paused(args, url, 4)) is not None  # one table emptied
    # The repair runs as `status` opens the database: stop it before its second write.
    repaired = kill_when_paused(start_paused(("status", "--json"), url, 2))
    assert repaired is not None and "emptying" in repaired, repaired
    out = run_cli("status", "--json", url=url)
    assert out.returncode == 0, out.stderr
    shown = {r["migration_id"]: r["status"] for r in json.loads(out.stdout)["runs"]}
    assert shown == {template.first: "rolled_back", template.second: "rolled_back"}, shown
    assert assert_before_or_after(template, url, "data-only", "repair killed") == "after"


@pytest.mark.slow
def test_rollbacks_killed_at_random_moments_are_before_or_after(
    template: Template, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    seen: list[str] = []
    for attempt in range(6):
        mode = ("complete", "data-only", "partial")[attempt % 3]
        path = copy_database(template.path, tmp_path / f"r{attempt}")
        url = f"chdb://{path}"
        proc = start_paused(rollback_args(template, mode), url, None)
        time.sleep(rng.uniform(0.3, 2.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.stderr is not None
        proc.stderr.close()
        seen.append(assert_before_or_after(template, url, mode, f"at random ({attempt})"))
        shutil.rmtree(path)
    assert seen  # each was before or after (asserted inside)


@pytest.mark.slow
def test_data_only_and_schema_refuse_unknown_ids_and_change_nothing(
    template: Template, tmp_path: Path
) -> None:
    path = copy_database(template.path, tmp_path / "db")
    url = f"chdb://{path}"
    for mode in ("data-only", "schema", "complete"):
        out = run_cli("rollback", "--migration-id", "migr-bogus", "--mode", mode, "--yes", url=url)
        assert out.returncode == 1, (mode, out.stdout, out.stderr)
        message = " ".join(out.stderr.split())
        assert "Unknown migration id 'migr-bogus'" in message, message
        assert "nothing was changed" in message and "Traceback" not in message
        assert len(out.stderr.strip().splitlines()) <= 3, out.stderr  # one message
        assert dump_tables(url) == template.after_second
        assert dump_tables(url, HISTORY) == template.history


@pytest.mark.slow
def test_a_read_only_reader_never_sees_an_interrupted_rollback(
    template: Template, tmp_path: Path
) -> None:
    """The dashboard's sessions are read-only: they cannot finish a killed rollback, so
    they are refused (transient: the page gets 503 and tries again) until a command
    that writes has finished it; never a half-rolled-back read, never an error 500."""
    from context_cleaner.bridge.exceptions import DatabaseUnavailableError
    from context_cleaner.dashboard.database_source import READ_ONLY

    path = copy_database(template.path, tmp_path / "db")
    url = f"chdb://{path}"
    assert kill_when_paused(start_paused(rollback_args(template, "data-only"), url, 4))
    reader = Database(url, settings=READ_ONLY)
    with (
        pytest.raises(DatabaseUnavailableError, match="context-cleaner status"),
        reader.session() as client,
    ):
        client.query("SELECT 1")
    out = run_cli("status", "--json", url=url)  # a command that writes finishes it
    assert out.returncode == 0, out.stderr
    with reader.session() as client:  # finished: the read-only reader reads again
        assert client.query(f"SELECT count() FROM {JOURNAL}").result_rows == [(0,)]
    assert assert_before_or_after(template, url, "data-only", "read-only reader") == "after"

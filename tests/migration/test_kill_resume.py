"""SIGKILL at random moments, then run again: exact totals, no duplicates (DESIGN §5).

Migrations of a generated corpus (small batches and frequent checkpoints, so a
kill lands between many commits) are killed with SIGKILL after a random delay
(seeded), then run to completion. The database must equal an uninterrupted
run's, the generator's manifest and the analyser, session by session.
"""

from __future__ import annotations

import json
import os
import pty
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge import Database
from context_cleaner.bridge.token_bridge import query_rows
from context_cleaner.testing.transcripts import TOKEN_KEYS

from .conftest import Target
from .helpers import (
    REPO,
    analyse,
    assert_database_equals,
    bridge,
    cli_command,
    cli_env,
    count_counted,
    pick,
    readable,
    run_json,
)

SEED = 20261128
KILLS = 5
PROGRESS = re.compile(rb"(\d+)/(\d+) files")


def migrate_args(source: Path) -> tuple[str, ...]:
    return (
        "migrate",
        "--source-dir",
        str(source),
        "--batch-size",
        "2",
        "--checkpoint-interval",
        "2",
        "--parallel-workers",
        "2",
        "--commit-every",
        "0",
    )


def start(args: tuple[str, ...], url: str, stdout: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """Start a CLI process in its own process group (so a kill reaches its workers too)."""
    return subprocess.Popen(
        cli_command(*args),
        env=cli_env(url),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )


class Watched:
    """A migration whose stderr is a terminal, so it draws its progress bar ("k/n files")."""

    def __init__(self, args: tuple[str, ...], url: str) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            cli_command(*args),
            env=cli_env(url, COLUMNS="200"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            cwd=REPO,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.seen = b""

    def files_done(self) -> tuple[int, int] | None:
        found = PROGRESS.findall(self.seen)
        return (int(found[-1][0]), int(found[-1][1])) if found else None

    def wait_for_progress(self, files: int, timeout: float = 60) -> bool:
        """Read the bar until ``files`` of this run's files are committed; False if it ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if readable(self.master, 0.02):
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal: it has ended
                    return False
                self.seen += chunk
                done = self.files_done()
                if done and done[0] >= min(files, done[1]):
                    return True
            elif self.proc.poll() is not None:
                return False
        raise AssertionError(f"no progress within {timeout} s: {self.seen[-500:]!r}")

    def kill(self) -> bool:
        """SIGKILL the run (and its workers); True when it was still running. Idempotent."""
        alive = self.proc.poll() is None
        if alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        return alive


def kill_repeatedly(args: tuple[str, ...], url: str) -> tuple[list[str], list[str]]:
    """Start and SIGKILL the migration KILLS times; returns when each kill fell, and which
    runs ended by themselves before their kill (with why)."""
    rng = random.Random(SEED)
    killed: list[str] = []
    ended: list[str] = []
    for attempt in range(KILLS):
        run = Watched(args, url)
        try:
            if attempt == 0:
                # While it starts: imports, schema, the first snapshot.
                time.sleep(rng.uniform(0.2, 1.2))
                moment = "during start-up"
            else:
                # In the batches: once a random number of this run's files are committed, plus
                # jitter (so the kill falls inside a read, an insert, a commit or a checkpoint).
                if not run.wait_for_progress(rng.randint(1, 4)):
                    run.kill()
                    ended.append(f"exit {run.proc.returncode}: {run.seen[-1500:]!r}")
                    continue
                time.sleep(rng.uniform(0.0, 0.12))
                moment = f"after {run.files_done()} files"
            if run.kill():
                killed.append(moment)
        finally:
            run.kill()
    return killed, ended


def scalar(url: str, sql: str) -> int:
    with Database(url, lock_timeout=30).session() as client:
        return int(query_rows(client, sql)[0][0])


@pytest.mark.slow
def test_sigkilled_migrations_resume_to_the_exact_totals(
    target: Target, corpus_6mb: tuple[Path, dict[str, Any]]
) -> None:
    source, manifest = corpus_6mb
    args = migrate_args(source)
    reference_url, url = target.new_url(), target.new_url()
    # The uninterrupted run goes on beside the killed ones (its own database).
    reference = start((*args, "--json"), reference_url, stdout=subprocess.PIPE)

    try:
        killed, ended = kill_repeatedly(args, url)
        assert len(killed) >= KILLS - 1, (killed, ended)
        final = run_json(*args, url=url)
        out, _ = reference.communicate(timeout=180)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.communicate(timeout=60)
    assert reference.returncode == 0
    uninterrupted = json.loads(out)
    assert uninterrupted["success"] and final["success"] and final["validation_passed"]
    # The final run resumed: it did not read every file again from its start.
    assert final["files_skipped"] + final["resumed_files"] > 0, final["consistency_check_results"]

    b, ref = bridge(url), bridge(reference_url)
    totals = b.get_migration_totals()
    assert pick(totals) == pick(ref.get_migration_totals())
    assert {k: totals[k] for k in TOKEN_KEYS} == {k: manifest["totals"][k] for k in TOKEN_KEYS}
    assert totals["records"] == manifest["kept_records"]
    assert totals["cost_usd"] == pytest.approx(ref.get_migration_totals()["cost_usd"], rel=1e-12)

    sessions = {r["session"]: pick(r) for r in b.totals_by("session")}
    assert sessions == {r["session"]: pick(r) for r in ref.totals_by("session")}
    # The manifest breaks ties between byte-identical copies (resumed sessions) by path,
    # so compare those groups by their sum and every other session on its own.
    expected = {s["session_id"]: s for s in manifest["sessions"]}
    grouped = {sid for group in manifest["session_groups"] for sid in group}
    for sid, want in expected.items():
        if sid not in grouped:
            assert sessions[sid]["total_tokens"] == want["total_tokens"], sid
    for group in manifest["session_groups"]:
        got = sum(sessions.get(sid, {"total_tokens": 0})["total_tokens"] for sid in group)
        assert got == sum(expected[sid]["total_tokens"] for sid in group if sid in expected)

    # No duplicates: one counted row per record, one stored row per key.
    report = analyse(source)
    assert count_counted(b) == report.totals.records == manifest["kept_records"]
    stored = scalar(url, "SELECT count() FROM enhanced_token_details FINAL")
    assert stored == manifest["unique_keys"]
    assert_database_equals(b, report)
    assert all(f.committed_offset == f.file_size for f in b.tracked_files())
    assert len(b.tracked_files()) == manifest["files"]

"""Sharing the embedded database: the dashboard keeps the engine open only while nobody waits."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import Server, cli_env, migrate_copy

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.lock import PROCESS_LOCKS, read_holder
from context_cleaner.dashboard.keeper import EngineKeeper


def _until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_keeper_holds_while_used_and_lets_go_when_idle(tmp_path: Path) -> None:
    database = Database(f"chdb://{tmp_path / 'db'}", lock_timeout=5)
    assert database.lock_path is not None
    keeper = EngineKeeper(database, idle=30, poll=0.02)
    try:
        keeper.touch()
        with database.session() as client:  # a request
            assert client.query("SELECT 1").result_rows == [(1,)]
        keeper.touch()  # its end
        assert keeper.holding
        assert PROCESS_LOCKS.users(database.lock_path) == 1  # the parked engine
        keeper.idle = 0.1  # no request for longer than that: let go
        assert _until(lambda: not keeper.holding)
        assert PROCESS_LOCKS.users(database.lock_path) == 0
    finally:
        keeper.close()
    disabled = EngineKeeper(database, idle=0)
    disabled.touch()
    assert not disabled.holding


@pytest.mark.slow
def test_a_waiting_command_gets_the_database(projects_dir: Path, tmp_path: Path) -> None:
    """After a request the server keeps the engine; ``status`` (lock timeout 5 s) still gets it."""
    _copy, url = migrate_copy(projects_dir, tmp_path)
    server = Server("--clickhouse-url", url).wait_ready()
    lock = Path(url.removeprefix("chdb://") + ".lock")
    try:
        with urllib.request.urlopen(server.base + "/api/totals", timeout=30) as r:
            assert r.status == 200
        assert read_holder(lock).pid == server.proc.pid  # kept open between requests
        status = subprocess.run(
            [sys.executable, "-m", "context_cleaner", "status", "--clickhouse-url", url, "--json"],
            env=cli_env(CONTEXT_CLEANER_LOCK_TIMEOUT="5"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["totals"]["total_tokens"] == 15_537_336
        with urllib.request.urlopen(server.base + "/api/totals", timeout=30) as r:
            assert json.loads(r.read())["totals"]["total_tokens"] == 15_537_336
    finally:
        err = server.stop()
    assert "Traceback" not in err, err

"""Credentials blocks, the write limit, tags, flow retries and quiet failures.

The fast tests need no server; the others run the real flows (and the CLI in
subprocesses) against the session's temporary Prefect API. The embedded engine has no
password, so the runs that must keep a password secret also use a block naming a
server that does not answer: the password reaches the driver there, and must reach
no parameter, log line, artifact or state message.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.url import DatabaseURL
from context_cleaner.errors import ConfigurationError, ContextCleanerError
from context_cleaner.orchestration.blocks import ClickHouseCredentials
from context_cleaner.settings import CREDENTIALS_ENV, DEBUG_ENV, URL_ENV, WRITE_LIMIT, Settings

from .helpers import artifacts, database_totals

SECRET = "pw-Zq81-never-shown"
CCUSAGE_TOTAL = 15_537_336
SERVER_ENV = "CONTEXT_CLEANER_TEST_CLICKHOUSE_URL"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "context_cleaner", *args]


# -- without a server --------------------------------------------------------------------------


def test_a_block_names_the_database_the_bridge_opens() -> None:
    block = ClickHouseCredentials(
        url="http://ch.example/usage",
        username="alice",
        password=SECRET,
        secure=True,
        verify=False,
        ca_cert="/etc/ssl/ca.pem",
    )
    url = block.database_url()
    assert url == DatabaseURL(
        scheme="https",
        host="ch.example",
        port=8443,
        username="alice",
        password=SECRET,
        database="usage",
        verify=False,
        ca_cert="/etc/ssl/ca.pem",
    )
    assert url.tls_options() == {"verify": False, "ca_cert": "/etc/ssl/ca.pem"}
    assert Database(url, environ={}).url == url
    assert SECRET not in url.redacted() + repr(url) + block.model_dump_json()
    given_port = ClickHouseCredentials(url="http://ch.example:9000/db", secure=True)
    assert given_port.database_url().port == 9000
    plain = ClickHouseCredentials(url="http://bob@ch.example:8123/db").database_url()
    assert (plain.username, plain.password, plain.tls_options()) == ("bob", "", {})


def test_a_url_holding_a_password_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError) as caught:
        ClickHouseCredentials(url=f"https://alice:{SECRET}@ch.example/usage")
    assert "password field" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_url_and_a_block_never_both_name_the_database() -> None:
    env = {URL_ENV: "chdb:///tmp/from-env"}
    assert Settings.from_env(env, credentials_block="db").clickhouse_url is None
    assert (
        Settings.from_env({CREDENTIALS_ENV: "db"}, clickhouse_url="chdb:///x").credentials_block
        is None
    )
    assert Settings.from_env({CREDENTIALS_ENV: "db"}).credentials_block == "db"
    with pytest.raises(ConfigurationError, match="give one"):
        Settings.from_env({}, clickhouse_url="chdb:///x", credentials_block="db")
    with pytest.raises(ConfigurationError, match="give one"):
        Settings.from_env({**env, CREDENTIALS_ENV: "db"})


def test_a_run_through_prefect_passes_the_block_name_only() -> None:
    from context_cleaner.orchestration.engine import _database_parameter, flow_parameters

    settings = Settings(credentials_block="usage-db")
    database = Database("chdb:///tmp/unused", environ={})
    for kind in ("migrate", "sync", "validate"):
        params = flow_parameters(kind, settings, database)
        assert params["credentials_block"] == "usage-db" and params["clickhouse_url"] is None
    rollback = flow_parameters("rollback", settings, database, migration_id="m", mode="complete")
    assert rollback["credentials_block"] == "usage-db"
    assert _database_parameter(settings, database) == (None, {})


def test_only_this_packages_errors_lose_their_traceback_in_prefects_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from context_cleaner.orchestration.run_guard import QuietExpected

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:
            info = sys.exc_info()
        return logging.LogRecord("prefect.task_runs", logging.ERROR, "", 0, "x", (), info)

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    quiet = QuietExpected()
    expected, defect = record(ContextCleanerError("no snapshot")), record(KeyError("bug"))
    assert quiet.filter(expected) and expected.exc_info is None
    assert quiet.filter(defect) and defect.exc_info is not None
    monkeypatch.setenv(DEBUG_ENV, "1")
    debugged = record(ContextCleanerError("no snapshot"))
    assert quiet.filter(debugged) and debugged.exc_info is not None


# -- against the Prefect API -------------------------------------------------------------------


def _run_record(flow_run_id: UUID) -> dict[str, Any]:
    """What Prefect keeps of a run: its parameters, tags, state, logs and artifacts."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        states = client.read_flow_run_states(flow_run_id)
    found = artifacts(flow_run_id)
    return {
        "run": run,
        "text": json.dumps(
            {
                "parameters": run.parameters,
                "logs": [log.message for log in logs],
                "states": [s.message for s in states],
                "artifacts": {key: str(a.data) for key, a in found.items()},
            },
            default=str,
        ),
        "logs": [log.message for log in logs],
    }


def test_a_flow_run_authenticated_by_a_block_keeps_its_password_secret(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    from prefect import get_client

    from context_cleaner.orchestration.blocks import with_credentials
    from context_cleaner.orchestration.flows import (
        incremental_sync_flow,
        rollback_flow,
        validation_flow,
    )

    embedded = f"chdb://{tmp_path}/db"
    ClickHouseCredentials(url=embedded, username="alice", password=SECRET).save(
        "cc-embedded", overwrite=True
    )
    ClickHouseCredentials(url="http://127.0.0.1:1/usage", username="alice", password=SECRET).save(
        "cc-unreachable", overwrite=True
    )
    with get_client(sync_client=True) as client:  # what the server shows of the block
        shown = client.read_block_document_by_name(
            "cc-unreachable", "clickhouse-credentials", include_secrets=False
        )
    assert SECRET not in json.dumps(shown.data, default=str)

    # The block is what the bridge opens: the password and TLS options travel in the URL.
    resolved = with_credentials(Settings(credentials_block="cc-unreachable"))
    from context_cleaner.bridge.from_settings import open_database

    assert open_database(resolved).url.password == SECRET
    assert SECRET not in str(resolved.clickhouse_url) + repr(resolved)

    synced = incremental_sync_flow(
        source_dirs=[str(fixtures_dir / "projects")],
        credentials_block="cc-embedded",
        return_state=True,
    )
    assert synced.is_completed(), synced.message
    assert database_totals(embedded)["total_tokens"] == CCUSAGE_TOTAL
    sync_run = _run_record(synced.state_details.flow_run_id)
    assert sync_run["run"].parameters["credentials_block"] == "cc-embedded"
    assert {"context-cleaner", "sync"} <= set(sync_run["run"].tags)
    assert any(tag.startswith("host:") for tag in sync_run["run"].tags)
    assert "sync-result" in sync_run["text"]

    # A database that does not answer at start: retried at flow level, then Failed quietly.
    unreachable = validation_flow.with_options(retries=1, retry_delay_seconds=0)(
        credentials_block="cc-unreachable", return_state=True
    )
    assert unreachable.is_failed()
    assert unreachable.message.startswith("Cannot reach ClickHouse at 127.0.0.1:1")
    failed_run = _run_record(unreachable.state_details.flow_run_id)
    assert failed_run["run"].run_count == 2  # the start-up failure was retried once
    assert not any("Traceback" in line for line in failed_run["logs"])

    # An expected failure after start-up is not retried, and ends with its own message.
    unknown = rollback_flow.with_options(retries=1, retry_delay_seconds=0)(
        migration_id="no-such-run", credentials_block="cc-embedded", return_state=True
    )
    assert unknown.is_failed() and unknown.message.startswith("Unknown migration id")
    unknown_run = _run_record(unknown.state_details.flow_run_id)
    assert unknown_run["run"].run_count == 1
    assert {"context-cleaner", "rollback"} <= set(unknown_run["run"].tags)

    assert unknown_run["logs"], "the run's logs were not read back"  # its task's error
    for record in (sync_run, failed_run, unknown_run):
        assert SECRET not in record["text"]


@pytest.mark.skipif(not os.environ.get(SERVER_ENV), reason=f"{SERVER_ENV} names no server")
def test_a_block_logs_in_to_a_server(prefect_harness: Any, fixtures_dir: Path) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from context_cleaner.orchestration.flows import validation_flow

    parts = urlsplit(os.environ[SERVER_ENV])
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}@{host}:{parts.port}" if parts.port else host
    ClickHouseCredentials(
        url=urlunsplit(parts._replace(netloc=netloc)), password=parts.password or None
    ).save("cc-server", overwrite=True)
    state = validation_flow(
        source_dirs=[str(fixtures_dir / "projects")],
        credentials_block="cc-server",
        return_state=True,
    )
    assert not state.message or not state.message.startswith("Cannot reach")
    assert (
        not parts.password
        or parts.password not in _run_record(state.state_details.flow_run_id)["text"]
    )


def test_two_runs_started_at_once_never_write_at_the_same_time(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two syncs of one database started together, holding the write limit as runs against
    a server's database do (no server here: the rule is widened to the embedded one)."""
    from prefect import get_client
    from prefect.concurrency.sync import concurrency

    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.orchestration import run_guard
    from context_cleaner.orchestration.flows import incremental_sync_flow

    monkeypatch.setattr(run_guard, "needs_write_slot", lambda database: True)
    url = f"chdb://{tmp_path}/db"
    files = sorted((fixtures_dir / "projects").rglob("*.jsonl"))
    sources = [tmp_path / "a", tmp_path / "b"]  # each sync has files of its own to write
    for n, file in enumerate(files):
        target = sources[n % 2] / "projects" / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
    states: list[Any] = []

    def sync(source: Path) -> None:
        run = incremental_sync_flow.with_options(retries=0)
        states.append(run(source_dirs=[str(source)], clickhouse_url=url, return_state=True))

    threads = [threading.Thread(target=sync, args=(source,)) for source in sources]
    run_guard.ensure_write_limit()
    with concurrency(WRITE_LIMIT, occupy=1, strict=True):  # both start, and wait for it
        for thread in threads:
            thread.start()
        _wait_until_running(url, runs=2)
    for thread in threads:
        thread.join(timeout=240)
    assert len(states) == 2 and all(s.is_completed() for s in states), states
    records = [
        r for r in EnhancedTokenDatabaseBridge(url).migration_runs() if r["run_kind"] == "sync"
    ]
    windows = sorted((_time(r["started_at"]), _time(r["finished_at"])) for r in records)
    assert len(windows) == 2
    assert windows[0][1] <= windows[1][0], f"the runs wrote at the same time: {windows}"
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(WRITE_LIMIT).limit == 1


def _wait_until_running(url: str, runs: int) -> None:
    """Until ``runs`` flow runs on ``url`` are Running (so both wait for the slot at once)."""
    from prefect import get_client

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            found = client.read_flow_runs(limit=50, sort="EXPECTED_START_TIME_DESC")
        running = [
            r
            for r in found
            if (r.parameters or {}).get("clickhouse_url") == url
            and r.state is not None
            and r.state.is_running()
        ]
        if len(running) >= runs:
            time.sleep(1.0)  # past the tags and the start-up check, at the slot
            return
        time.sleep(0.2)
    raise AssertionError(f"{runs} runs on {url} never ran at once")


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_expected_failures_through_prefect_print_one_error_line(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from context_cleaner.cli.main import main

    url = f"chdb://{tmp_path}/db"
    source = str(fixtures_dir / "projects")
    assert (
        main(
            ["sync", "--engine", "local", "--json", "--source-dir", source, "--clickhouse-url", url]
        )
        == 0
    )
    sync_id = json.loads(capsys.readouterr().out)["migration_id"]  # a sync keeps no snapshot
    env = prefect_harness.env()
    env.pop(DEBUG_ENV, None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_cli(*args), env=env, capture_output=True, text=True, timeout=180)

    rollback = ("rollback", "--engine", "prefect", "--migration-id", sync_id, "--yes")
    quiet = run(*rollback, "--clickhouse-url", url)
    assert quiet.returncode == 1
    errors = [line for line in quiet.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No snapshot of migration" in errors[0], quiet.stderr
    assert "Traceback" not in quiet.stderr + quiet.stdout

    loud = run("--debug", *rollback, "--clickhouse-url", url)
    assert loud.returncode == 1 and "Traceback" in loud.stderr

    down = run(
        "sync",
        "--engine",
        "prefect",
        "--clickhouse-url",
        f"http://alice:{SECRET}@127.0.0.1:1/usage",
        "--source-dir",
        str(fixtures_dir / "projects"),
    )
    assert down.returncode == 1
    errors = [line for line in down.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Cannot reach ClickHouse" in errors[0], down.stderr
    assert "Traceback" not in down.stderr + down.stdout
    assert SECRET not in down.stderr + down.stdout

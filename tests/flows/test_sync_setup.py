"""``setup_incremental_sync``: a Prefect deployment when an API answers, else the commands.

The deployment is read back from the session's real Prefect API (``prefect_harness``).
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.database import Database
from context_cleaner.orchestration.sync_setup import (
    DEPLOYMENT,
    WORK_POOL,
    interval_cron,
    setup_incremental_sync,
)
from context_cleaner.settings import API_ENV, Settings


def _read_deployment(name: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


@pytest.mark.slow
def test_with_an_api_the_sync_is_a_deployment_with_the_asked_interval(
    prefect_harness: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_ENV, prefect_harness.api_url)
    settings = Settings(source_dirs=(str(tmp_path / "projects"),))
    database = Database(f"chdb://{tmp_path / 'db'}")

    first = setup_incremental_sync(30, settings=settings, database=database)
    assert first.scheduled and first.scheduler == "prefect"
    assert first.deployment_name == f"incremental-sync/{DEPLOYMENT}"
    deployment = _read_deployment(first.deployment_name)
    assert str(deployment.id) == first.deployment_id
    assert deployment.work_pool_name == WORK_POOL
    assert deployment.entrypoint == "context_cleaner.orchestration.flows.incremental_sync_flow"
    assert deployment.parameters["source_dirs"] == [str(tmp_path / "projects")]
    assert deployment.parameters["clickhouse_url"] == f"chdb://{tmp_path / 'db'}"
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.interval == timedelta(minutes=30)
    assert schedule.schedule.anchor_date.minute == 0  # on the hour
    assert any(f"--pool {WORK_POOL}" in step for step in first.next_steps)
    assert not any("--watch" in step for step in first.next_steps)

    # Called again: the same deployment, its schedule replaced (never a second one).
    again = setup_incremental_sync(60, enable_real_time=True, settings=settings, database=database)
    assert again.deployment_id == first.deployment_id
    [schedule] = _read_deployment(first.deployment_name).schedules
    assert schedule.schedule.interval == timedelta(hours=1)
    assert again.real_time_enabled
    assert any(step.startswith("context-cleaner sync --watch") for step in again.next_steps)


def test_without_an_api_nothing_is_scheduled_and_the_commands_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_ENV, raising=False)
    settings = Settings(source_dirs=(str(tmp_path / "my projects"),))
    database = Database(f"chdb://{tmp_path / 'db'}")
    result = setup_incremental_sync(60, enable_real_time=True, settings=settings, database=database)
    assert not result.scheduled and result.scheduler == "local"
    assert result.deployment_name is None and not result.real_time_enabled
    assert f"{API_ENV} is not set" in result.message
    where = f"--source-dir '{tmp_path / 'my projects'}' --clickhouse-url chdb://{tmp_path / 'db'}"
    steps = "\n".join(result.next_steps)
    assert "prefect server start" in steps
    assert f"context-cleaner serve {where} --sync-cron '0 * * * *'" in steps
    assert f"0 * * * * context-cleaner sync {where}" in steps
    assert f"context-cleaner sync --watch {where}" in steps


def test_an_api_that_does_not_answer_is_named_and_nothing_is_scheduled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(API_ENV, f"http://127.0.0.1:{port}/api")
    result = setup_incremental_sync(7)
    assert not result.scheduled
    assert "refused" in result.message.lower()
    # 7 minutes has no cron form: no crontab line, serve without --sync-cron.
    assert interval_cron(7) is None
    assert not any("crontab" in step for step in result.next_steps)
    assert [interval_cron(m) for m in (1, 15, 60, 120, 1440)] == [
        "* * * * *",
        "*/15 * * * *",
        "0 * * * *",
        "0 */2 * * *",
        "0 0 * * *",
    ]
    with pytest.raises(Exception, match="at least 1"):
        setup_incremental_sync(0)

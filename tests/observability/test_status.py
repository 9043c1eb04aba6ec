"""get_migration_status: phase, progress, rates, errors, ETA, memory and alerts, read back from
the database during and after real runs, and by `context-cleaner status`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.status import MigrationStatus, get_migration_status

from .conftest import FixturesRun, cli, cli_env

pytestmark = pytest.mark.slow


def test_a_finished_run_reads_back_as_it_ran(fixtures_run: FixturesRun) -> None:
    migrator, result = fixtures_run.migrator, fixtures_run.result
    status = get_migration_status(migrator.bridge)  # the latest run by default
    assert isinstance(status, MigrationStatus)
    assert status.migration_id == result.migration_id
    assert (status.phase, status.status, status.progress) == ("completed", "completed", 1.0)
    assert status.files_completed == status.files_total == result.files_processed == 5
    assert status.bytes_completed == status.bytes_total == result.bytes_processed
    assert status.tokens_processed == 15_537_336
    assert status.records_inserted == result.total_records_inserted
    assert status.errors_count == 0 and status.errors == []
    assert sorted(a["alert"] for a in status.alerts) == ["high_memory_usage", "slow_processing"]
    assert status.peak_memory_mb == pytest.approx(result.peak_memory_usage_mb, abs=0.1)
    assert status.tokens_per_second > 0 and status.megabytes_per_second > 0
    assert status.estimated_completion_time is None and status.seconds_since_progress is None
    assert status.to_dict()["started_at"].startswith(result.start_time.isoformat()[:19])


def test_status_during_a_run(db_url: str, fixtures_dir: Path) -> None:
    migrator = HistoricalDataMigrator(db_url, parallel_workers=1, batch_size=1, commit_every=0.0)
    seen: list[tuple[Any, MigrationStatus | None]] = []

    def look(progress: Any) -> None:  # another reader of the same database, mid-run
        seen.append((progress, get_migration_status(migrator.bridge, progress.migration_id)))

    migrator.run(str(fixtures_dir), progress_callback=look, checkpoint_interval=1)
    first, second = seen[0][1], seen[1][1]
    assert first is not None and first.phase == "starting"  # no checkpoint written yet
    assert second is not None and second.phase == "migrating" and second.status == "running"
    assert second.files_completed == seen[0][0].files_completed == 1  # checkpoint 1
    assert second.files_total == 5 and second.files_remaining == 4
    assert 0 < second.progress < 1
    assert second.bytes_completed == seen[0][0].bytes_completed
    assert second.estimated_completion_time is not None and second.eta_seconds is not None
    assert second.memory_usage_ratio is not None and 0 < second.memory_usage_ratio < 1
    assert second.seconds_since_progress is not None and second.seconds_since_progress >= 0


def test_a_run_that_stopped_updating_is_stalled(db_url: str) -> None:
    bridge = EnhancedTokenDatabaseBridge(db_url)
    bridge.setup_migration_infrastructure()
    started = time.time()
    with bridge.writer() as w:  # what a run killed right after starting leaves behind
        w.save_run({"migration_id": "migr-killed", "run_kind": "migrate", "status": "running",
                    "started_at": started})  # fmt: skip
        w.log("migr-killed", "migrate", "start", "started", {"pending_files": 8})
    soon = get_migration_status(bridge, "migr-killed", now=started + 10)
    assert soon is not None and soon.phase == "starting" and soon.alerts == []
    assert soon.files_total == 8 and soon.progress == 0.0
    later = get_migration_status(bridge, "migr-killed", now=started + 400)
    assert later is not None and later.phase == "stalled"
    (alert,) = later.alerts
    assert alert["alert"] == "migration_stalled" and alert["derived"] is True
    assert alert["value"] >= 390 and "run the same command again" in alert["message"].lower()


def test_no_run_yet_and_unknown_runs(db_url: str) -> None:
    bridge = EnhancedTokenDatabaseBridge(db_url)
    assert get_migration_status(bridge) is None
    assert not Path(db_url.removeprefix("chdb://")).exists()  # reading created nothing
    with pytest.raises(ConfigurationError, match="migrate"):
        get_migration_status(bridge, "migr-nope")
    bridge.setup_migration_infrastructure()
    with pytest.raises(ConfigurationError, match="status` lists the recent runs"):
        get_migration_status(bridge, "migr-nope")


def test_status_command_shows_the_run_and_its_alerts(
    capsys: pytest.CaptureFixture[str], fixtures_run: FixturesRun
) -> None:
    url, result = fixtures_run.url, fixtures_run.result
    done = subprocess.run(
        cli("status", "--json", "--migration-id", result.migration_id),
        env=cli_env(url), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["migration"]["migration_id"] == result.migration_id
    assert payload["migration"]["tokens_processed"] == 15_537_336
    assert sorted(a["alert"] for a in payload["alerts"]) == ["high_memory_usage", "slow_processing"]
    assert payload["totals"]["total_tokens"] == 15_537_336  # the rest of status is still there
    from context_cleaner.cli import main

    assert main(["status", "--clickhouse-url", url]) == 0
    text = capsys.readouterr().out
    assert f"Run {result.migration_id} (migrate" in text and "high_memory_usage:" in text
    assert main(["status", "--clickhouse-url", url, "--migration-id", "migr-nope"]) == 1
    assert "No migration migr-nope" in capsys.readouterr().err

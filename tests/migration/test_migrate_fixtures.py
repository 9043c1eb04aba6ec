"""Migrating the real fixtures: the database equals the analyser and ccusage to the token.

Through the CLI (a subprocess, as a user runs it) and through
``HistoricalDataMigrator`` in this process; a second run inserts nothing; ``status
--json`` reads its totals from the database.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.migration import migrate
from context_cleaner.migration.comparison import ReadSums, read_sums
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.ledger import Ledger
from context_cleaner.migration.models import MigrationProgress

from .conftest import Target
from .helpers import analyse, assert_database_equals, bridge, pick, run_cli, run_json

pytestmark = pytest.mark.slow

FIXTURE_TOKENS = 15_537_336
FIXTURE_FILES = 5


def assert_equals_ccusage(
    url: str, expected_daily: dict[str, Any], expected_session: dict[str, Any]
) -> None:
    """Totals, days and sessions in the database equal what ccusage reports, to the token."""
    b = bridge(url)
    want = expected_daily["totals"]
    for got in (b.get_migration_totals(), b.summary_totals()):
        assert got["input_tokens"] == want["inputTokens"]
        assert got["output_tokens"] == want["outputTokens"]
        assert got["cache_creation_tokens"] == want["cacheCreationTokens"]
        assert got["cache_read_tokens"] == want["cacheReadTokens"]
        assert got["total_tokens"] == want["totalTokens"] == FIXTURE_TOKENS
        assert got["cost_usd"] == pytest.approx(want["totalCost"], rel=1e-9)
    days = {row["day"]: row for row in b.totals_by("day")}
    assert set(days) == {d["date"] for d in expected_daily["daily"]}
    for d in expected_daily["daily"]:
        got = days[d["date"]]
        assert (got["input_tokens"], got["output_tokens"]) == (d["inputTokens"], d["outputTokens"])
        assert got["cache_creation_tokens"] == d["cacheCreationTokens"]
        assert got["cache_read_tokens"] == d["cacheReadTokens"]
        assert got["total_tokens"] == d["totalTokens"]
        assert got["cost_usd"] == pytest.approx(d["totalCost"], rel=1e-9)
    sessions = {row["session"]: row for row in b.totals_by("session")}
    assert set(sessions) == {s["sessionId"] for s in expected_session["sessions"]}
    for s in expected_session["sessions"]:
        got = sessions[s["sessionId"]]
        assert got["total_tokens"] == s["totalTokens"]
        assert got["cache_read_tokens"] == s["cacheReadTokens"]
        assert got["cache_creation_tokens"] == s["cacheCreationTokens"]
        assert (got["input_tokens"], got["output_tokens"]) == (s["inputTokens"], s["outputTokens"])
        assert got["cost_usd"] == pytest.approx(s["totalCost"], rel=1e-9)
        assert got["project"] == s["projectPath"]


def test_cli_migrate_equals_ccusage_and_a_second_run_inserts_nothing(
    target: Target,
    fixtures_dir: Path,
    expected_daily: dict[str, Any],
    expected_session: dict[str, Any],
) -> None:
    url = target.new_url()
    source = str(fixtures_dir)
    first = run_json("migrate", "--source-dir", source, url=url)
    assert first["migration_id"] and first["success"] and first["validation_passed"]
    assert first["total_files_found"] == first["files_processed"] == FIXTURE_FILES
    assert first["files_failed"] == first["files_skipped"] == 0
    assert first["total_tokens_migrated"] == FIXTURE_TOKENS
    assert first["total_sessions_created"] == len(expected_session["sessions"])
    assert first["database_totals"]["total_tokens"] == FIXTURE_TOKENS
    assert first["data_integrity_score"] == 1.0
    assert first["errors"] == [] and first["skipped_lines"] == 0

    assert_database_equals(bridge(url), analyse(fixtures_dir))
    assert_equals_ccusage(url, expected_daily, expected_session)
    before = bridge(url).get_migration_totals()

    second = run_json("migrate", "--source-dir", source, url=url)
    assert second["migration_id"] != first["migration_id"]
    assert second["success"]
    assert second["total_records_inserted"] == 0
    assert second["total_tokens_migrated"] == 0
    assert second["files_processed"] == 0
    assert second["files_skipped"] == second["total_files_found"] == FIXTURE_FILES
    assert second["bytes_processed"] == 0
    assert bridge(url).get_migration_totals() == before
    assert_equals_ccusage(url, expected_daily, expected_session)

    status = run_json("status", url=url)
    assert status["initialised"] is True
    assert status["totals"] == before
    assert status["totals"]["total_tokens"] == FIXTURE_TOKENS
    assert status["sessions"] == len(expected_session["sessions"])
    assert {r["migration_id"] for r in status["runs"]} >= {
        first["migration_id"],
        second["migration_id"],
    }
    assert {r["status"] for r in status["runs"]} == {"completed"}
    assert len(status["files"]) == FIXTURE_FILES
    assert all(f["committed_offset"] == f["size"] for f in status["files"])


def test_status_of_an_empty_database_says_so(target: Target) -> None:
    url = target.new_url()
    status = run_json("status", url=url)
    assert status["initialised"] is False
    assert status["totals"] is None


def test_in_process_migrator_equals_the_analyser(
    target: Target,
    fixtures_dir: Path,
    expected_daily: dict[str, Any],
    expected_session: dict[str, Any],
) -> None:
    url = target.new_url()
    migrator = HistoricalDataMigrator(
        bridge_service=bridge(url),
        batch_size=2,
        parallel_workers=2,
        min_snapshot_interval=0.0,
        commit_every=0.0,
    )
    seen: list[MigrationProgress] = []
    result = asyncio.run(
        migrator.migrate_all_historical_data(
            str(fixtures_dir), progress_callback=seen.append, checkpoint_interval=2
        )
    )
    assert result.success and result.validation_passed and not result.dry_run
    assert result.total_files_found == result.files_processed == FIXTURE_FILES
    assert result.total_tokens_migrated == FIXTURE_TOKENS
    assert result.total_sessions_created == len(expected_session["sessions"])
    assert result.data_integrity_score == 1.0
    # Every metric is measured, not a placeholder.
    assert result.peak_memory_usage_mb > 0
    assert result.average_processing_speed_tokens_per_second > 0
    assert result.database_insertion_time > 0
    assert result.processing_duration > 0
    assert result.end_time >= result.start_time
    assert result.bytes_processed == sum(p.stat().st_size for p in fixtures_dir.rglob("*.jsonl"))
    assert result.checkpoints == ["cp1", "cp2"]  # 5 files in batches of 2: after 2 and 4
    assert [p.files_completed for p in seen] == [2, 4, 5]
    assert seen[-1].files_remaining == 0 and seen[-1].bytes_completed == result.bytes_processed
    assert all(p.migration_id == result.migration_id for p in seen)

    b = bridge(url)
    assert_database_equals(b, analyse(fixtures_dir))
    assert_equals_ccusage(url, expected_daily, expected_session)
    runs = {r["migration_id"]: r for r in b.migration_runs()}
    assert runs[result.migration_id]["status"] == "completed"
    assert runs[result.migration_id]["total_tokens"] == FIXTURE_TOKENS

    again = asyncio.run(migrator.migrate_all_historical_data(str(fixtures_dir)))
    assert again.total_records_inserted == 0 and again.total_tokens_migrated == 0
    assert again.files_skipped == again.total_files_found == FIXTURE_FILES
    assert pick(b.get_migration_totals()) == pick(result.database_totals)

    report = asyncio.run(
        migrator.validate_migration_integrity(
            full_validation=True, tolerance=0.0, source_directory=str(fixtures_dir)
        )
    )
    assert report.passed and report.variance_ratio == 0.0 and not report.session_mismatches
    assert report.sessions_checked == len(expected_session["sessions"])


def test_spec_entry_point_with_the_spec_flags(target: Target, fixtures_dir: Path) -> None:
    url = target.new_url()
    out = run_cli(
        "--source-dir",
        str(fixtures_dir),
        "--checkpoint-interval",
        "10",
        "--batch-size",
        "100",
        "--parallel-workers",
        "3",
        "--dry-run",
        module="context_cleaner.migration.historical_migrator",
        url=url,
    )
    assert out.returncode == 0, out.stderr
    assert f"Would migrate {FIXTURE_FILES} of {FIXTURE_FILES} file(s)" in out.stdout
    assert "161 records" in out.stdout
    assert "Projected time for the real migration" in out.stdout
    assert not target.exists(url)  # a dry run writes nothing

    real = run_cli(
        "--source-dir",
        str(fixtures_dir),
        "--checkpoint-interval",
        "10",
        "--batch-size",
        "100",
        "--parallel-workers",
        "3",
        "--json",
        module="context_cleaner.migration.historical_migrator",
        url=url,
    )
    assert real.returncode == 0, real.stderr
    assert bridge(url).get_migration_totals()["total_tokens"] == FIXTURE_TOKENS


def _summed_where(record: list[int], fail: bool, read: Ledger) -> ReadSums:
    """``read_sums`` noting the thread it runs on (or failing there)."""
    record.append(threading.get_ident())
    if fail:
        raise MemoryError("no memory left for the sums")
    return read_sums(read)


@pytest.mark.parametrize("fail", [False, True], ids=["summed-meanwhile", "summing-failed"])
def test_a_migration_sums_what_it_read_while_it_rebuilds_the_rollups(
    target: Target,
    fixtures_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    fail: bool,
) -> None:
    """A migration's validation sums its records on a thread of their own while the run
    rebuilds the rollups; when that fails, the run sums them itself and its validation
    still compares every record."""
    record: list[int] = []
    monkeypatch.setattr(migrate, "read_sums", functools.partial(_summed_where, record, fail))
    url = target.new_url()
    migrator = HistoricalDataMigrator(bridge_service=bridge(url), parallel_workers=2)
    result = migrator.run(str(fixtures_dir))
    assert len(record) == 1 and record[0] != threading.get_ident()
    assert result.success and result.validation_passed and result.data_integrity_score == 1.0
    report = result.consistency_check_results
    assert report["source_totals"]["total_tokens"] == FIXTURE_TOKENS
    compared = report["compared"]
    assert compared["totals"]["total_tokens"] == FIXTURE_TOKENS
    assert compared["ranges"] == report["source_files"] == FIXTURE_FILES
    assert compared["bytes"] == sum(p.stat().st_size for p in fixtures_dir.rglob("*.jsonl"))
    assert report["source_sessions"] == compared["sessions"] > 0

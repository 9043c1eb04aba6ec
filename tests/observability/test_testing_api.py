"""The spec's testing API, run for real: each function passes on sound data and each check
fails when what it checks is broken (a changed table, rows the transcripts do not hold)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from context_cleaner import ConfigurationError, EnhancedTokenCounter, HistoricalDataMigrator
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.testing import testing_api as api  # never import test_* names here
from context_cleaner.testing.transcripts import generate_transcripts

from .conftest import FixturesRun


def _failed(report: object) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.checks if not c.passed]  # type: ignore[attr-defined]


def _migrator(url: str) -> HistoricalDataMigrator:
    return HistoricalDataMigrator(url, parallel_workers=1)


@settings(max_examples=15)
@given(st.integers(0, 2**32), st.integers(1, 400_000))
def test_generated_transcripts_hold_exactly_their_expected_totals(
    tmp_path_factory: pytest.TempPathFactory, seed: int, tokens: int
) -> None:
    corpus = generate_transcripts(tmp_path_factory.mktemp("gen"), target_tokens=tokens, seed=seed)
    report = EnhancedTokenCounter([str(corpus.projects_dir)]).analyze()
    assert report.totals.model_dump(include=set(corpus.totals)) == corpus.totals
    assert report.totals.records == corpus.records
    assert {s.session_id for s in report.sessions} == corpus.sessions
    assert report.skipped_lines_total == 0 and corpus.totals["total_tokens"] >= tokens


@pytest.mark.slow
def test_end_to_end_migration(db_url: str) -> None:
    report = api.test_end_to_end_migration(_migrator(db_url), 100_000)
    assert report.passed, _failed(report)
    assert [c.name for c in report.checks] == [
        "migration succeeded",
        "database = generated totals",
        "validation passed",
        "re-run inserts nothing",
        "sync adds the appended tokens",
        "status readable",
        "complete rollback empties",
    ]
    assert report.measurements["tokens"] >= 100_000
    assert not Path(db_url.removeprefix("chdb://")).exists()  # a scratch database was used


@pytest.mark.slow
def test_performance_test_migration(db_url: str) -> None:
    report = api.performance_test_migration(_migrator(db_url), "small")
    assert report.passed, _failed(report)
    m = report.measurements
    assert m["bytes"] >= api.SCALES["small"] and m["tokens_per_second"] > 0
    assert m["records"] > 0 and m["insert_rows_per_second"] > 0 and m["peak_memory_mb"] > 0
    with pytest.raises(ConfigurationError, match="small, medium, large"):
        api.performance_test_migration(_migrator(db_url), "huge")


def test_dry_run_writes_nothing(db_url: str, fixtures_dir: Path) -> None:
    report = api.dry_run_migration(_migrator(db_url), 3, False, str(fixtures_dir))
    assert report.passed, _failed(report)
    m = report.measurements
    assert len(m["sample_files"]) == 3 and m["pending_files"] == 5
    assert m["sample_records"] > 0 and m["projected_seconds"] > 0
    assert not Path(db_url.removeprefix("chdb://")).exists()


def test_dry_run_and_schema_compatibility_on_a_migrated_database(
    fixtures_run: FixturesRun, fixtures_dir: Path
) -> None:
    report = api.dry_run_migration(fixtures_run.migrator, 2, True, str(fixtures_dir))
    assert report.passed, _failed(report)
    assert report.measurements["pending_files"] == 0  # nothing pending: whole files sampled
    names = [c["name"] for c in report.measurements["compatibility"]["checks"]]
    assert "target columns" in names and "data type mapping" in names


def test_comprehensive_data_validation(fixtures_run: FixturesRun, fixtures_dir: Path) -> None:
    report = api.comprehensive_data_validation(fixtures_run.migrator, str(fixtures_dir))
    assert report.passed, _failed(report)
    assert report.measurements["validation"]["database_totals"]["total_tokens"] == 15_537_336


@pytest.mark.slow
def test_checks_find_a_table_changed_by_hand_and_rows_no_transcript_holds(
    db_url: str, tmp_path: Path
) -> None:
    corpus = generate_transcripts(tmp_path / "c", target_tokens=50_000, seed=2)
    migrator = HistoricalDataMigrator(db_url, parallel_workers=1, validation_enabled=False)
    assert migrator.run(str(corpus.projects_dir)).success
    stray = UsageRecord(
        message_id="msg_stray", request_id="req_stray", session_id="s-stray",
        line_session_id="s-stray", project="p", file_path="p/s-stray.jsonl", line_number=1,
        byte_offset=0, timestamp_ms=1_767_600_000_000, model="claude-opus-4-6",
        is_sidechain=False, speed="", from_progress=False, input_tokens=7, output_tokens=5,
        cache_creation_5m_tokens=0, cache_creation_1h_tokens=0, cache_read_tokens=0,
        cost_usd=None,
    )  # fmt: skip
    with migrator.bridge.writer() as w:  # a row no transcript holds, no summary, no tracking
        w.insert_records([stray], "mig-stray")
        w.client.command("ALTER TABLE enhanced_token_summaries ADD COLUMN note String")
    compatibility = api.test_schema_compatibility(migrator)
    assert [c.name for c in compatibility.checks if not c.passed] == ["target columns"]
    assert "enhanced_token_summaries" in _failed(compatibility)[0]
    report = api.comprehensive_data_validation(migrator, str(corpus.projects_dir))
    assert {c.name for c in report.checks if not c.passed} == {
        "token count accuracy",
        "session completeness",
        "summaries equal the counted records",
        "every row's file is tracked",
    }


@pytest.mark.slow
def test_benchmark_migration_performance(db_url: str, tmp_path: Path) -> None:
    corpus = generate_transcripts(tmp_path / "own", target_tokens=500_000, seed=8)
    report = api.benchmark_migration_performance(
        _migrator(db_url), source_directory=str(corpus.projects_dir), expected_totals=corpus.totals
    )
    assert report.passed, _failed(report)
    m = report.measurements
    assert m["throughput"]["tokens"] == corpus.totals["total_tokens"]
    assert m["memory_mb_after_each_batch"] and 0 < m["error_rate"] < 1
    assert m["recovery_seconds"] > 0
    assert not Path(db_url.removeprefix("chdb://")).exists()

"""The flows' own outcome rules, no Prefect server: a failed run carries its result across
processes, and a run in which a failing alert fired says what to do about it."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from context_cleaner.migration.models import HistoricalMigrationResult
from context_cleaner.orchestration.flow_tasks import PrefectBatches
from context_cleaner.orchestration.flows import FlowRunFailed, _tasks_note, alerted


def _result(**fields: object) -> HistoricalMigrationResult:
    now = datetime.now(UTC)
    return HistoricalMigrationResult(
        migration_id="migr-1",
        start_time=now,
        end_time=now,
        success=True,
        dry_run=False,
        total_files_found=2,
        files_processed=2,
        files_skipped=0,
        files_failed=1,
        total_tokens_migrated=10,
        total_sessions_created=1,
        total_records_inserted=2,
        processing_duration=1.0,
        average_processing_speed_tokens_per_second=10.0,
        peak_memory_usage_mb=1.0,
        database_insertion_time=0.1,
        **fields,  # type: ignore[arg-type]
    )


def test_a_failed_flow_run_keeps_its_result_through_pickling() -> None:
    failed = pickle.loads(pickle.dumps(FlowRunFailed("2 files failed", _result())))
    assert str(failed) == "2 files failed"
    assert failed.result.migration_id == "migr-1"


def test_only_a_failing_alert_fails_the_run_and_the_message_says_what_to_do() -> None:
    assert alerted(_result(alerts_fired=["slow_processing"])) is None
    message = alerted(
        _result(
            alerts_fired=["high_error_rate"],
            skipped_lines=3,
            skipped_lines_by_reason={"invalid_json": 2, "negative_count": 1},
        )
    )
    assert message is not None
    assert message.startswith("Migration migr-1 committed everything it could read")
    assert "high_error_rate alert fired: 3 line(s)" in message
    assert "invalid_json 2, negative_count 1" in message and "1 file(s) failed" in message
    assert "context-cleaner status --migration-id migr-1" in message


def test_the_task_note_counts_run_and_cached_tasks() -> None:
    batches = PrefectBatches(4)
    batches.tasks_run, batches.tasks_cached, batches.batches_cached = 3, 1, 2
    assert _tasks_note(batches) == (
        "3 batch task(s) run, 1 cached (2 batch(es) an earlier run committed)"
    )

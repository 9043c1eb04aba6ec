"""The flows' plain parts, no Prefect server: batch layout, retry rule, reports, parameters."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.analysis.discovery import TranscriptFile
from context_cleaner.bridge.exceptions import DatabaseLockedError, SchemaError
from context_cleaner.migration.models import (
    HistoricalMigrationResult,
    SessionVariance,
    ValidationResult,
)
from context_cleaner.migration.planning import WorkItem, batches
from context_cleaner.orchestration.flow_reports import migration_table, validation_markdown
from context_cleaner.orchestration.resume_keys import (
    assign,
    group,
    item_spec,
    listing_fingerprint,
    plan_layout,
)

ROOT = Path("/corpus/projects")


def _item(n: int, start: int = 0, size: int = 1000) -> WorkItem:
    f = TranscriptFile(ROOT, ROOT / f"p/s{n}.jsonl", f"p/s{n}.jsonl", size, 7, 1, 100 + n)
    return WorkItem(f, start, 1, "new")


@given(st.lists(st.integers(0, 10), max_size=60), st.integers(1, 20))
def test_group_keeps_order_and_bounds(items: list[int], max_groups: int) -> None:
    groups = group(items, max_groups)
    assert [x for g in groups for x in g] == items
    assert len(groups) <= max_groups and all(groups)


@given(
    st.integers(0, 120),
    st.integers(1, 9),
    st.integers(1, 40),
    st.sets(st.integers(0, 119)),
    st.integers(1, 9),
)
def test_assign_does_every_pending_file_once(
    files: int, batch_size: int, max_tasks: int, done: set[int], new_batch_size: int
) -> None:
    """Whatever an earlier layout was, today's pending files are each done exactly once."""
    earlier = batches([_item(n) for n in range(files)], batch_size)
    layout = plan_layout(earlier, max_tasks)
    assert len(layout) <= max_tasks
    pending = [_item(n, start=10) for n in range(files + 5) if n not in done]
    plan = batches(pending, new_batch_size)
    chunks = assign(layout, plan, new_batch_size, 10**9, max_tasks)
    worked = [i for c in chunks for b in c.work for i in b]
    assert sorted(i.file.inode for i in worked) == sorted(i.file.inode for i in pending)
    assert len(chunks) <= max(max_tasks, len(layout) + 1)
    for c in chunks:  # a chunk's work is the part of its own files that is pending
        keys = {(s[0], s[1]) for b in c.spec for s in b}
        assert all((str(i.file.root), i.file.relative_path) in keys for b in c.work for i in b)


def test_an_unchanged_layout_maps_back_to_itself() -> None:
    plan = batches([_item(n) for n in range(30)], 4)
    layout = plan_layout(plan, 5)
    chunks = assign(layout, plan, 4, 10**9, 5)
    assert len(plan) == 8 and len(chunks) == len(layout) == 4  # two batches per task
    assert [b for c in chunks for b in c.work] == plan
    assert [[item_spec(i) for i in b] for b in plan] == [b for c in chunks for b in c.spec]


def test_listing_fingerprint_sees_growth_and_replacement() -> None:
    files = [_item(n).file for n in range(3)]
    same = listing_fingerprint(reversed(files))
    assert listing_fingerprint(files) == same
    grown = [
        *files[:2],
        TranscriptFile(ROOT, files[2].path, files[2].relative_path, 1001, 7, 1, 102),
    ]
    replaced = [
        *files[:2],
        TranscriptFile(ROOT, files[2].path, files[2].relative_path, 1000, 7, 1, 9),
    ]
    assert listing_fingerprint(grown) != same
    assert listing_fingerprint(replaced) != same


def test_only_transient_errors_are_retried() -> None:
    from prefect.states import Completed, Failed

    from context_cleaner.orchestration.flow_tasks import migrate_batch, retry_transient_only

    locked = Failed(data=DatabaseLockedError("the database is in use"))
    broken = Failed(data=SchemaError("a schema file failed"))
    assert retry_transient_only(migrate_batch, None, locked)
    assert not retry_transient_only(migrate_batch, None, broken)
    assert not retry_transient_only(migrate_batch, None, Failed(data=ValueError("bug")))
    assert not retry_transient_only(migrate_batch, None, Completed(data=[]))
    assert migrate_batch.retries == 3
    assert migrate_batch.retry_jitter_factor == 0.5
    delays = migrate_batch.retry_delay_seconds
    assert list(delays) == [2.0, 4.0, 8.0]


def test_validation_report_shows_totals_and_differences() -> None:
    totals = {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_creation_tokens": 30,
        "cache_read_tokens": 40,
        "total_tokens": 100,
        "cost_usd": 1.5,
    }
    report = ValidationResult(
        passed=False,
        tolerance=0.0,
        full_validation=True,
        source_totals=totals,
        database_totals={**totals, "cache_read_tokens": 30, "total_tokens": 90},
        token_variance=-10,
        variance_ratio=0.1,
        source_sessions=2,
        database_sessions=2,
        source_files=3,
        tracked_files=3,
        sessions_checked=2,
        session_mismatches=[SessionVariance("abc", 60, 50)],
        explanations=["1 file(s) have 400 byte(s) not yet in the database"],
    )
    text = validation_markdown(report)
    assert text.startswith("# Validation FAILED")
    assert "| total tokens | 100 | 90 |" in text
    assert "| `abc` | 60 | 50 | -10 |" in text
    assert "- 1 file(s) have 400 byte(s)" in text


def test_migration_table_rows_are_plain_values() -> None:
    now = datetime.now(UTC)
    result = HistoricalMigrationResult(
        migration_id="migr-1",
        start_time=now,
        end_time=now,
        success=True,
        dry_run=False,
        total_files_found=3,
        files_processed=3,
        files_skipped=0,
        files_failed=0,
        total_tokens_migrated=100,
        total_sessions_created=1,
        total_records_inserted=5,
        processing_duration=1.0,
        average_processing_speed_tokens_per_second=100.0,
        peak_memory_usage_mb=50.0,
        database_insertion_time=0.1,
    )
    result.database_totals = {"total_tokens": 100, "cost_usd": 0.25}
    rows = migration_table(result, "1 batch task(s) run, 0 cached")
    values = {r["field"]: r["value"] for r in rows}
    assert values["migration id"] == "migr-1"
    assert values["database total tokens"] == 100
    assert values["tasks"] == "1 batch task(s) run, 0 cached"
    assert all(isinstance(r["value"], int | float | str | bool | None) for r in rows)


def test_a_password_never_becomes_a_flow_parameter() -> None:
    from context_cleaner.bridge.database import Database
    from context_cleaner.orchestration.engine import (
        _database_parameter,
        _environment,
        flow_parameters,
    )
    from context_cleaner.settings import Settings

    settings = Settings(
        clickhouse_url="https://alice:s3cret@ch.example:8443/usage",
        batch_size=100,
        checkpoint_interval=10,
    )
    database = Database(settings.clickhouse_url, environ={})
    params = flow_parameters("migrate", settings, database)
    assert "s3cret" not in repr(params)
    assert params["clickhouse_url"] == "https://alice@ch.example:8443/usage"
    _, env = _database_parameter(settings, database)
    assert env == {"CONTEXT_CLEANER_CLICKHOUSE_PASSWORD": "s3cret"}
    before = os.environ.get("CONTEXT_CLEANER_CLICKHOUSE_PASSWORD")
    with _environment(env):
        assert os.environ["CONTEXT_CLEANER_CLICKHOUSE_PASSWORD"] == "s3cret"
    assert os.environ.get("CONTEXT_CLEANER_CLICKHOUSE_PASSWORD") == before
    embedded = settings.replace(clickhouse_url="chdb:///tmp/x")
    assert (
        flow_parameters("sync", embedded, Database(embedded.clickhouse_url))["clickhouse_url"]
        == "chdb:///tmp/x"
    )

"""The spec's MigrationMetrics and the run/batch/database spans, read back and checked against
the runs that produced them (real chDB, in-memory OpenTelemetry readers)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.exceptions import DatabaseLockedError
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.migration.commits import write_batch
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.observability.metrics import METRIC_NAMES as N

from .conftest import REPO, FixturesRun, Otel

CCUSAGE_TOTAL = 15_537_336


def _migrator(url: str, **kwargs: object) -> HistoricalDataMigrator:
    kwargs.setdefault("parallel_workers", 1)
    return HistoricalDataMigrator(url, **kwargs)  # type: ignore[arg-type]


def test_migration_metrics_equal_the_run(fixtures_run: FixturesRun) -> None:
    result, otel = fixtures_run.result, fixtures_run.otel
    assert result.success and result.files_processed == 5
    assert otel.total(N["files_processed_counter"]) == result.files_processed
    assert otel.total(N["tokens_migrated_counter"]) == result.total_tokens_migrated
    assert result.total_tokens_migrated == CCUSAGE_TOTAL
    assert otel.total(N["failed_files_counter"]) == 0
    assert otel.total(N["error_rate_counter"]) == 0
    (duration,) = otel.points(N["migration_duration_histogram"])
    assert duration.count == 1 and duration.attributes["outcome"] == "completed"
    assert duration.sum >= result.processing_duration * 0.5
    (rate,) = otel.points(N["processing_rate_gauge"])
    assert rate.value > 0
    (memory,) = otel.points(N["memory_usage_gauge"])
    assert memory.value >= result.peak_memory_usage_mb * 0.25

    (run,) = otel.finished("migration.run")
    batches = otel.finished("migration.batch")
    assert run.attributes["migration.id"] == result.migration_id
    assert run.attributes["tokens.migrated"] == CCUSAGE_TOTAL
    assert len(batches) == 3  # 5 files, 2 per batch
    assert all(b.parent.span_id == run.context.span_id for b in batches)
    assert sum(b.attributes["records_inserted"] for b in batches) == result.total_records_inserted
    assert sum(b.attributes["batch"] for b in batches) == 5
    inserts = otel.finished("INSERT enhanced_token_details")
    assert len(inserts) == 3
    parents = {s.context.span_id: s.parent for s in otel.finished()}
    writes = {i.parent.span_id for i in inserts}  # each insert runs in a unit of work ...
    assert {parents[w].span_id for w in writes} == {
        b.context.span_id for b in batches
    }  # ... of a batch
    assert sum(i.attributes["rows"] for i in inserts) == result.total_records_inserted
    # every database call of the run belongs to the run's trace
    db_spans = [s for s in otel.finished() if "db.system.name" in s.attributes]
    assert db_spans and {s.context.trace_id for s in db_spans} == {run.context.trace_id}
    latency = [
        p
        for p in otel.points(N["database_latency_histogram"])
        if p.attributes.get("db.collection.name") == "enhanced_token_details"
        and p.attributes["db.operation.name"] == "INSERT"
    ]
    assert sum(p.count for p in latency) == 3


@pytest.mark.slow
def test_a_second_run_adds_nothing_and_a_sync_adds_the_appended_tokens(
    otel: Otel, db_url: str, fixtures_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "projects"
    shutil.copytree(fixtures_dir, source, ignore=shutil.ignore_patterns("*.json"))
    migrator = _migrator(db_url)
    first = migrator.run(str(source))
    again = migrator.run(str(source))
    assert again.total_tokens_migrated == 0 and again.files_processed == 0
    assert otel.total(N["tokens_migrated_counter"]) == first.total_tokens_migrated
    (duration,) = otel.points(N["migration_duration_histogram"])
    assert duration.count == 2
    short = next(source.rglob("short.jsonl"))
    tool = next(source.rglob("tool_heavy.jsonl"))
    with short.open("ab") as out:  # a whole other transcript appended to a live one
        out.write(tool.read_bytes())
    tool.unlink()
    synced = migrator.sync(str(source))
    assert synced.success and synced.files_changed == 1
    assert otel.total(N["tokens_migrated_counter"], **{"run.kind": "sync"}) == synced.tokens_added
    assert otel.total(N["files_processed_counter"], **{"run.kind": "sync"}) == 1
    kinds = [s.attributes["run.kind"] for s in otel.finished("migration.run")]
    assert kinds == ["migrate", "migrate", "sync"]


def test_a_failed_run_is_an_error_on_its_span_and_counters(
    otel: Otel, db_url: str, tmp_path: Path
) -> None:
    with pytest.raises(SourceNotFoundError):
        _migrator(db_url).run(str(tmp_path / "nowhere"))
    assert otel.total(N["error_rate_counter"], **{"error.kind": "run"}) == 1
    (duration,) = otel.points(N["migration_duration_histogram"])
    assert duration.attributes["outcome"] == "failed"
    (run,) = otel.finished("migration.run")
    assert run.status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in run.events)


HOLD = """
import sys, time
from pathlib import Path
from context_cleaner.bridge.lock import FileLock
lock = FileLock(Path(sys.argv[1]), description="test holder")
lock.acquire(10)
Path(sys.argv[2]).touch()
time.sleep(60)
"""


@pytest.mark.slow
def test_transient_database_errors_count_as_retries(
    otel: Otel, db_url: str, tmp_path: Path
) -> None:
    database = Database(db_url, lock_timeout=0.05)
    bridge = EnhancedTokenDatabaseBridge(database)
    bridge.setup_migration_infrastructure()
    ready = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(database.lock_path), str(ready)],
        env={"PYTHONPATH": str(REPO / "src")},
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(DatabaseLockedError):
            write_batch(bridge, "mig-retry", [], [], sleep=lambda _s: None)
    finally:
        holder.kill()
        holder.wait()
    assert otel.total(N["retry_attempts_counter"]) == 2  # 3 attempts: 2 retries

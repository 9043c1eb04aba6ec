"""What every function of the testing API shares: the report, the workspace, the twin migrator.

:mod:`.testing_api` and :mod:`.benchmarking` both build on this module (and on
nothing of each other's but the one public function the API re-exports), so
the two never import each other.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from context_cleaner.analysis.fields import TOKEN_FIELDS, TOTAL_FIELDS
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.models import HistoricalMigrationResult, to_jsonable
from context_cleaner.testing.compatibility import Check, scratch_database

#: Corpus bytes per ``test_scale``.
SCALES = {"small": 2_000_000, "medium": 20_000_000, "large": 200_000_000}
TOKEN_KEYS = TOKEN_FIELDS


@dataclass
class TestReport:
    """What every function returns: named checks, whether all passed, and measurements."""

    __test__ = False  # not a pytest class

    name: str
    checks: list[Check] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    duration_seconds: float = 0.0

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(passed), detail))
        return bool(passed)

    def done(self, started: float) -> TestReport:
        self.passed = all(c.passed for c in self.checks)
        self.duration_seconds = time.perf_counter() - started
        return self

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]


DryRunResult = IntegrationTestResult = PerformanceTestResult = TestReport
PerformanceBenchmark = ValidationSuite = TestReport


@contextlib.contextmanager
def workspace(migrator: HistoricalDataMigrator, database: Database | None) -> Iterator[Any]:
    folder = Path(tempfile.mkdtemp(prefix="context-cleaner-test-"))
    try:
        with contextlib.ExitStack() as stack:
            db = database or stack.enter_context(scratch_database(migrator.bridge.database))
            yield folder, db
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def twin_migrator(
    migrator: HistoricalDataMigrator,
    db: Database,
    *,
    batch_size: int | None = None,
    commit_every: float | None = None,
) -> HistoricalDataMigrator:
    """A migrator like ``migrator`` on database ``db``."""
    bridge = EnhancedTokenDatabaseBridge(
        db, prices=migrator.bridge.prices, host=migrator.bridge.host
    )
    return HistoricalDataMigrator(
        bridge_service=bridge,
        batch_size=batch_size or migrator.batch_size,
        parallel_workers=migrator.parallel_workers,
        checkpoint_interval=migrator.checkpoint_interval,
        min_snapshot_interval=0.0,
        commit_every=migrator.commit_every if commit_every is None else commit_every,
    )


def totals_check(report: TestReport, name: str, got: dict[str, Any], want: dict[str, int]) -> bool:
    wrong = [k for k in TOTAL_FIELDS if got.get(k) != want.get(k)]
    detail = f"{got.get('total_tokens', 0):,} of {want.get('total_tokens', 0):,} tokens"
    return report.check(name, not wrong, detail + (f"; differ in {wrong}" if wrong else ""))


def measure(result: HistoricalMigrationResult) -> dict[str, Any]:
    seconds = max(result.processing_duration, 1e-9)
    return {
        "seconds": round(result.processing_duration, 3),
        "bytes": result.bytes_processed,
        "files": result.files_processed,
        "records": result.total_records_inserted,
        "tokens": result.total_tokens_migrated,
        "tokens_per_second": round(result.average_processing_speed_tokens_per_second, 1),
        "files_per_minute": round(result.files_processed * 60 / seconds, 1),
        "megabytes_per_second": round(result.bytes_processed / 1e6 / seconds, 2),
        "insert_rows_per_second": round(
            result.total_records_inserted / max(result.database_insertion_time, 1e-9), 1
        ),
        "peak_memory_mb": round(result.peak_memory_usage_mb, 1),
        "working_memory_mb": round(result.working_memory_mb, 1),
    }

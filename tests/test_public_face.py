"""The package faces: every exported name resolves, ``dir()`` lists it, and importing a face
pulls in none of the heavy dependencies (they load only when a name is first read)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from context_cleaner._lazy import _typing_imports

FACES = (
    "context_cleaner",
    "context_cleaner.testing",
)
HEAVY = ("clickhouse_connect", "chdb", "prefect", "opentelemetry", "rich", "fastapi")
SPEC_NAMES = (
    "HistoricalDataMigrator",
    "EnhancedTokenCounter",
    "EnhancedTokenDatabaseBridge",
    "MigrationMetrics",
    "MIGRATION_ALERTS",
    "HistoricalMigrationResult",
    "MigrationProgress",
    "MigrationError",
    "FileAccessError",
    "AnalysisError",
    "DatabaseError",
    "ValidationError",
    "MigrationValidationError",
    "ResourceError",
    # the spec's result types
    "SetupResult",
    "FileDiscoveryResult",
    "HistoricalMigrationResult",
    "IncrementalMigrationResult",
    "ValidationResult",
    "CompletenessResult",
    "CheckpointResult",
    "RollbackResult",
    "MigrationStatus",
    "PerformanceBenchmark",
    "SyncSetupResult",
    "DryRunResult",
    "CompatibilityResult",
    "IntegrationTestResult",
    "PerformanceTestResult",
    "ValidationSuite",
)

#: Every method the spec declares ``async`` (the migrator's; the memory manager's and the
#: connection pool's are their own classes).
SPEC_COROUTINES = (
    "migrate_all_historical_data",
    "migrate_incremental_changes",
    "validate_migration_integrity",
    "setup_migration_infrastructure",
    "discover_jsonl_files",
    "process_file_batch",
    "process_files_parallel",
    "verify_migration_completeness",
    "benchmark_migration_performance",
    "setup_incremental_sync",
    "create_migration_checkpoint",
    "save_checkpoint",
    "rollback_migration",
    "get_migration_status",
    "dry_run_migration",
    "test_schema_compatibility",
    "test_end_to_end_migration",
    "performance_test_migration",
    "comprehensive_data_validation",
)


@pytest.mark.parametrize("face", FACES)
def test_importing_a_face_loads_no_heavy_dependency(face: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {face}"],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


@pytest.mark.parametrize("face", FACES)
def test_every_exported_name_resolves_and_is_listed(face: str) -> None:
    module = importlib.import_module(face)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("face", FACES)
def test_all_lists_exactly_the_names_given_a_home(face: str) -> None:
    module = importlib.import_module(face)
    homes = _typing_imports(str(module.__file__))
    assert set(homes) == set(module.__all__) - {"__version__"}


def test_the_spec_names_come_from_the_top() -> None:
    import context_cleaner

    assert set(SPEC_NAMES) <= set(context_cleaner.__all__)
    for name in ("FileAccessError", "AnalysisError", "DatabaseError", "ValidationError"):
        assert issubclass(getattr(context_cleaner, name), context_cleaner.MigrationError)
    from context_cleaner.api import HistoricalDataMigrator
    from context_cleaner.migration import historical_migrator

    assert context_cleaner.HistoricalDataMigrator is HistoricalDataMigrator
    assert issubclass(HistoricalDataMigrator, historical_migrator.HistoricalDataMigrator)


def test_the_spec_error_tree_and_both_validation_names() -> None:
    import context_cleaner as cc

    for name in ("FileAccessError", "AnalysisError", "DatabaseError", "ResourceError"):
        assert issubclass(getattr(cc, name), cc.MigrationError)
    assert issubclass(cc.MigrationValidationError, cc.ValidationError)
    assert issubclass(cc.ValidationError, cc.MigrationError)
    error = cc.MigrationValidationError("failed", result="r", report={"passed": False})
    assert (error.result, error.report) == ("r", {"passed": False})


@pytest.mark.parametrize("name", SPEC_COROUTINES)
def test_every_spec_async_method_is_a_coroutine_on_the_migrator(name: str) -> None:
    import inspect

    from context_cleaner import HistoricalDataMigrator

    assert inspect.iscoroutinefunction(getattr(HistoricalDataMigrator, name)), name


def test_the_migration_result_takes_the_spec_fields_in_the_spec_order() -> None:
    import dataclasses
    from datetime import UTC, datetime

    from context_cleaner import HistoricalMigrationResult

    spec_order = [
        "migration_id", "start_time", "end_time", "success",
        "total_files_found", "files_processed", "files_skipped", "files_failed",
        "total_tokens_migrated", "total_sessions_created", "total_records_inserted",
        "processing_duration", "average_processing_speed_tokens_per_second",
        "peak_memory_usage_mb", "database_insertion_time",
        "errors", "warnings", "skipped_files",
        "data_integrity_score", "validation_passed", "consistency_check_results",
    ]  # fmt: skip
    positional = [f.name for f in dataclasses.fields(HistoricalMigrationResult) if not f.kw_only]
    assert positional[: len(spec_order)] == spec_order
    now = datetime.now(UTC)
    values = ["m", now, now, True, 5, 5, 0, 0, 10, 2, 3, 1.0, 10.0, 50.0, 0.1,
              [], ["w"], [], 1.0, True, {"plan": {}}]  # fmt: skip
    result = HistoricalMigrationResult(*values)
    assert [getattr(result, n) for n in spec_order] == values
    assert result.dry_run is False and result.run_id == "m"  # extras: defaulted

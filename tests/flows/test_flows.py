"""The flows under Prefect's test harness: same totals as the local engine, artifacts, caching.

Every test writes a fresh embedded database below its tmp_path and runs the real
flows against the session's temporary Prefect API (``prefect_harness``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.orchestration.resume_keys import database_epoch

from .helpers import (
    analysed_totals,
    artifacts,
    batch_states,
    database_totals,
    exact,
    task_runs,
)

pytestmark = pytest.mark.slow

CCUSAGE_TOTAL = 15_537_336
SAME_FIELDS = (
    "success",
    "total_files_found",
    "files_processed",
    "files_skipped",
    "files_failed",
    "total_tokens_migrated",
    "total_sessions_created",
    "total_records_inserted",
    "bytes_processed",
    "skipped_lines",
    "validation_passed",
    "data_integrity_score",
)


def _flow_run_id(state: Any) -> Any:
    return state.state_details.flow_run_id


def test_migration_flow_equals_the_local_engine(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow

    source = [str(fixtures_dir / "projects")]
    state = historical_migration_flow(
        source_dirs=source, clickhouse_url=f"chdb://{tmp_path}/flow", return_state=True
    )
    assert state.is_completed() and state.name == "Completed"
    flow_result = state.result()
    local_result = HistoricalDataMigrator(f"chdb://{tmp_path}/local").run(source)

    for name in SAME_FIELDS:
        assert getattr(flow_result, name) == getattr(local_result, name), name
    assert exact(flow_result.database_totals) == exact(local_result.database_totals)
    assert database_totals(f"chdb://{tmp_path}/flow")["total_tokens"] == CCUSAGE_TOTAL
    assert database_totals(f"chdb://{tmp_path}/flow") == analysed_totals(source[0])


def test_migration_flow_tasks_and_artifacts(
    prefect_harness: Any, small_corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow

    projects, manifest = small_corpus
    url = f"chdb://{tmp_path}/db"
    state = historical_migration_flow(
        source_dirs=[str(projects)],
        clickhouse_url=url,
        batch_size=4,
        parallel_workers=2,
        return_state=True,
    )
    assert state.name == "Completed"
    result = state.result()
    assert database_totals(url) == exact(manifest["totals"])  # type: ignore[arg-type]
    batches = -(-int(manifest["files"]) // 4)  # type: ignore[call-overload]
    runs = task_runs(_flow_run_id(state), expected=batches + 1)
    assert batch_states(runs) == {"Completed": batches}
    plan = [r for r in runs if r.name.startswith("plan-batches")]
    assert len(plan) == 1 and plan[0].state.name == "Completed"

    found = artifacts(_flow_run_id(state))
    assert found["migration-progress"].type == "progress"
    assert float(found["migration-progress"].data) == pytest.approx(100.0)
    table = found["migration-result"]
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    values = {r["field"]: r["value"] for r in rows}
    assert values["migration id"] == result.migration_id
    assert values["database total tokens"] == manifest["totals"]["total_tokens"]  # type: ignore[index]
    assert values["tasks"].startswith(f"{batches} batch task(s) run, 0 cached")

    again = historical_migration_flow(
        source_dirs=[str(projects)], clickhouse_url=url, batch_size=4, return_state=True
    )
    assert again.name == "Completed"
    assert again.result().total_records_inserted == 0
    runs = task_runs(_flow_run_id(again), expected=batches + 1)
    assert batch_states(runs) == {"Cached": batches}
    assert database_totals(url) == exact(manifest["totals"])  # type: ignore[arg-type]


def test_small_batch_tasks_keep_both_rollups_equal_to_the_usage_rows(
    prefect_harness: Any, small_corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Tasks of 4 files are units of their own: a resumed session's copies of earlier
    messages arrive in a later unit than the originals and take their records (rule 3),
    while background merges drop the originals' rows. Each rollup group must still equal
    the counted records (the run's own validation checks the totals)."""
    from context_cleaner.bridge.buckets import rollup_differences
    from context_cleaner.bridge.database import Database
    from context_cleaner.orchestration.flows import historical_migration_flow

    projects, manifest = small_corpus
    url = f"chdb://{tmp_path}/db"
    result = historical_migration_flow(
        source_dirs=[str(projects)], clickhouse_url=url, batch_size=4, parallel_workers=2
    )
    assert result.validation_passed
    with Database(url).session() as client:
        differences = rollup_differences(client)
    assert differences == {"enhanced_token_summaries": [], "enhanced_token_buckets": []}
    assert database_totals(url) == exact(manifest["totals"])  # type: ignore[arg-type]


def test_rollback_starts_a_new_cache_epoch(
    prefect_harness: Any, small_corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """After a rollback the cached batches must not claim rows the database lost."""
    from context_cleaner.orchestration.flows import historical_migration_flow, rollback_flow

    projects, manifest = small_corpus
    url = f"chdb://{tmp_path}/db"
    first = historical_migration_flow(
        source_dirs=[str(projects)], clickhouse_url=url, batch_size=10
    )
    epoch = database_epoch(EnhancedTokenDatabaseBridge(url))
    undone = rollback_flow(migration_id=first.migration_id, mode="complete", clickhouse_url=url)
    assert undone.mode == "complete"
    assert database_epoch(EnhancedTokenDatabaseBridge(url)) != epoch
    assert database_totals(url)["total_tokens"] == 0
    state = historical_migration_flow(
        source_dirs=[str(projects)], clickhouse_url=url, batch_size=10, return_state=True
    )
    assert state.name == "Completed"
    batches = -(-int(manifest["files"]) // 10)  # type: ignore[call-overload]
    runs = task_runs(_flow_run_id(state), expected=batches + 1)
    assert batch_states(runs) == {"Completed": batches}
    assert database_totals(url) == exact(manifest["totals"])  # type: ignore[arg-type]


def test_a_failed_sync_ends_failed(
    prefect_harness: Any, small_corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import FlowRunFailed, incremental_sync_flow

    projects, _ = small_corpus
    source = tmp_path / "projects"
    shutil.copytree(projects, source)
    project = next(p for p in source.iterdir() if p.is_dir())
    os.symlink(tmp_path / "gone.jsonl", project / "vanished.jsonl")  # cannot be read
    url = f"chdb://{tmp_path}/db"
    state = incremental_sync_flow(source_dirs=[str(source)], clickhouse_url=url, return_state=True)
    assert state.is_failed() and state.name == "Failed"
    with pytest.raises(FlowRunFailed) as caught:
        state.result()
    result = caught.value.result
    assert not result.success
    assert any("vanished.jsonl" in e for e in result.errors)
    assert database_totals(url) == analysed_totals(source)  # what could be read is committed


def test_validation_flow_reports_and_fails_on_a_difference(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow, validation_flow

    source = tmp_path / "projects"
    shutil.copytree(fixtures_dir / "projects", source)
    url = f"chdb://{tmp_path}/db"
    historical_migration_flow(source_dirs=[str(source)], clickhouse_url=url)
    passed = validation_flow(
        source_dirs=[str(source)], clickhouse_url=url, full_validation=True, return_state=True
    )
    assert passed.name == "Completed" and passed.result().passed
    report = artifacts(_flow_run_id(passed))["validation-report"]
    assert report.type == "markdown" and report.data.startswith("# Validation PASSED")
    assert f"| total tokens | {CCUSAGE_TOTAL:,} | {CCUSAGE_TOTAL:,} |" in report.data

    transcript = max(source.rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    lines = transcript.read_text().splitlines(keepends=True)
    usage = next(line for line in lines if '"usage"' in line and '"id"' in line)
    record = json.loads(usage)
    record["message"]["id"] = "msg_appended_after_the_migration"
    with transcript.open("a") as f:
        f.write(json.dumps(record) + "\n")
    pending = validation_flow(
        source_dirs=[str(source)], clickhouse_url=url, tolerance=0.0, return_state=True
    )
    assert pending.name == "Completed"  # bytes not synced yet are pending, not a variance
    report = artifacts(_flow_run_id(pending))["validation-report"]
    assert "context-cleaner sync" in report.data  # the report says what to run

    from context_cleaner.bridge.database import Database

    with Database(url).session() as client:  # a row deleted behind the tool's back
        client.command(
            "DELETE FROM enhanced_token_details WHERE message_id = "
            f"'{json.loads(usage)['message']['id']}'"
        )
    failed = validation_flow(
        source_dirs=[str(source)], clickhouse_url=url, tolerance=0.0, return_state=True
    )
    assert failed.is_failed()
    report = artifacts(_flow_run_id(failed))["validation-report"]
    assert report.data.startswith("# Validation FAILED")
    assert "migrate --force" in report.data  # the report says how to repair it

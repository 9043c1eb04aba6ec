"""The specification's Python API, used the way the specification reads.

One script, written as the spec's code blocks are (package-root imports, a
clickhouse-connect chDB client, every coroutine awaited, the spec's argument names),
runs once per module on a copy of the real fixture transcripts (docs/spec-conformance.md
maps each block to its code). The tests below check what each step returned: the
migration equals ccusage to the token, validation and the five completeness checks
pass, a checkpoint is rolled back to, the hourly sync is set up, the testing API runs
on the migrator, and the event loop kept running while the migration ran.

chDB opens one directory per process: the whole module shares one client (the
testing API's scratch databases are databases on that client).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

FIXTURE_TOKENS = 15_537_336
NEW_ID = "msg_spec_conformance_new"


def _new_line(source: Path, message_id: str) -> bytes:
    """A usage line of ``source`` as a new response (its own message id)."""
    for raw in source.read_bytes().splitlines():
        line = json.loads(raw)
        if isinstance((line.get("message") or {}).get("usage"), dict):
            line["message"]["id"] = message_id
            return json.dumps(line).encode() + b"\n"
    raise AssertionError(f"no usage line in {source}")


async def _spec_script(source: str, db: str) -> dict[str, Any]:
    """The spec, followed literally (what each step returned is kept for the tests)."""
    import clickhouse_connect

    from context_cleaner import (
        EnhancedTokenCounter,
        EnhancedTokenDatabaseBridge,
        HistoricalDataMigrator,
    )

    out: dict[str, Any] = {}
    clickhouse_client = clickhouse_connect.get_client(dsn=f"chdb://{db}")
    out["client"] = clickhouse_client
    token_counter = EnhancedTokenCounter([source])
    bridge_service = EnhancedTokenDatabaseBridge(f"chdb://{db}")
    migrator = HistoricalDataMigrator(
        clickhouse_client,
        token_counter,
        bridge_service,
        batch_size=100,
        parallel_workers=1,  # read in this process: worker processes cost seconds per run here
        validation_enabled=True,
    )
    out["migrator"], out["bridge"] = migrator, bridge_service

    # Phase 1
    out["setup"] = await migrator.setup_migration_infrastructure()
    # Phase 2
    out["discovery"] = await migrator.discover_jsonl_files(source, file_pattern="*.jsonl")
    out["dry_run"] = await migrator.dry_run_migration(sample_size=10, validate_all_operations=True)
    out["compatibility"] = await migrator.test_schema_compatibility()

    progress: list[Any] = []

    async def progress_callback(update: Any) -> None:  # a coroutine: awaited on this loop
        progress.append(update)

    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:  # runs only while the event loop is free
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    out["migration"] = await migrator.migrate_all_historical_data(
        source_directory=source,
        dry_run=False,
        progress_callback=progress_callback,
        checkpoint_interval=10,
    )
    done.set()
    await ticking
    out["progress"], out["ticks"] = progress, ticks
    out["totals_after_migration"] = bridge_service.get_migration_totals()

    # Phase 3
    out["validation"] = await migrator.validate_migration_integrity(
        sample_size=100, full_validation=True, tolerance=0.001
    )
    out["completeness"] = await migrator.verify_migration_completeness()
    migration_id = out["migration"].migration_id
    out["status"] = await migrator.get_migration_status(migration_id)

    # Recovery: a checkpoint, new data, a rollback to the checkpoint
    out["checkpoint"] = await migrator.create_migration_checkpoint(
        migration_id,
        completed_files=[f.path for f in out["discovery"].files],
        current_state={"tokens_processed": out["migration"].total_tokens_migrated},
    )
    since = datetime.now(UTC)
    project = next(Path(source).iterdir())
    session = next(project.glob("*.jsonl"))
    with session.open("ab") as f:  # a response already in the database, read again
        f.write(_new_line(session, _first_id(session)))
    fresh = project / "spec-new-session.jsonl"
    fresh.write_bytes(_new_line(session, NEW_ID))  # a new response in a new session
    # two coroutines awaited together: they take turns
    out["incremental"], out["incremental_again"] = await asyncio.gather(
        migrator.migrate_incremental_changes(since=since),
        migrator.migrate_incremental_changes(
            since=since, modified_files_only=True, force_reanalysis=False
        ),
    )
    out["totals_after_sync"] = bridge_service.get_migration_totals()
    out["rollback"] = await migrator.rollback_migration(
        migration_id, rollback_to_checkpoint=out["checkpoint"].checkpoint
    )
    out["totals_after_rollback"] = bridge_service.get_migration_totals()
    out["batch"] = await migrator.process_file_batch(file_batch=[str(fresh)], batch_id="b1")
    out["totals_after_batch"] = bridge_service.get_migration_totals()
    out["parallel_files"] = [str(fresh), str(session)]
    out["parallel"] = await migrator.process_files_parallel(out["parallel_files"], max_workers=3)
    out["suite"] = await migrator.comprehensive_data_validation()

    # Phase 4
    out["sync_setup"] = await migrator.setup_incremental_sync(
        sync_interval_minutes=60, enable_real_time=False
    )

    # Testing strategy (scratch databases on the same client)
    out["end_to_end"] = await migrator.test_end_to_end_migration(test_data_size=20_000)
    out["performance"] = await migrator.performance_test_migration(test_scale="small")
    out["benchmark"] = await migrator.benchmark_migration_performance(source_directory=source)
    return out


def _first_id(path: Path) -> str:
    for raw in path.read_bytes().splitlines():
        line = json.loads(raw)
        message = line.get("message") or {}
        if isinstance(message.get("usage"), dict) and message.get("id"):
            return str(message["id"])
    raise AssertionError(f"no message id in {path}")


@pytest.fixture(scope="module")
def spec_run(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("spec")
    source = base / "projects"
    shutil.copytree(fixtures_dir / "projects", source)
    out = asyncio.run(_spec_script(str(source), str(base / "db")))
    out["source"] = source
    yield out
    out["client"].close()


def test_the_client_is_the_migrators_and_the_bridge_is_the_bridge(spec_run: dict) -> None:
    from context_cleaner.bridge.given_client import ClientDatabase

    migrator, bridge = spec_run["migrator"], spec_run["bridge"]
    assert migrator.bridge_service is bridge
    assert isinstance(bridge.database, ClientDatabase)
    assert migrator.clickhouse_client is spec_run["client"]
    assert set(spec_run["setup"].tables) >= {
        "enhanced_token_summaries",
        "enhanced_token_details",
        "enhanced_analysis_metadata",
        "migration_execution_log",
        "migration_file_tracking",
    }


def test_discovery_catalogues_files_and_sessions(spec_run: dict) -> None:
    found = spec_run["discovery"]
    assert found.total_files == 5 and found.pending_bytes == found.total_bytes > 0
    sessions = {(f.project, f.session_id) for f in found.files}
    assert found.estimated_sessions == len(sessions) == 3  # subagents belong to their session


def test_the_migration_equals_ccusage(spec_run: dict, expected_daily: dict) -> None:
    result = spec_run["migration"]
    want = expected_daily["totals"]
    got = spec_run["totals_after_migration"]
    assert result.success and result.validation_passed and result.data_integrity_score == 1.0
    assert result.total_tokens_migrated == got["total_tokens"] == want["totalTokens"]
    assert got["total_tokens"] == FIXTURE_TOKENS
    assert (got["input_tokens"], got["output_tokens"]) == (
        want["inputTokens"],
        want["outputTokens"],
    )
    assert got["cache_creation_tokens"] == want["cacheCreationTokens"]
    assert got["cache_read_tokens"] == want["cacheReadTokens"]
    assert got["cost_usd"] == pytest.approx(want["totalCost"], rel=1e-9)
    assert spec_run["progress"] and spec_run["progress"][-1].files_remaining == 0


def test_the_event_loop_ran_while_the_migration_did(spec_run: dict) -> None:
    assert spec_run["ticks"] >= 3


def test_validation_and_the_five_completeness_checks_pass(spec_run: dict) -> None:
    assert spec_run["validation"].passed and spec_run["validation"].token_variance == 0
    completeness = spec_run["completeness"]
    assert [c.name for c in completeness.checks] == [
        "token count reconciliation",
        "session count verification",
        "file processing confirmation",
        "data consistency across tables",
        "referential integrity",
    ]
    assert completeness.complete, completeness.checks
    assert completeness.source_total_tokens == completeness.database_total_tokens == FIXTURE_TOKENS
    status = spec_run["status"]
    assert status.phase == "completed" and status.progress == 1.0


def test_incremental_sync_adds_the_databases_growth(spec_run: dict) -> None:
    first, second = spec_run["incremental"], spec_run["incremental_again"]
    grown = spec_run["totals_after_sync"]["total_tokens"] - FIXTURE_TOKENS
    assert grown > 0
    # the re-read response adds nothing; the new one adds its tokens, once between the two
    assert first.tokens_added + second.tokens_added == grown
    assert first.records_inserted + second.records_inserted == 1


def test_rollback_to_a_checkpoint_made_through_the_api(spec_run: dict) -> None:
    checkpoint, rollback = spec_run["checkpoint"], spec_run["rollback"]
    assert checkpoint.success and checkpoint.snapshot_id.endswith(checkpoint.checkpoint)
    assert rollback.success and rollback.mode == "partial"
    assert rollback.snapshot == checkpoint.snapshot_id
    assert spec_run["totals_after_rollback"]["total_tokens"] == FIXTURE_TOKENS
    # the rolled-back file is read again by a batch; the database is whole and consistent
    batch = spec_run["batch"]
    assert batch.files_processed == 1 and batch.records_inserted == 1
    assert spec_run["totals_after_batch"] == spec_run["totals_after_sync"]
    # the new file is committed already; the other's appended line (rolled back) is read
    # again, a response the database holds: it changes nothing
    parallel = spec_run["parallel"]
    assert [r.files for r in parallel] == [[path] for path in spec_run["parallel_files"]]
    assert [r.files_processed for r in parallel] == [0, 1]
    assert sum(r.net.get("records", 0) for r in parallel) == 0
    assert spec_run["suite"].passed, spec_run["suite"].checks


def test_the_hourly_sync_is_set_up(spec_run: dict) -> None:
    setup = spec_run["sync_setup"]
    assert setup.sync_interval_minutes == 60 and not setup.real_time_enabled
    assert setup.schedule == "every 60 minutes"
    if not setup.scheduled:  # no Prefect API here: the exact commands, for this data
        steps = " ".join(setup.next_steps)
        assert "0 * * * *" in steps and str(spec_run["source"]) in steps
        assert f"chdb://{spec_run['source'].parent / 'db'}" in steps


def test_the_testing_api_runs_on_the_migrator(spec_run: dict) -> None:
    for name in ("dry_run", "compatibility", "end_to_end", "performance", "benchmark"):
        report = spec_run[name]
        assert report.passed, (name, [c for c in report.checks if not c.passed])
    # the scratch databases were dropped: only the migrator's own database is left
    databases = {r[0] for r in spec_run["client"].query("SHOW DATABASES").result_rows}
    assert not {d for d in databases if d.startswith("context_cleaner_scratch_")}


def test_a_failed_validation_raises_with_its_report(spec_run: dict, tmp_path: Path) -> None:
    """The rollup of a session the run does not touch disagrees with its rows (a write
    interrupted between the two): the migration commits, its validation fails, and it
    raises under both names with the report attached."""
    from context_cleaner import (
        HistoricalDataMigrator,
        MigrationValidationError,
        ValidationError,
    )
    from context_cleaner.bridge.given_client import ClientDatabase

    project = tmp_path / "projects" / "-p"
    project.mkdir(parents=True)
    for name in ("short", "tool_heavy"):
        shutil.copy(next(spec_run["source"].rglob(f"{name}.jsonl")), project / f"{name}.jsonl")
    with ClientDatabase(spec_run["client"]).scratch() as scratch:
        migrator = HistoricalDataMigrator(scratch, parallel_workers=1)
        first = asyncio.run(migrator.migrate_all_historical_data(str(tmp_path / "projects")))
        assert first.validation_passed
        with scratch.session() as client:
            client.command(
                "INSERT INTO enhanced_token_summaries SELECT * REPLACE (ver + 1 AS ver, "
                "output_tokens + 7 AS output_tokens) FROM enhanced_token_summaries FINAL "
                "WHERE session_id = 'short'"
            )
        heavy = project / "tool_heavy.jsonl"
        with heavy.open("ab") as f:  # something new for the run to read, in the other session
            f.write(_new_line(heavy, NEW_ID))
        with pytest.raises(ValidationError) as caught:
            asyncio.run(migrator.migrate_all_historical_data(str(tmp_path / "projects")))
    error = caught.value
    assert isinstance(error, MigrationValidationError)
    assert error.result.success and not error.result.validation_passed
    assert error.result.total_records_inserted == 1  # committed before the check
    assert not error.report["passed"] and not error.report["summaries_agree"]

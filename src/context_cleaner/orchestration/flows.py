"""Prefect flows over the plain pipeline: retryable batch tasks, resumable results, artifacts.

Each flow wraps what the local engine runs; nothing is re-implemented here:

- ``historical-migration``: :meth:`HistoricalDataMigrator.run` (``context-cleaner migrate``)
- ``incremental-sync``: :meth:`HistoricalDataMigrator.sync` (``context-cleaner sync``)
- ``validation``: :func:`run_record.validate_recorded` (``context-cleaner validate``)
- ``rollback``: :func:`rollback.rollback_migration` (``context-cleaner rollback``)

Inside migrate and sync, the batches become retryable, cached ``migrate-batch`` task
runs (:mod:`flow_tasks`): a run after a crash shows the batches the crashed run
finished as Cached and skips them (how the cache stays honest: :mod:`resume_keys`).

Artifacts: a progress bar updated per batch, a table of the result, a markdown
validation report. The run monitor's alert transitions become Prefect events
``context-cleaner.alert.firing`` / ``.resolved`` (``deployments/automations/``
turns them into notifications). A run that failed ends Failed with a
:class:`FlowRunFailed` carrying its result, never Completed; so does a run in which the
error-rate alert fired (its data is committed; the CLI exits 3 for it). How each run
starts and ends (tags, credentials blocks, the write limit, retries, quiet failures):
:mod:`run_guard`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from context_cleaner.bridge import EnhancedTokenDatabaseBridge
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.from_settings import open_bridge
from context_cleaner.errors import TerminalError
from context_cleaner.migration import monitor, pipeline
from context_cleaner.migration.alerts import FAILING_ALERTS, AlertEvent
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.models import (
    HistoricalMigrationResult,
    IncrementalMigrationResult,
    RollbackResult,
    ValidationResult,
)
from context_cleaner.orchestration import resume_keys
from context_cleaner.orchestration.crashed import claim_process
from context_cleaner.orchestration.flow_reports import (
    migration_table,
    rollback_table,
    sync_table,
    validation_markdown,
)
from context_cleaner.orchestration.flow_tasks import (
    RETRYING,
    PrefectBatches,
    migrate_batch,
    plan_batches,
    retry_transient_only,
)
from context_cleaner.orchestration.run_guard import RETRYING_FLOW, guarded, quiet_expected_errors
from context_cleaner.settings import BATCH_SIZE, SAMPLE_SIZE, TOLERANCE, Settings

__all__ = [
    "FlowRunFailed",
    "PrefectBatches",
    "historical_migration_flow",
    "incremental_sync_flow",
    "migrate_batch",
    "plan_batches",
    "retry_transient_only",
    "rollback_flow",
    "validation_flow",
]


quiet_expected_errors()


class FlowRunFailed(TerminalError):
    """The flow did its work but the run failed (file errors, validation): ``result`` tells how."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.result))


# -- alerts as events ------------------------------------------------------------------------


def alert_listener(flow_run_id: str | None) -> Callable[[AlertEvent], None]:
    """A run-monitor listener emitting each alert transition as a Prefect event."""
    related = []
    if flow_run_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
            }
        )

    def emit(event: AlertEvent) -> None:
        emit_event(
            event=f"context-cleaner.alert.{event.state}",
            resource={
                "prefect.resource.id": f"context-cleaner.migration.{event.migration_id}",
                "prefect.resource.name": event.migration_id,
                "context-cleaner.alert": event.alert,
                "context-cleaner.run-kind": event.run_kind,
            },
            related=related,
            payload=event.to_dict(),
        )

    return emit


@contextlib.contextmanager
def orchestrated(max_tasks: int = resume_keys.MAX_BATCH_TASKS) -> Iterator[PrefectBatches]:
    """Within this block, migrate and sync run their batches as tasks and alerts become events."""
    executor = PrefectBatches(max_tasks)
    token = pipeline.BATCH_EXECUTOR.set(executor)
    try:
        with monitor.listening(alert_listener(flow_run.get_id())):
            yield executor
    finally:
        pipeline.BATCH_EXECUTOR.reset(token)


def alerted(result: HistoricalMigrationResult | IncrementalMigrationResult) -> str | None:
    """The paragraph a flow run fails with when an alert that fails runs fired (None else).

    Its data is committed; the run still ends Failed so the Prefect UI and automations
    see it, as the CLI exits 3.
    """
    fired = [a for a in result.alerts_fired if a in FAILING_ALERTS]
    if not fired:
        return None
    skipped = ", ".join(f"{r} {n:,}" for r, n in sorted(result.skipped_lines_by_reason.items()))
    kind = "Sync" if isinstance(result, IncrementalMigrationResult) else "Migration"
    return (
        f"{kind} {result.migration_id} committed everything it could read, but the "
        f"{', '.join(fired)} alert fired: {result.skipped_lines:,} line(s) could not be "
        f"counted ({skipped or 'no line reasons recorded'}) and "
        f"{result.outcome().files_failed:,} file(s) failed. The skipped "
        "lines are not in the database. Look at them with `context-cleaner analyze --json` "
        "(each with file, line, byte offset and reason) and at the run with "
        f"`context-cleaner status --migration-id {result.migration_id}`; fix or remove the "
        "broken transcripts, then sync again."
    )


def _tasks_note(batches: PrefectBatches) -> str:
    return (
        f"{batches.tasks_run} batch task(s) run, {batches.tasks_cached} cached "
        f"({batches.batches_cached} batch(es) an earlier run committed)"
    )


def _publish(rows: list[dict[str, Any]], key: str, title: str, ok: bool, counts: str) -> None:
    """A run's result: its table (artifact ``key``) and one log line."""
    create_table_artifact(rows, key=key, description=f"{title}: {'succeeded' if ok else 'FAILED'}.")
    get_run_logger().info("%s: %s", title, counts)


# -- flows -----------------------------------------------------------------------------------


def _migrator(settings: Settings, database: Database) -> HistoricalDataMigrator:
    return HistoricalDataMigrator(bridge_service=open_bridge(settings, database), settings=settings)


def _migrate(
    settings: Settings, database: Database, max_batch_tasks: int
) -> HistoricalMigrationResult:
    migrator = _migrator(settings, database)
    with orchestrated(max_batch_tasks) as batches:
        result = migrator.run(settings.source_dirs, settings.dry_run, None, force=settings.force)
    ok = result.success and (result.dry_run or result.validation_passed)
    note = _tasks_note(batches)
    _publish(
        migration_table(result, note),
        "migration-result",
        f"Migration {result.migration_id}",
        ok,
        f"{result.files_processed} file(s), {result.total_records_inserted} record(s), "
        f"{result.total_tokens_migrated:+d} tokens; {note}.",
    )
    if ok and (paragraph := alerted(result)):
        raise FlowRunFailed(paragraph, result)
    if not ok:
        report = result.consistency_check_results
        notes = [str(note) for note in report.get("explanations", [])][:3]
        why = "; ".join(result.errors[:3]) or "validation failed: " + "; ".join(
            [f"variance {report.get('token_variance')} tokens", *notes]
        )
        raise FlowRunFailed(f"Migration {result.migration_id} failed: {why}", result)
    return result


@flow(
    name="historical-migration",
    description="context-cleaner migrate, as a Prefect flow.",
    **RETRYING_FLOW,
)
def historical_migration_flow(
    source_dirs: list[str] | None = None,
    clickhouse_url: str | None = None,
    batch_size: int = BATCH_SIZE,
    parallel_workers: int | None = None,
    checkpoint_interval: int = 0,
    dry_run: bool = False,
    force: bool = False,
    prices: str | None = None,
    max_batch_tasks: int = resume_keys.MAX_BATCH_TASKS,
    credentials_block: str | None = None,
) -> HistoricalMigrationResult:
    """Migrate every transcript (resumable). ``None`` settings come from the environment, as in
    the CLI. Never put a password in ``clickhouse_url`` (Prefect stores parameters): name a
    ``ClickHouseCredentials`` block in ``credentials_block`` instead (or set
    ``CONTEXT_CLEANER_CLICKHOUSE_PASSWORD`` in the worker's environment).
    ``max_batch_tasks``: more batches than this are grouped into at most this many tasks."""
    return guarded(  # type: ignore[return-value]
        "migrate",
        locals(),
        functools.partial(_migrate, max_batch_tasks=max_batch_tasks),
        writes=not dry_run,
    )


def _sync(
    settings: Settings, database: Database, max_batch_tasks: int
) -> IncrementalMigrationResult | HistoricalMigrationResult:
    migrator = _migrator(settings, database)
    with orchestrated(max_batch_tasks) as batches:
        if settings.dry_run:
            planned = migrator.run(settings.source_dirs, True, kind="sync")
        else:
            result = migrator.sync(settings.source_dirs)
    if settings.dry_run:
        create_table_artifact(migration_table(planned, _tasks_note(batches)), key="sync-result")
        return planned
    note = _tasks_note(batches)
    _publish(
        sync_table(result, note),
        "sync-result",
        f"Sync {result.migration_id}",
        result.success,
        f"{result.files_changed} file(s) changed, {result.records_inserted} record(s), "
        f"{result.tokens_added:+d} tokens; {note}.",
    )
    if not result.success:
        raise FlowRunFailed(
            f"Sync {result.migration_id} failed: {'; '.join(result.errors[:3])}", result
        )
    if paragraph := alerted(result):
        raise FlowRunFailed(paragraph, result)
    return result


@flow(
    name="incremental-sync",
    description="context-cleaner sync, as a Prefect flow.",
    **RETRYING_FLOW,
)
def incremental_sync_flow(
    source_dirs: list[str] | None = None,
    clickhouse_url: str | None = None,
    batch_size: int = BATCH_SIZE,
    parallel_workers: int | None = None,
    dry_run: bool = False,
    prices: str | None = None,
    max_batch_tasks: int = resume_keys.MAX_BATCH_TASKS,
    credentials_block: str | None = None,
) -> IncrementalMigrationResult | HistoricalMigrationResult:
    """Add what was appended since the last run (the hourly deployment). Settings as for
    :func:`historical_migration_flow`; a dry run returns what a sync would read."""
    return guarded(  # type: ignore[return-value]
        "sync",
        locals(),
        functools.partial(_sync, max_batch_tasks=max_batch_tasks),
        writes=not dry_run,
    )


@task(name="validate", cache_policy=NO_CACHE, timeout_seconds=3600, **RETRYING)
def validate_task(
    bridge: EnhancedTokenDatabaseBridge,
    source_dirs: list[str] | None,
    sample_size: int,
    full_validation: bool,
    tolerance: float,
) -> ValidationResult:
    """Analyse the transcripts afresh and compare them with the database."""
    from context_cleaner.migration.run_record import validate_recorded

    return validate_recorded(
        bridge,
        source_dirs,
        sample_size=sample_size,
        full_validation=full_validation,
        tolerance=tolerance,
    )


def _validate(settings: Settings, database: Database) -> ValidationResult:
    report = validate_task(
        open_bridge(settings, database),
        settings.sources,
        settings.sample_size,
        settings.full_validation,
        settings.tolerance,
    )
    create_markdown_artifact(
        validation_markdown(report),
        key="validation-report",
        description=f"Validation {'passed' if report.passed else 'FAILED'}.",
    )
    if not report.passed:
        raise FlowRunFailed(
            f"Validation failed: database {report.database_totals['total_tokens']:,} vs "
            f"transcripts {report.source_totals['total_tokens']:,} tokens; see the "
            "validation-report artifact.",
            report,
        )
    return report


@flow(
    name="validation",
    description="context-cleaner validate, as a Prefect flow (daily).",
    **RETRYING_FLOW,
)
def validation_flow(
    source_dirs: list[str] | None = None,
    clickhouse_url: str | None = None,
    full_validation: bool = False,
    sample_size: int = SAMPLE_SIZE,
    tolerance: float = TOLERANCE,
    prices: str | None = None,
    credentials_block: str | None = None,
) -> ValidationResult:
    """Reconcile the database with the transcripts; Failed when they disagree. It holds the
    write limit too: a validation read while a sync writes would see half of it."""
    return guarded("validate", locals(), _validate)  # type: ignore[return-value]


@task(name="rollback", cache_policy=NO_CACHE, retries=0)
def rollback_task(
    bridge: EnhancedTokenDatabaseBridge, migration_id: str, mode: str, to_checkpoint: str | None
) -> RollbackResult:
    """Restore the snapshot (never retried: a repeated table exchange would undo itself)."""
    from context_cleaner.migration.rollback import rollback_migration

    return rollback_migration(bridge, migration_id, mode, to_checkpoint)


def _rollback(
    settings: Settings, database: Database, migration_id: str, mode: str, to_checkpoint: str | None
) -> RollbackResult:
    result = rollback_task(open_bridge(settings, database), migration_id, mode, to_checkpoint)
    create_table_artifact(
        rollback_table(result),
        key="rollback-result",
        description=f"Rollback of {migration_id} ({result.mode}).",
    )
    return result


@flow(
    name="rollback",
    description="context-cleaner rollback, as a Prefect flow.",
    **RETRYING_FLOW,
)
def rollback_flow(
    migration_id: str,
    mode: str = "complete",
    to_checkpoint: str | None = None,
    clickhouse_url: str | None = None,
    credentials_block: str | None = None,
) -> RollbackResult:
    """Roll back ``migration_id`` (modes as in ``context-cleaner rollback``; no confirmation).
    Retried only when the database does not answer at start, before anything is changed."""
    body = functools.partial(
        _rollback, migration_id=migration_id, mode=mode, to_checkpoint=to_checkpoint
    )
    return guarded("rollback", locals(), body)  # type: ignore[return-value]


# Every flow run names its process as it starts, and ends this host's flow runs whose
# process is gone (orchestration/crashed.py).
for _flow in (historical_migration_flow, incremental_sync_flow, validation_flow, rollback_flow):
    _flow.on_running(claim_process)

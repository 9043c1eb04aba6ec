"""Prefect flows over the plain pipeline: retryable batch tasks, resumable results, artifacts.

Each flow wraps what the local engine runs; nothing is re-implemented here:

==========================  ==========================================  ===========================
``historical_migration``    :meth:`HistoricalDataMigrator.run`          ``context-cleaner migrate``
``incremental_sync``        :meth:`HistoricalDataMigrator.sync`         ``context-cleaner sync``
``validation``              :func:`validator.validate_migration_integrity` ``... validate``
``rollback``                :func:`rollback.rollback_migration`         ``context-cleaner rollback``
==========================  ==========================================  ===========================

Inside migrate and sync, :class:`PrefectBatches` is the pipeline's batch executor
(``pipeline.BATCH_EXECUTOR``): the planned batches become at most
:data:`~resume_keys.MAX_BATCH_TASKS` ``migrate-batch`` task runs, called one after
another in the flow's thread, so database writes stay in this process and in order
(as in the local engine) while up to ``--parallel-workers`` processes read ahead.
A task retries only :class:`~context_cleaner.errors.TransientError` (exponential
backoff with jitter), has a timeout, and persists its result under a key of file
identities and byte ranges plus the database epoch (:mod:`resume_keys`), so a run
after a crash shows the batches the crashed run finished as Cached and skips them.

Artifacts: a progress bar updated per batch, a table of the result, a markdown
validation report. The run monitor's alert transitions become Prefect events
``context-cleaner.alert.firing`` / ``.resolved`` (``deployments/automations/``
turns them into notifications). A run that failed raises :class:`FlowRunFailed`
carrying its result, so Prefect records it Failed, never Completed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.analysis.scan import ScanResult
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import TerminalError, TransientError
from context_cleaner.migration import monitor, pipeline, resume_keys
from context_cleaner.migration.alerts import AlertEvent
from context_cleaner.migration.flow_reports import (
    migration_table,
    rollback_table,
    sync_table,
    validation_markdown,
)
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.models import (
    BatchProcessingResult,
    HistoricalMigrationResult,
    IncrementalMigrationResult,
    RollbackResult,
    ValidationResult,
)
from context_cleaner.migration.pipeline import BatchReader, RunOptions, RunState
from context_cleaner.migration.planning import WorkItem
from context_cleaner.migration.resume_keys import ItemSpec

TASK_RETRIES = 3
RETRY_BACKOFF_SECONDS = 2.0
"""First retry after ~2 s, then ~4 s, ~8 s (each +/- 50 % jitter)."""
BATCH_TIMEOUT_SECONDS = 600.0
"""A batch task's time limit: this plus one second per MB it has to read."""
PROGRESS_EVERY_SECONDS = 2.0


class FlowRunFailed(TerminalError):
    """The flow did its work but the run failed (file errors, validation): ``result`` tells how."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.result))


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry a failed task only when its error may pass."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


_RETRYING: dict[str, Any] = {
    "retries": TASK_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=RETRY_BACKOFF_SECONDS),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient_only,
}


# -- batch tasks ---------------------------------------------------------------------------


class BatchFeed:
    """What a batch task works with besides its cache key: database, read-ahead, pending work.

    Kept across the task's retries: batches already committed are skipped and scans
    already read are reused (a replayed range is harmless, DESIGN §5).
    """

    def __init__(
        self,
        bridge: EnhancedTokenDatabaseBridge,
        migration_id: str,
        reads: Iterator[tuple[int, ScanResult, float]],
        work: Sequence[Sequence[WorkItem]],
        first_index: int,
        dry_run: bool,
    ) -> None:
        self.bridge = bridge
        self.migration_id = migration_id
        self.reads = reads
        self.work = [list(b) for b in work if b]
        self.first_index = first_index
        self.dry_run = dry_run
        self.ran = False
        self.scans: dict[int, tuple[ScanResult, float]] = {}
        self.done: dict[int, BatchProcessingResult] = {}

    def run(self) -> list[BatchProcessingResult]:
        self.ran = True
        for n, batch in enumerate(self.work):
            if n in self.done:
                continue
            if n not in self.scans:
                read = next(self.reads, None)
                if read is None:
                    raise RuntimeError("the read-ahead ended before the batches did")
                self.scans[n] = (read[1], read[2])
            scan, seconds = self.scans[n]
            batch_id = f"{self.migration_id}-b{self.first_index + n:05d}"
            self.done[n] = pipeline.commit_scan(
                self.bridge,
                self.migration_id,
                batch_id,
                batch,
                scan,
                seconds,
                dry_run=self.dry_run,
            )
            del self.scans[n]
        return [self.done[n] for n in range(len(self.work))]


@task(
    name="migrate-batch",
    cache_policy=(INPUTS - "feed") + TASK_SOURCE,
    persist_result=True,
    **_RETRYING,
)
def migrate_batch(
    epoch: str, spec: list[list[ItemSpec]], feed: BatchFeed
) -> list[BatchProcessingResult]:
    """Commit the pending bytes of these batches (``spec``: the files and ranges planned)."""
    return feed.run()


@task(name="plan-batches", cache_policy=(INPUTS - "fresh") + TASK_SOURCE, persist_result=True)
def plan_batches(
    epoch: str,
    listing: str,
    batch_size: int,
    max_batch_bytes: int,
    max_tasks: int,
    fresh: list[list[list[ItemSpec]]],
) -> list[list[list[ItemSpec]]]:
    """Which files form which task: ``fresh``, unless this corpus was laid out before."""
    return fresh


class _Progress:
    """The run's progress artifact: created on the first batch, updated (throttled) after each."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.total = state.plan.pending_bytes if state.plan else 0
        self.id: Any = None
        self.shown = -1.0
        self.at = 0.0

    def update(self, final: bool = False) -> None:
        done = self.state.bytes_done
        pct = 100.0 if final or not self.total else min(100.0, 100.0 * done / self.total)
        now = time.monotonic()
        if not final and pct - self.shown < 1.0 and now - self.at < PROGRESS_EVERY_SECONDS:
            return
        if self.id is None:
            self.id = create_progress_artifact(
                progress=pct,
                key="migration-progress",
                description=f"Run {self.state.migration_id}: share of the pending bytes committed "
                f"({self.total / 1e6:,.1f} MB).",
            )
        elif pct != self.shown:
            update_progress_artifact(self.id, progress=pct)
        self.shown, self.at = pct, now


class PrefectBatches:
    """The pipeline's batch executor inside a flow (see the module docstring)."""

    def __init__(self, max_tasks: int = resume_keys.MAX_BATCH_TASKS) -> None:
        self.max_tasks = max_tasks
        self.tasks_run = 0
        self.tasks_cached = 0
        self.batches_cached = 0

    def __call__(
        self,
        bridge: EnhancedTokenDatabaseBridge,
        state: RunState,
        options: RunOptions,
        plan: list[list[WorkItem]],
        reader: BatchReader | None,
    ) -> Generator[tuple[Sequence[WorkItem], BatchProcessingResult], None, None]:
        assert state.plan is not None and state.discovery is not None
        fresh = resume_keys.plan_layout(plan, self.max_tasks)
        if options.dry_run:
            epoch, layout = "", fresh
        else:
            epoch = resume_keys.database_epoch(bridge)
            files = state.discovery.files
            if options.only_paths is not None:
                files = [f for f in files if str(f.path) in options.only_paths]
            layout = plan_batches.with_options(refresh_cache=options.force)(
                epoch,
                resume_keys.listing_fingerprint(files),
                options.batch_size,
                options.max_batch_bytes,
                self.max_tasks,
                fresh,
            )
        chunks = resume_keys.assign(
            layout, plan, options.batch_size, options.max_batch_bytes, self.max_tasks
        )
        progress = _Progress(state)
        made = BatchReader(pipeline.read_workers(state, options)) if reader is None else None
        with made if made is not None else contextlib.nullcontext(reader) as active:
            reads = active.read([b for c in chunks for b in c.work if b])
            index = 0
            for number, chunk in enumerate(chunks, 1):
                feed = BatchFeed(
                    bridge, state.migration_id, reads, chunk.work, index, options.dry_run
                )
                index += len(feed.work)
                options_ = {
                    "task_run_name": f"batch-{number:03d}-of-{len(chunks):03d}",
                    "timeout_seconds": BATCH_TIMEOUT_SECONDS + chunk.pending_bytes / 1e6,
                    "refresh_cache": chunk.pending or options.force,
                }
                if options.dry_run:
                    options_.update(cache_policy=NO_CACHE, persist_result=False)
                results = migrate_batch.with_options(**options_)(epoch, chunk.spec, feed)
                if not feed.ran:  # a cache hit: an earlier run committed all of it
                    self.tasks_cached += 1
                    self.batches_cached += len(results)
                    continue
                self.tasks_run += 1
                for batch, result in zip(feed.work, results, strict=True):
                    yield batch, result
                    progress.update()
        progress.update(final=True)


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


def _migrator(
    clickhouse_url: str | None,
    prices: str | None,
    batch_size: int = 100,
    parallel_workers: int | None = None,
    checkpoint_interval: int = 10,
) -> HistoricalDataMigrator:
    bridge = EnhancedTokenDatabaseBridge(clickhouse_url, prices=PriceTable.load(prices))
    return HistoricalDataMigrator(
        bridge_service=bridge,
        batch_size=batch_size,
        parallel_workers=parallel_workers,  # type: ignore[arg-type]
        checkpoint_interval=checkpoint_interval,
    )


def _tasks_note(batches: PrefectBatches) -> str:
    return (
        f"{batches.tasks_run} batch task(s) run, {batches.tasks_cached} cached "
        f"({batches.batches_cached} batch(es) an earlier run committed)"
    )


# -- flows -----------------------------------------------------------------------------------


@flow(name="historical-migration", description="context-cleaner migrate, as a Prefect flow.")
def historical_migration_flow(
    source_dirs: list[str] | None = None,
    clickhouse_url: str | None = None,
    batch_size: int = 100,
    parallel_workers: int | None = None,
    checkpoint_interval: int = 10,
    dry_run: bool = False,
    force: bool = False,
    prices: str | None = None,
    max_batch_tasks: int = resume_keys.MAX_BATCH_TASKS,
) -> HistoricalMigrationResult:
    """Migrate every transcript (resumable). ``None`` settings come from the environment, as in
    the CLI; never put a password in ``clickhouse_url`` (Prefect stores parameters): set
    ``CONTEXT_CLEANER_CLICKHOUSE_PASSWORD`` in the worker's environment instead.
    ``max_batch_tasks``: more batches than this are grouped into this many task runs."""
    log = get_run_logger()
    migrator = _migrator(clickhouse_url, prices, batch_size, parallel_workers, checkpoint_interval)
    with orchestrated(max_batch_tasks) as batches:
        result = migrator.run(source_dirs, dry_run, None, checkpoint_interval, force=force)
    ok = result.success and (result.dry_run or result.validation_passed)
    create_table_artifact(
        migration_table(result, _tasks_note(batches)),
        key="migration-result",
        description=f"Migration {result.migration_id}: {'succeeded' if ok else 'FAILED'}.",
    )
    log.info(
        "Migration %s: %d file(s), %d record(s), %+d tokens; %s.",
        result.migration_id,
        result.files_processed,
        result.total_records_inserted,
        result.total_tokens_migrated,
        _tasks_note(batches),
    )
    if not ok:
        why = "; ".join(result.errors[:3]) or "validation failed"
        raise FlowRunFailed(f"Migration {result.migration_id} failed: {why}", result)
    return result


@flow(name="incremental-sync", description="context-cleaner sync, as a Prefect flow.")
def incremental_sync_flow(
    source_dirs: list[str] | None = None,
    clickhouse_url: str | None = None,
    batch_size: int = 100,
    parallel_workers: int | None = None,
    dry_run: bool = False,
    prices: str | None = None,
    max_batch_tasks: int = resume_keys.MAX_BATCH_TASKS,
) -> IncrementalMigrationResult | HistoricalMigrationResult:
    """Add what was appended since the last run (the hourly deployment). Settings as for
    :func:`historical_migration_flow`; a dry run returns what a sync would read."""
    log = get_run_logger()
    migrator = _migrator(clickhouse_url, prices, batch_size, parallel_workers)
    with orchestrated(max_batch_tasks) as batches:
        if dry_run:
            planned = migrator.run(source_dirs, True, kind="sync")
        else:
            result = migrator.sync(source_dirs)
    if dry_run:
        create_table_artifact(migration_table(planned, _tasks_note(batches)), key="sync-result")
        return planned
    create_table_artifact(
        sync_table(result, _tasks_note(batches)),
        key="sync-result",
        description=f"Sync {result.migration_id}: {'succeeded' if result.success else 'FAILED'}.",
    )
    log.info(
        "Sync %s: %d file(s) changed, %d record(s), %+d tokens; %s.",
        result.migration_id,
        result.files_changed,
        result.records_inserted,
        result.tokens_added,
        _tasks_note(batches),
    )
    if not result.success:
        raise FlowRunFailed(
            f"Sync {result.migration_id} failed: {'; '.join(result.errors[:3])}", result
        )
    return result


@task(name="validate", cache_policy=NO_CACHE, timeout_seconds=3600, **_RETRYING)
def validate_task(
    bridge: EnhancedTokenDatabaseBridge,
    source_dirs: list[str] | None,
    sample_size: int,
    full_validation: bool,
    tolerance: float,
) -> ValidationResult:
    """Analyse the transcripts afresh and compare them with the database."""
    from context_cleaner.migration.validator import validate_migration_integrity

    return validate_migration_integrity(
        bridge,
        source_dirs,
        sample_size=sample_size,
        full_validation=full_validation,
        tolerance=tolerance,
    )


@flow(name="validation", description="context-cleaner validate, as a Prefect flow (daily).")
def validation_flow(
    source_dirs: list[str] | None = None,
    clickhouse_url: str | None = None,
    full_validation: bool = False,
    sample_size: int = 100,
    tolerance: float = 0.001,
    prices: str | None = None,
) -> ValidationResult:
    """Reconcile the database with the transcripts; Failed when they disagree."""
    bridge = EnhancedTokenDatabaseBridge(clickhouse_url, prices=PriceTable.load(prices))
    report = validate_task(bridge, source_dirs, sample_size, full_validation, tolerance)
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


@task(name="rollback", cache_policy=NO_CACHE, retries=0)
def rollback_task(
    bridge: EnhancedTokenDatabaseBridge, migration_id: str, mode: str, to_checkpoint: str | None
) -> RollbackResult:
    """Restore the snapshot (never retried: a repeated table exchange would undo itself)."""
    from context_cleaner.migration.rollback import rollback_migration

    return rollback_migration(bridge, migration_id, mode, to_checkpoint)


@flow(name="rollback", description="context-cleaner rollback, as a Prefect flow.")
def rollback_flow(
    migration_id: str,
    mode: str = "complete",
    to_checkpoint: str | None = None,
    clickhouse_url: str | None = None,
) -> RollbackResult:
    """Roll back ``migration_id`` (modes as in ``context-cleaner rollback``; no confirmation)."""
    bridge = EnhancedTokenDatabaseBridge(clickhouse_url)
    result = rollback_task(bridge, migration_id, mode, to_checkpoint)
    create_table_artifact(
        rollback_table(result),
        key="rollback-result",
        description=f"Rollback of {migration_id} ({result.mode}).",
    )
    return result

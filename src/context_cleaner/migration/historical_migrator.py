"""HistoricalDataMigrator: the spec's migration service, over the plain pipeline.

Each method hands its work to its module (:mod:`.migrate`, :mod:`.incremental`,
:mod:`.validator`, :mod:`.rollback`, :mod:`.checkpoints`); :mod:`.run_record` records every
run. One implementation, two faces: the synchronous methods (what the command line and
the flows call) do the work; the spec's coroutines run them in a worker thread
(:mod:`.coroutines`: the event loop stays free), and writes of one migrator take turns
(a lock). :mod:`context_cleaner.api` adds the methods whose homes sit above this
layer (the testing API, ``setup_incremental_sync``). ``python -m
context_cleaner.migration.historical_migrator`` = ``context-cleaner migrate``.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis import gc_pace
from context_cleaner.analysis.discovery import Discovery
from context_cleaner.bridge import Database, EnhancedTokenDatabaseBridge
from context_cleaner.bridge.from_settings import open_bridge
from context_cleaner.bridge.given_client import ClientDatabase, bridge_for
from context_cleaner.errors import MigrationError, MigrationValidationError
from context_cleaner.migration import pipeline, rollback
from context_cleaner.migration.checkpoints import save_checkpoint
from context_cleaner.migration.coroutines import InThread, P, T, in_thread
from context_cleaner.migration.incremental import SyncRequest, SyncRun, fast_sync, run_sync
from context_cleaner.migration.memory import MigrationMemoryManager
from context_cleaner.migration.migrate import MigrationRun, holds_schema
from context_cleaner.migration.models import (
    BatchProcessingResult,
    CheckpointResult,
    FileDiscoveryResult,
    HistoricalMigrationResult,
    IncrementalMigrationResult,
    MigrationProgress,
    RollbackResult,
    SetupResult,
    ValidationResult,
)
from context_cleaner.migration.monitor import RunMonitor
from context_cleaner.migration.pipeline import ProgressCallback, RunOptions, RunState
from context_cleaner.migration.run_record import new_run_id, validate_recorded
from context_cleaner.migration.status import MigrationStatus, get_migration_status
from context_cleaner.settings import (
    COMMIT_EVERY,
    DEFAULTS,
    SAMPLE_SIZE,
    SPEC_CHECKPOINT_INTERVAL,
    TOLERANCE,
    Settings,
    source_list,
)

if TYPE_CHECKING:  # the analyser (pydantic reports) is imported only when validating,
    import asyncio  # asyncio only by the spec's coroutines

    from clickhouse_connect.driver.client import Client

    from context_cleaner.analysis.counter import EnhancedTokenCounter

Sources = str | Sequence[str] | None


class HistoricalDataMigrator:
    """Migrates Claude Code usage from JSONL transcripts into ClickHouse, exactly once.

    ``clickhouse_client``: a clickhouse-connect client (``clickhouse_connect.get_client(
    dsn="chdb:///dir")`` or a server's), used for every read and write of this migrator
    and never closed by it; or a URL, or a :class:`Database`; default: the configured
    database. ``bridge_service``: the :class:`EnhancedTokenDatabaseBridge` every write
    and read goes through (given with a client of the same database, it is rebound to
    that client). ``token_counter``: the :class:`EnhancedTokenCounter` validation uses
    (its folders are the default source; ``verify_migration_completeness`` reconciles
    its analysis with the database). The positional defaults are the spec's
    (``batch_size=100, parallel_workers=3``); ``settings`` (what the command line, the
    flows and ``serve`` pass) supplies every run setting instead, and its database
    when no client or bridge is given.
    """

    def __init__(
        self,
        clickhouse_client: Client | Database | str | None = None,
        token_counter: EnhancedTokenCounter | None = None,
        bridge_service: EnhancedTokenDatabaseBridge | None = None,
        batch_size: int = 100,
        parallel_workers: int | None = 3,
        validation_enabled: bool = True,
        *,
        settings: Settings | None = None,
        checkpoint_interval: int = SPEC_CHECKPOINT_INTERVAL,
        keep_snapshots: int = rollback.DEFAULT_KEEP,
        snapshot_checkpoints: bool = True,
        min_snapshot_interval: float = 0.0,
        commit_every: float = COMMIT_EVERY,
    ) -> None:
        self.max_batch_bytes = (settings or DEFAULTS).max_batch_bytes
        self.commit_max_records = (settings or DEFAULTS).commit_max_records
        self.max_memory_mb = (settings or DEFAULTS).max_memory_mb
        """Each run's bound on its private memory (``migration.memory``)."""
        if settings is not None:
            batch_size, parallel_workers = settings.batch_size, settings.parallel_workers
            validation_enabled, commit_every = settings.validate, settings.commit_every
            checkpoint_interval = settings.checkpoint_interval
            if bridge_service is None and clickhouse_client is None:
                bridge_service = open_bridge(settings)
        if batch_size < 1:
            raise MigrationError(f"--batch-size must be at least 1 (got {batch_size}).")
        if commit_every < 0:
            raise MigrationError(f"--commit-every must be 0 or more seconds (got {commit_every}).")
        self.bridge = bridge_for(clickhouse_client, bridge_service)
        self.token_counter = token_counter
        self.batch_size = batch_size
        self.parallel_workers = pipeline.resolve_workers(parallel_workers)
        self.validation_enabled = validation_enabled
        self.checkpoint_interval = checkpoint_interval
        self.keep_snapshots = keep_snapshots
        self.snapshot_checkpoints = snapshot_checkpoints
        self.min_snapshot_interval = min_snapshot_interval
        """Seconds between checkpoint snapshots (default 0: every checkpoint has one);
        checkpoints closer than this are logged but not snapshotted nor listed."""
        self.commit_every = commit_every
        """Seconds of read batches gathered into one commit (0: every batch on its own)."""
        self.tolerance_percentage = TOLERANCE * 100
        """The spec's completeness tolerance, in percent of the source's tokens."""
        self._writing = threading.RLock()
        """Held by every method that writes: coroutines of one migrator take turns."""

    bridge_service = property(lambda self: self.bridge, doc="The spec's name for ``bridge``.")

    async def _turn(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``work`` in a worker thread, holding this migrator's turn (a spec coroutine whose
        work does not take the turn itself)."""
        return await in_thread(self._writing, work, *args, **kwargs)

    @property
    def clickhouse_client(self) -> Client | None:
        """The client given to the constructor (None when the migrator opens its own)."""
        database = self.bridge.database
        return database.client if isinstance(database, ClientDatabase) else None

    def _sources(self, source_directory: Sources) -> list[str] | None:
        """``source_directory``, else the token counter's folders, else the default roots."""
        if source_directory is None and self.token_counter is not None:
            source_directory = [str(d) for d in self.token_counter.source_dirs] or None
        return source_list(source_directory)

    # -- phase 1 ---------------------------------------------------------------------------

    def setup(self) -> SetupResult:
        """Apply the schema (tables, tracking tables, snapshot registry); see the coroutine."""
        started = time.perf_counter()
        with self._writing:
            applied = self.bridge.setup_migration_infrastructure()
        tables = sorted(
            self.bridge.table_counts(
                [*rollback.DATA_TABLES, *rollback.HISTORY_TABLES, rollback.SNAPSHOTS]
            )
        )
        return SetupResult(
            database=self.bridge.database.url.redacted(),
            applied_migrations=applied,
            tables=tables,
            duration_seconds=time.perf_counter() - started,
        )

    setup_migration_infrastructure = InThread(
        setup,
        "Create the schema (in order), the tracking tables and the rollback registry.",
    )

    # -- phase 2 ---------------------------------------------------------------------------

    def _options(self, source_directory: Sources, dry_run: bool, checkpoint: int) -> RunOptions:
        return RunOptions(
            source_dirs=self._sources(source_directory),
            batch_size=self.batch_size,
            parallel_workers=self.parallel_workers,
            checkpoint_interval=checkpoint,
            dry_run=dry_run,
            snapshot_checkpoints=self.snapshot_checkpoints,
            commit_every=self.commit_every,
            max_batch_bytes=self.max_batch_bytes,
            commit_max_records=self.commit_max_records,
            memory=MigrationMemoryManager(self.max_memory_mb),
        )

    def discover(
        self, source_directory: Sources = None, file_pattern: str = "*.jsonl"
    ) -> FileDiscoveryResult:
        """Every transcript file with its size, time and committed offset (nothing read).

        ``file_pattern`` keeps the files whose path below their root matches it, as a glob
        matched from the right (``agent-*.jsonl``, ``*/subagents/*.jsonl``).
        ``estimated_sessions`` is 1 for the first file of each session (a session's file
        and its subagents' files make one session, DESIGN §3 rule 6), else 0: their sum is
        the number of sessions the files hold."""
        if not file_pattern.strip("/"):
            raise MigrationError(f"file_pattern {file_pattern!r} is empty; use e.g. '*.jsonl'.")
        options = self._options(source_directory, True, 0)
        bridge = self.bridge if holds_schema(self.bridge) else None
        found, plan = pipeline.discover_and_plan(bridge, options)
        pending = {str(i.file.path): i.start_offset for i in plan.items}
        return FileDiscoveryResult.catalogue(found, pending, file_pattern)

    discover_jsonl_files = InThread(
        discover, "Discover and catalogue the JSONL files (stat calls only); see discover."
    )

    def process_batch(
        self, file_batch: Sequence[str], batch_id: str, migration_id: str | None = None
    ) -> BatchProcessingResult:
        """Read the pending bytes of ``file_batch`` (paths) and commit them."""
        migration_id = migration_id or new_run_id("mig")
        options = RunOptions(batch_size=max(1, len(file_batch)), parallel_workers=1)
        options.only_paths = {str(p) for p in file_batch}
        options.source_dirs = sorted({str(_root_of(p)) for p in file_batch})
        state = RunState(migration_id)
        with self._writing:
            self.bridge.setup_migration_infrastructure()
            state.discovery, state.plan = pipeline.discover_and_plan(self.bridge, options)
            pipeline.run_batches(self.bridge, state, options)
        return BatchProcessingResult.merged(batch_id, list(file_batch), state.batches)

    async def process_file_batch(
        self, file_batch: list[str], batch_id: str
    ) -> BatchProcessingResult:
        """Read, analyse and commit a batch of files (their pending bytes only)."""
        return await in_thread(None, self.process_batch, file_batch, batch_id)

    def run(
        self,
        source_directory: Sources = None,
        dry_run: bool = False,
        progress_callback: ProgressCallback | None = None,
        checkpoint_interval: int | None = None,
        *,
        kind: str = "migrate",
        force: bool = False,
        only_paths: set[str] | None = None,
        migration_id: str | None = None,
        raise_invalid: bool = False,
    ) -> HistoricalMigrationResult:
        """The whole migration. A failed validation is in the result (what the flows and the
        testing API read), or with ``raise_invalid`` raises :class:`MigrationValidationError`
        (a ``ValidationError``) with the result and its report attached, after committing."""
        migration_id = migration_id or new_run_id("dry" if dry_run else kind[:4])
        monitor = RunMonitor(self.bridge, migration_id, kind, dry_run=dry_run)
        interval = self.checkpoint_interval if checkpoint_interval is None else checkpoint_interval
        options = self._options(source_directory, dry_run, interval)
        options.force = force
        options.only_paths = only_paths
        # A migration's reader processes start first, before the monitor's thread (so they
        # can be forked, readers.worker_start_method); a sync's pool is sized by its plan.
        reader = pipeline.BatchReader(self.parallel_workers) if kind == "migrate" else None
        with (
            self._writing,
            reader or contextlib.nullcontext(),
            self.bridge.database.held(),
            monitor,
            gc_pace.bulk_work(),
        ):
            migration = MigrationRun(
                self.bridge,
                RunState(migration_id),
                options,
                kind=kind,
                validation_enabled=self.validation_enabled,
                keep_snapshots=self.keep_snapshots,
                min_snapshot_interval=self.min_snapshot_interval,
                monitor=monitor,
            )
            result = migration.execute(reader, progress_callback)
            monitor.finished(result)
        if raise_invalid and self.validation_enabled and not dry_run:
            _raise_if_invalid(result)
        return result

    async def migrate_all_historical_data(
        self,
        source_directory: Sources = None,
        dry_run: bool = False,
        progress_callback: Callable[[MigrationProgress], Any] | None = None,
        checkpoint_interval: int = SPEC_CHECKPOINT_INTERVAL,
    ) -> HistoricalMigrationResult:
        """Migrate all historical JSONL data (see :meth:`run`; ``source_directory``
        None: the token counter's folders, else the default roots). A coroutine function
        as ``progress_callback`` is awaited on this event loop. Cancelling the awaiting
        task does not stop the run (a thread cannot be stopped): it finishes and commits."""
        import asyncio  # here: a run from the command line never loads it (~30 ms)

        callback = _on_loop(progress_callback, asyncio.get_running_loop())
        return await in_thread(
            None,
            self.run,
            source_directory,
            dry_run,
            callback,
            checkpoint_interval,
            raise_invalid=True,
        )

    # -- incremental -------------------------------------------------------------------------

    def sync(
        self,
        source_directory: Sources = None,
        *,
        since: datetime | None = None,
        modified_files_only: bool = True,
        force_reanalysis: bool = False,
        only_paths: set[str] | None = None,
        progress_callback: ProgressCallback | None = None,
        run: SyncRun | None = None,
        should_stop: Callable[[], bool] | None = None,
        discovery: Discovery | None = None,
    ) -> IncrementalMigrationResult:
        """Read only what was appended since the last commit of each file.

        See :mod:`context_cleaner.migration.incremental`: with nothing new it only stats
        files; ``run`` carries the run row's identity across syncs (watch mode);
        ``discovery`` is what a caller's own :func:`fast_sync` found (it is not repeated).
        """
        request = SyncRequest(
            source_dirs=self._sources(source_directory),
            only_paths=only_paths,
            since=since,
            modified_files_only=modified_files_only,
            force_reanalysis=force_reanalysis,
        )
        run = run or SyncRun()
        found = discovery
        with self._writing:
            if found is None:
                quick, found = fast_sync(self.bridge.database, self.bridge.host, request, run)
                if quick is not None:  # nothing changed: stat calls only, nothing to monitor
                    return quick
            with RunMonitor(self.bridge, run.migration_id, "sync") as monitor:
                result = run_sync(
                    self.bridge,
                    request,
                    batch_size=self.batch_size,
                    parallel_workers=self.parallel_workers,
                    run=run,
                    progress=progress_callback,
                    should_stop=should_stop,
                    found=found,
                )
                monitor.finished(result)
                return result

    async def migrate_incremental_changes(
        self,
        since: datetime | None = None,
        modified_files_only: bool = True,
        force_reanalysis: bool = False,
        source_directory: Sources = None,
    ) -> IncrementalMigrationResult:
        """Migrate what changed since the last commit of each file (``since``: only files
        modified after it); ``tokens_added`` is the database's growth. See :meth:`sync`."""
        return await in_thread(
            None,
            self.sync,
            source_directory,
            since=since,
            modified_files_only=modified_files_only,
            force_reanalysis=force_reanalysis,
        )

    # -- phase 3 and recovery ----------------------------------------------------------------

    def validate(
        self,
        sample_size: int = SAMPLE_SIZE,
        full_validation: bool = False,
        tolerance: float = TOLERANCE,
        source_directory: Sources = None,
    ) -> ValidationResult:
        """The database against the bytes on disk, recorded as a ``validate`` run."""
        with self._writing:
            return validate_recorded(
                self.bridge,
                self._sources(source_directory),
                sample_size=sample_size,
                full_validation=full_validation,
                tolerance=tolerance,
            )

    validate_migration_integrity = InThread(
        validate, "Validate the database against the transcripts; see validate."
    )

    def rollback(
        self, migration_id: str, rollback_to_checkpoint: str | None = None, mode: str = "complete"
    ) -> RollbackResult:
        """Roll back (``complete``; ``partial`` to a checkpoint; ``data-only``; ``schema``)."""
        with self._writing:
            return rollback.rollback_migration(
                self.bridge, migration_id, mode, rollback_to_checkpoint
            )

    rollback_migration = InThread(
        rollback,
        "Roll back a migration: to before it, or (rollback_to_checkpoint) to one of its "
        "checkpoints (a name a CheckpointResult or the run listed).",
    )

    def status(self, migration_id: str | None = None) -> MigrationStatus | None:
        """A run's status rebuilt from the database (default: the latest run)."""
        return get_migration_status(self.bridge, migration_id)

    get_migration_status = InThread(
        status, "Real-time status of a run (default: the latest) for display; see status."
    )

    def checkpoint(self, checkpoint_data: dict[str, Any]) -> CheckpointResult:
        """Snapshot the data tables now and log the checkpoint; see :mod:`.checkpoints`."""
        with self._writing:
            return save_checkpoint(self.bridge, checkpoint_data)

    save_checkpoint = InThread(checkpoint, "Save a checkpoint; see checkpoint.")

    async def create_migration_checkpoint(
        self, migration_id: str, completed_files: list[str], current_state: dict[str, Any]
    ) -> CheckpointResult:
        """Create a checkpoint that ``rollback_migration(migration_id,
        rollback_to_checkpoint=result.checkpoint)`` returns the data to."""
        checkpoint_data = {
            "migration_id": migration_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "completed_files": completed_files,
            "current_state": current_state,
            "total_tokens_processed": current_state.get("tokens_processed", 0),
        }
        return await self.save_checkpoint(checkpoint_data)


def _raise_if_invalid(result: HistoricalMigrationResult) -> None:
    """Raise when the run's validation ran and failed (a run whose files failed returns:
    ``success`` says so)."""
    report = result.consistency_check_results
    if result.validation_passed or report.get("passed") is not False:
        return
    raise MigrationValidationError(
        f"Migration {result.migration_id} committed its data but failed validation "
        f"(integrity {result.data_integrity_score:.4f}): "
        + " ".join(report.get("explanations", [])[:2] or result.errors[:2])
        + " Run `context-cleaner validate --full-validation` for the details.",
        result=result,
        report=report,
    )


def _on_loop(
    callback: Callable[[MigrationProgress], Any] | None, loop: asyncio.AbstractEventLoop
) -> ProgressCallback | None:
    """``callback`` as the worker thread calls it: a coroutine function runs on ``loop``."""
    if callback is None or not inspect.iscoroutinefunction(callback):
        return callback

    def call(progress: MigrationProgress) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(callback(progress), loop).result()

    return call


def _root_of(path: str) -> str:
    p = Path(path).resolve()
    for parent in p.parents:
        if parent.name == "projects":
            return str(parent)
    return str(p.parent)


if __name__ == "__main__":
    # The spec's ``python -m context_cleaner.migration.historical_migrator`` form of
    # ``context-cleaner migrate``: run the program by name (an entry point, not an import,
    # so this layer never depends on the command line above it), under this module's name.
    import runpy

    sys.argv[0] = "python -m context_cleaner.migration.historical_migrator"  # its help's name
    sys.argv[1:1] = ["migrate"]
    runpy.run_module("context_cleaner", run_name="__main__")

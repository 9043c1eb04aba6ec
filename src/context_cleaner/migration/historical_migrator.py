"""HistoricalDataMigrator: the spec's migration service, over the plain pipeline.

Each method hands its work to the module that does it: a migration's run to
:mod:`~context_cleaner.migration.migrate`, a sync to :mod:`~context_cleaner.migration.incremental`,
validation and rollback to theirs; every run is recorded by
:mod:`~context_cleaner.migration.run_record`. The spec's coroutines wrap the same methods.

``python -m context_cleaner.migration.historical_migrator`` runs it with the
spec's flags (= ``context-cleaner migrate``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.discovery import Discovery
from context_cleaner.bridge import Database, EnhancedTokenDatabaseBridge
from context_cleaner.bridge.from_settings import open_bridge
from context_cleaner.errors import MigrationError
from context_cleaner.migration import pipeline, rollback
from context_cleaner.migration.incremental import SyncRequest, SyncRun, fast_sync, run_sync
from context_cleaner.migration.migrate import MigrationRun, holds_schema
from context_cleaner.migration.models import (
    BatchProcessingResult,
    FileDiscoveryResult,
    HistoricalMigrationResult,
    IncrementalMigrationResult,
    JSONLFileInfo,
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

if TYPE_CHECKING:  # the analyser (pydantic reports) is imported only when validating
    from context_cleaner.analysis.counter import EnhancedTokenCounter


class HistoricalDataMigrator:
    """Migrates Claude Code usage from JSONL transcripts into ClickHouse, exactly once.

    ``clickhouse_client`` (a URL or :class:`Database`) and ``bridge_service`` default to
    the configured database. ``token_counter`` is accepted for the spec's signature only:
    the pipeline counts with its own reader processes, by the same rules. The positional
    defaults are the spec's (``batch_size=100, parallel_workers=3``) so code written
    against the spec behaves as it says; ``settings`` (what the command line, the flows
    and ``serve`` pass) supplies every run setting instead, and its database when no
    client or bridge is given.
    """

    def __init__(
        self,
        clickhouse_client: Database | str | None = None,
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
        self.bridge = bridge_service or EnhancedTokenDatabaseBridge(clickhouse_client)
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

    # -- phase 1 ---------------------------------------------------------------------------

    def setup_migration_infrastructure(self) -> SetupResult:
        started = time.perf_counter()
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

    # -- phase 2 ---------------------------------------------------------------------------

    def _options(
        self, source_directory: str | Sequence[str] | None, dry_run: bool, checkpoint: int
    ) -> RunOptions:
        return RunOptions(
            source_dirs=source_list(source_directory),
            batch_size=self.batch_size,
            parallel_workers=self.parallel_workers,
            checkpoint_interval=checkpoint,
            dry_run=dry_run,
            snapshot_checkpoints=self.snapshot_checkpoints,
            commit_every=self.commit_every,
            max_batch_bytes=self.max_batch_bytes,
            commit_max_records=self.commit_max_records,
        )

    def discover_jsonl_files(
        self, source_directory: str | Sequence[str] | None = None, file_pattern: str = "*.jsonl"
    ) -> FileDiscoveryResult:
        """Every transcript file with its size, time and committed offset (nothing read).

        ``file_pattern`` keeps the files whose path below their root matches it, as a glob
        matched from the right (``agent-*.jsonl``, ``*/subagents/*.jsonl``)."""
        if not file_pattern.strip("/"):
            raise MigrationError(f"file_pattern {file_pattern!r} is empty; use e.g. '*.jsonl'.")
        options = self._options(source_directory, True, 0)
        bridge = self.bridge if holds_schema(self.bridge) else None
        found, plan = pipeline.discover_and_plan(bridge, options)
        pending = {(str(i.file.path)): i.start_offset for i in plan.items}
        kept = [f for f in found.files if PurePosixPath(f.relative_path).match(file_pattern)]
        files = [
            JSONLFileInfo(
                path=str(f.path),
                relative_path=f.relative_path,
                size_bytes=f.size,
                modified_at=datetime.fromtimestamp(f.mtime_ns / 1e9, UTC),
                session_id=f.session_id,
                project=f.project,
                committed_offset=pending.get(str(f.path), f.size),
            )
            for f in kept
        ]
        return FileDiscoveryResult(
            source_directories=[str(r) for r in found.roots],
            files=files,
            total_bytes=sum(f.size_bytes for f in files),
            pending_bytes=sum(max(0, f.size_bytes - f.committed_offset) for f in files),
            problems=[f"{p.path}: {p.reason}" for p in found.problems],
        )

    def process_file_batch(
        self, file_batch: Sequence[str], batch_id: str, migration_id: str | None = None
    ) -> BatchProcessingResult:
        """Read the pending bytes of ``file_batch`` (paths) and commit them."""
        migration_id = migration_id or new_run_id("mig")
        self.bridge.setup_migration_infrastructure()
        options = RunOptions(batch_size=max(1, len(file_batch)), parallel_workers=1)
        options.only_paths = {str(p) for p in file_batch}
        roots = sorted({str(_root_of(p)) for p in file_batch})
        options.source_dirs = roots
        state = RunState(migration_id)
        state.discovery, state.plan = pipeline.discover_and_plan(self.bridge, options)
        pipeline.run_batches(self.bridge, state, options)
        merged = BatchProcessingResult(batch_id=batch_id, files=list(file_batch))
        for b in state.batches:
            for name in (
                "files_processed",
                "files_failed",
                "bytes_read",
                "lines_read",
                "usage_lines",
                "records_inserted",
                "tokens_in_records",
                "skipped_lines",
                "sessions_touched",
            ):
                setattr(merged, name, getattr(merged, name) + getattr(b, name))
            merged.analysis_seconds += b.analysis_seconds
            merged.insert_seconds += b.insert_seconds
            merged.errors += b.errors
        return merged

    def run(
        self,
        source_directory: str | Sequence[str] | None = None,
        dry_run: bool = False,
        progress_callback: ProgressCallback | None = None,
        checkpoint_interval: int | None = None,
        *,
        kind: str = "migrate",
        force: bool = False,
        only_paths: set[str] | None = None,
        migration_id: str | None = None,
    ) -> HistoricalMigrationResult:
        """The whole migration (synchronous); see :meth:`migrate_all_historical_data`."""
        migration_id = migration_id or new_run_id("dry" if dry_run else kind[:4])
        monitor = RunMonitor(self.bridge, migration_id, kind, dry_run=dry_run)
        interval = self.checkpoint_interval if checkpoint_interval is None else checkpoint_interval
        options = self._options(source_directory, dry_run, interval)
        options.force = force
        options.only_paths = only_paths
        # A migration's reader processes start first, before the monitor's thread (so they
        # can be forked, readers.worker_start_method); a sync's pool is sized by its plan.
        reader = pipeline.BatchReader(self.parallel_workers) if kind == "migrate" else None
        with reader or contextlib.nullcontext(), self.bridge.database.held(), monitor:
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
            return result

    async def migrate_all_historical_data(
        self,
        source_directory: str | Sequence[str] | None = None,
        dry_run: bool = False,
        progress_callback: ProgressCallback | None = None,
        checkpoint_interval: int = SPEC_CHECKPOINT_INTERVAL,
    ) -> HistoricalMigrationResult:
        """Migrate all historical JSONL data (the spec's coroutine; runs :meth:`run`)."""
        return self.run(source_directory, dry_run, progress_callback, checkpoint_interval)

    # -- incremental -------------------------------------------------------------------------

    def sync(
        self,
        source_directory: str | Sequence[str] | None = None,
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
            source_dirs=source_list(source_directory),
            only_paths=only_paths,
            since=since,
            modified_files_only=modified_files_only,
            force_reanalysis=force_reanalysis,
        )
        run = run or SyncRun()
        found = discovery
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
        source_directory: str | Sequence[str] | None = None,
    ) -> IncrementalMigrationResult:
        """The spec's coroutine for :meth:`sync`."""
        return self.sync(
            source_directory,
            since=since,
            modified_files_only=modified_files_only,
            force_reanalysis=force_reanalysis,
        )

    # -- phase 3 and recovery ----------------------------------------------------------------

    async def validate_migration_integrity(
        self,
        sample_size: int = SAMPLE_SIZE,
        full_validation: bool = False,
        tolerance: float = TOLERANCE,
        source_directory: str | Sequence[str] | None = None,
    ) -> ValidationResult:
        """Validate the database against the transcripts, recorded as a ``validate`` run."""
        return validate_recorded(
            self.bridge,
            source_list(source_directory),
            sample_size=sample_size,
            full_validation=full_validation,
            tolerance=tolerance,
        )

    async def verify_migration_completeness(
        self, source_directory: str | Sequence[str] | None = None
    ) -> ValidationResult:
        """Every session, file and token reconciled (a full validation at zero tolerance)."""
        return await self.validate_migration_integrity(
            full_validation=True, tolerance=0.0, source_directory=source_directory
        )

    async def rollback_migration(
        self,
        migration_id: str,
        rollback_to_checkpoint: str | None = None,
        mode: str = "complete",
    ) -> RollbackResult:
        return rollback.rollback_migration(self.bridge, migration_id, mode, rollback_to_checkpoint)

    async def get_migration_status(self, migration_id: str | None = None) -> MigrationStatus | None:
        """Real-time status of a run (default: the latest) for display; see ``migration.status``."""
        return get_migration_status(self.bridge, migration_id)

    async def create_migration_checkpoint(
        self, migration_id: str, completed_files: list[str], current_state: dict[str, Any]
    ) -> str:
        """Record a checkpoint (and snapshot) now; returns its name."""
        label = f"cp{int(time.time())}"
        with self.bridge.writer() as w:
            rollback.take_snapshot(w.client, self.bridge.host, migration_id, label)
            w.log(
                migration_id,
                "checkpoint",
                label,
                "completed",
                {"completed_files": len(completed_files), **current_state},
            )
        return label


def _root_of(path: str) -> str:
    p = Path(path).resolve()
    for parent in p.parents:
        if parent.name == "projects":
            return str(parent)
    return str(p.parent)


if __name__ == "__main__":
    # The spec's ``python -m context_cleaner.migration.historical_migrator`` form of
    # ``context-cleaner migrate``: run the program by name (an entry point, not an import,
    # so this layer never depends on the command line above it).
    import runpy

    sys.argv[1:1] = ["migrate"]
    runpy.run_module("context_cleaner", run_name="__main__", alter_sys=True)

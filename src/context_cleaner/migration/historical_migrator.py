"""HistoricalDataMigrator: the spec's migration service, over the plain pipeline.

``python -m context_cleaner.migration.historical_migrator`` runs it with the
spec's flags (= ``context-cleaner migrate``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.discovery import Discovery
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.runs import stash_run
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import MigrationError
from context_cleaner.migration import pipeline, rollback
from context_cleaner.migration.crashed_runs import close_crashed_runs, closed_note
from context_cleaner.migration.defaults import COMMIT_EVERY
from context_cleaner.migration.incremental import (
    SyncRequest,
    SyncRun,
    fast_sync,
    run_sync,
    skipped_note,
)
from context_cleaner.migration.ledger import RUN_LEDGER, Ledger
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
from context_cleaner.migration.monitor import RunMonitor, active_monitor, monitor_details
from context_cleaner.migration.pipeline import (
    ProgressCallback,
    RunOptions,
    RunState,
    new_migration_id,
)
from context_cleaner.migration.status import MigrationStatus, get_migration_status, progress_record

if TYPE_CHECKING:  # the analyser (pydantic reports) is imported only when validating
    from context_cleaner.analysis.counter import EnhancedTokenCounter

#: Rows per second a fresh embedded database takes (measured; used for dry-run projections).
PROJECTED_INSERT_ROWS_PER_SECOND = 150_000

#: The run row's columns that hold the net change the run made (``pipeline.NET_KEYS``).
NET_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "cost_usd",
)


class HistoricalDataMigrator:
    """Migrates Claude Code usage from JSONL transcripts into ClickHouse, exactly once.

    ``clickhouse_client`` (a URL or :class:`Database`), ``token_counter`` and
    ``bridge_service`` default to the configured database and the default roots.
    """

    def __init__(
        self,
        clickhouse_client: Database | str | None = None,
        token_counter: EnhancedTokenCounter | None = None,
        bridge_service: EnhancedTokenDatabaseBridge | None = None,
        batch_size: int = 100,
        parallel_workers: int = 3,
        validation_enabled: bool = True,
        *,
        checkpoint_interval: int = 10,
        keep_snapshots: int = rollback.DEFAULT_KEEP,
        snapshot_checkpoints: bool = True,
        min_snapshot_interval: float = 0.0,
        commit_every: float = COMMIT_EVERY,
    ) -> None:
        if batch_size < 1:
            raise MigrationError(f"--batch-size must be at least 1 (got {batch_size}).")
        if commit_every < 0:
            raise MigrationError(f"--commit-every must be 0 or more seconds (got {commit_every}).")
        self.bridge = bridge_service or EnhancedTokenDatabaseBridge(clickhouse_client)
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
        self._last_snapshot = 0.0

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
        dirs = [source_directory] if isinstance(source_directory, str) else source_directory
        return RunOptions(
            source_dirs=list(dirs) if dirs else None,
            batch_size=self.batch_size,
            parallel_workers=self.parallel_workers,
            checkpoint_interval=checkpoint,
            dry_run=dry_run,
            snapshot_checkpoints=self.snapshot_checkpoints,
            commit_every=self.commit_every,
        )

    def discover_jsonl_files(
        self, source_directory: str | Sequence[str] | None = None, file_pattern: str = "*.jsonl"
    ) -> FileDiscoveryResult:
        """Every transcript file with its size, time and committed offset (nothing read)."""
        if file_pattern != "*.jsonl":
            raise MigrationError("Only *.jsonl transcripts are supported.")
        options = self._options(source_directory, True, 0)
        bridge = self.bridge if self._database_exists() else None
        found, plan = pipeline.discover_and_plan(bridge, options)
        pending = {(str(i.file.path)): i.start_offset for i in plan.items}
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
            for f in found.files
        ]
        return FileDiscoveryResult(
            source_directories=[str(r) for r in found.roots],
            files=files,
            total_bytes=found.total_bytes,
            pending_bytes=plan.pending_bytes,
            problems=[f"{p.path}: {p.reason}" for p in found.problems],
        )

    def process_file_batch(
        self, file_batch: Sequence[str], batch_id: str, migration_id: str | None = None
    ) -> BatchProcessingResult:
        """Read the pending bytes of ``file_batch`` (paths) and commit them."""
        migration_id = migration_id or new_migration_id()
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
        migration_id = migration_id or new_migration_id("dry" if dry_run else kind[:4])
        monitor = RunMonitor(self.bridge, migration_id, kind, dry_run=dry_run)
        # A migration's reader processes start first, before the monitor's thread (so they
        # can be forked, pipeline.worker_start_method); a sync's pool is sized by its plan.
        reader = pipeline.BatchReader(self.parallel_workers) if kind == "migrate" else None
        with reader or contextlib.nullcontext(), self.bridge.database.held(), monitor:
            result = self._run(
                source_directory,
                dry_run,
                progress_callback,
                checkpoint_interval,
                kind=kind,
                force=force,
                only_paths=only_paths,
                migration_id=migration_id,
                reader=reader,
            )
            monitor.finished(result)
            return result

    def _run(
        self,
        source_directory: str | Sequence[str] | None,
        dry_run: bool,
        progress_callback: ProgressCallback | None,
        checkpoint_interval: int | None,
        *,
        kind: str,
        force: bool,
        only_paths: set[str] | None,
        migration_id: str | None,
        reader: pipeline.BatchReader | None = None,
    ) -> HistoricalMigrationResult:
        interval = self.checkpoint_interval if checkpoint_interval is None else checkpoint_interval
        options = self._options(source_directory, dry_run, interval)
        options.force = force
        options.only_paths = only_paths
        state = RunState(migration_id or new_migration_id("dry" if dry_run else kind[:4]))
        return self._run_with(reader, state, options, dry_run, progress_callback, kind)

    def _run_with(
        self,
        reader: pipeline.BatchReader | None,
        state: RunState,
        options: RunOptions,
        dry_run: bool,
        progress_callback: ProgressCallback | None,
        kind: str,
    ) -> HistoricalMigrationResult:
        bridge = self.bridge
        exists = self._database_exists()
        prefetched = False
        if not exists and not dry_run and reader is not None:
            # Nothing is committed in a database that does not exist yet: plan and start
            # reading now, while this process starts the engine and applies the schema.
            state.discovery, state.plan = pipeline.discover_and_plan(None, options)
            reader.prefetch(pipeline.planned_batches(state, options))
            prefetched = True
        if not dry_run:
            bridge.setup_migration_infrastructure()
        if prefetched:
            # Working memory is measured from here: this process after connecting, the
            # workers as they were when ready, before they read anything.
            state.baseline_rss = pipeline.own_rss() + reader.idle_rss()
            if pipeline.load_states(bridge):  # another process migrated in the meantime
                reader.discard_prefetch()
                state.batched = None
                prefetched = False
        else:
            state.baseline_rss = pipeline.tree_rss()
        if not prefetched:
            state.discovery, state.plan = pipeline.discover_and_plan(
                bridge if (exists or not dry_run) else None, options
            )
        # A database this run created holds nothing yet (prefetched: no other run filled it).
        counted = not dry_run and not prefetched
        sessions_before = bridge.count_sessions() if counted else 0
        if not dry_run:
            self._begin(state, kind, options, fresh=not exists)
        validating = not dry_run and self.validation_enabled and kind == "migrate"
        # The validation of a run into a database that held nothing sums the whole table.
        started_empty = prefetched or (
            validating and counted and not bridge.get_migration_totals().get("records", 1)
        )
        read = Ledger() if validating else None
        token = RUN_LEDGER.set(read)
        try:
            pipeline.run_batches(
                bridge,
                state,
                options,
                progress=progress_callback,
                on_checkpoint=self._checkpoint,
                reader=reader,
            )
        except BaseException as exc:
            if not dry_run:
                self._finish(state, kind, "failed", extra={"error": str(exc)})
            raise
        finally:
            RUN_LEDGER.reset(token)
        result = self._result(state, dry_run, sessions_before)
        if (watching := active_monitor()) is not None:
            result.alerts_fired = watching.fired()
        if not dry_run:
            if validating and read is not None and state.plan.items:
                from context_cleaner.migration import validator

                if read.ranges or not state.records_inserted:
                    # What this run read, against the rows: no transcript read twice.
                    report = validator.validate_run(
                        bridge,
                        read,
                        options.source_dirs,
                        database_totals=result.database_totals,
                        started_empty=started_empty,
                    )
                else:  # the batches ran where this process could not see what they read
                    report = validator.validate_migration_integrity(bridge, options.source_dirs)
                result.validation_passed = report.passed
                result.data_integrity_score = report.integrity_score
                result.consistency_check_results = report.to_dict()
            else:
                result.validation_passed = not state.errors
                result.data_integrity_score = 1.0 if not state.errors else 0.0
            status = "completed" if result.success else "failed"
            self._finish(state, kind, status, result=result)
        return result

    def _close_crashed(self, state: RunState) -> None:
        """Close this host's crashed runs; the notes go in this run's warnings."""
        assert state.discovery is not None
        closed = close_crashed_runs(
            self.bridge, state.migration_id, pipeline.source_paths(state.discovery)
        )
        state.closed_runs += closed
        state.warnings += [closed_note(c, state.migration_id) for c in closed]

    async def migrate_all_historical_data(
        self,
        source_directory: str | Sequence[str] | None = None,
        dry_run: bool = False,
        progress_callback: ProgressCallback | None = None,
        checkpoint_interval: int = 10,
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
        dirs = [source_directory] if isinstance(source_directory, str) else source_directory
        request = SyncRequest(
            source_dirs=list(dirs) if dirs else None,
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
            monitor.finished(_as_run_outcome(result))  # type: ignore[arg-type]
            result.alerts_fired = monitor.fired()
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
        sample_size: int = 100,
        full_validation: bool = False,
        tolerance: float = 0.001,
        source_directory: str | Sequence[str] | None = None,
    ) -> ValidationResult:
        from context_cleaner.migration.validator import validate_migration_integrity

        dirs = [source_directory] if isinstance(source_directory, str) else source_directory
        return validate_migration_integrity(
            self.bridge,
            dirs,
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

    # -- internals ---------------------------------------------------------------------------

    def _database_exists(self) -> bool:
        url = self.bridge.database.url
        if url.is_embedded and not url.is_memory:
            from pathlib import Path

            if not Path(url.path).exists():
                return False
        try:
            return self.bridge.is_initialised()
        except MigrationError:
            return False

    def _begin(
        self, state: RunState, kind: str, options: RunOptions, *, fresh: bool = False
    ) -> None:
        """Close crashed runs (none in a database this run created), snapshot, run row."""
        assert state.discovery is not None and state.plan is not None
        if not fresh:
            self._close_crashed(state)
        with self.bridge.writer() as w:
            if kind == "migrate":
                rollback.take_snapshot(w.client, self.bridge.host, state.migration_id)
                rollback.prune_snapshots(w.client, self.keep_snapshots)
                self._last_snapshot = time.monotonic()
            w.save_run(self._run_row(state, kind, "running"))
            w.log(
                state.migration_id,
                kind,
                "start",
                "started",
                {
                    "roots": pipeline.source_paths(state.discovery),
                    "files": len(state.discovery.files),
                    "pending_files": len(state.plan.items),
                    "pending_bytes": state.plan.pending_bytes,
                    "batch_size": options.batch_size,
                    "workers": options.parallel_workers,
                },
            )

    def _checkpoint(self, state: RunState, number: int) -> None:
        """Log a checkpoint; snapshot it too unless the last snapshot is very recent."""
        label = f"cp{number}"
        now = time.monotonic()
        snapshot = self.snapshot_checkpoints and (
            now - self._last_snapshot >= self.min_snapshot_interval
        )
        with self.bridge.writer() as w:
            if snapshot:  # (pruned when a run begins: a run keeps all its checkpoints)
                rollback.take_snapshot(w.client, self.bridge.host, state.migration_id, label)
                self._last_snapshot = now
            w.save_run(self._run_row(state, "migrate", "running"))
            w.log(
                state.migration_id,
                "checkpoint",
                label,
                "completed",
                {
                    "files_done": state.files_done,
                    "records": state.records_inserted,
                    "snapshot": snapshot,
                    "progress": progress_record(state),
                },
            )
        if snapshot:
            state.checkpoints.append(label)

    def _finish(
        self,
        state: RunState,
        kind: str,
        status: str,
        *,
        result: HistoricalMigrationResult | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        row = self._run_row(state, kind, status)
        row["finished_at"] = time.time()
        details = {
            "errors": state.errors[:50],
            "progress": progress_record(state, status),
            **monitor_details(),
            **(extra or {}),
        }
        if state.skipped_by_reason:
            details["skipped_lines_by_reason"] = state.skipped_by_reason
            details["skipped_line_examples"] = state.skipped_examples[:5]
        if state.closed_runs:
            details["closed_runs"] = [c["migration_id"] for c in state.closed_runs]
        if result is not None:
            details["validation_passed"] = result.validation_passed
            details["integrity_score"] = result.data_integrity_score
            details["alerts_fired"] = result.alerts_fired
        row["details"] = details
        try:
            with self.bridge.writer() as w:
                w.save_run(row)
                w.log(
                    state.migration_id,
                    kind,
                    "finish",
                    "failed" if status == "failed" else "completed",
                    details,
                    (time.time() - state.started) * 1000,
                )
        except MigrationError:
            if result is None:  # already failing: keep the original error
                # The database refused the run's last row too (a full disk): keep it beside
                # the database, where readers find it and the next run records it.
                stash_run(self.bridge.database, row)
                return
            raise

    def _run_row(self, state: RunState, kind: str, status: str) -> dict[str, Any]:
        """The run's row: counts so far; tokens, cost and records are the net change this
        run made to the database (see ``pipeline.write_batch``)."""
        found, plan = state.discovery, state.plan
        net = {k: state.net.get(k, 0) for k in NET_COLUMNS}
        return {
            **{k: max(0, int(v)) for k, v in net.items() if k != "cost_usd"},
            "cost_usd": max(0.0, float(net["cost_usd"])),
            "migration_id": state.migration_id,
            "run_kind": kind,
            "status": status,
            "started_at": state.started,
            "source_roots": pipeline.source_paths(found) if found else [],
            "files_found": len(found.files) if found else 0,
            "files_processed": state.files_done - state.files_failed,
            "files_skipped": len(plan.unchanged) if plan else 0,
            "files_failed": state.files_failed,
            "records_inserted": max(0, state.records_added),
            "lines_skipped": state.skipped_lines,
        }

    def _result(
        self,
        state: RunState,
        dry_run: bool,
        sessions_before: int,
    ) -> HistoricalMigrationResult:
        assert state.discovery is not None and state.plan is not None
        end = time.time()
        duration = end - state.started
        after = self.bridge.get_migration_totals() if not dry_run else {}
        sessions_after = self.bridge.count_sessions() if not dry_run else 0
        # Net: what this run's commits changed, measured unit by unit under the database's
        # hold (another run's commits meanwhile are not counted; a dry run: what it read).
        migrated = state.tokens_added if not dry_run else state.tokens_in_records
        records = state.records_added if not dry_run else state.records_inserted
        plan = state.plan
        counts = {
            "new": 0,
            "appended": 0,
            "reset": len(plan.reset),
            "unchanged": len(plan.unchanged),
        }
        for item in plan.items:
            key = (
                "new"
                if item.reason in ("new", "forced")
                else ("appended" if item.reason == "appended" else None)
            )
            if key:
                counts[key] += 1
        resumed = sum(1 for i in plan.items if i.reason == "appended")
        projected = None
        if dry_run:
            projected = state.analysis_seconds / max(1, self.parallel_workers) + (
                state.records_inserted / PROJECTED_INSERT_ROWS_PER_SECOND
            )
        warnings = []
        if state.skipped_lines:
            warnings.append(skipped_note(state.skipped_lines, state.skipped_by_reason))
        warnings += state.warnings
        warnings += [f"{p.path}: {p.reason}" for p in state.discovery.problems]
        return HistoricalMigrationResult(
            migration_id=state.migration_id,
            start_time=datetime.fromtimestamp(state.started, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            success=not state.errors,
            dry_run=dry_run,
            total_files_found=len(state.discovery.files),
            files_processed=state.files_done - state.files_failed,
            files_skipped=len(plan.unchanged),
            files_failed=state.files_failed,
            total_tokens_migrated=migrated,
            total_sessions_created=max(0, sessions_after - sessions_before),
            total_records_inserted=records,
            processing_duration=duration,
            average_processing_speed_tokens_per_second=state.tokens_in_records
            / max(duration, 1e-9),
            peak_memory_usage_mb=state.peak_rss / 2**20,
            working_memory_mb=max(0, state.peak_rss - state.baseline_rss) / 2**20,
            database_insertion_time=state.insert_seconds,
            errors=state.errors,
            warnings=warnings,
            skipped_files=state.failed_files,
            bytes_processed=state.bytes_done,
            skipped_lines=state.skipped_lines,
            checkpoints=state.checkpoints,
            resumed_files=resumed,
            database_totals=after,
            projected_seconds=projected,
            consistency_check_results={"plan": counts},
            skipped_lines_by_reason=dict(state.skipped_by_reason),
            skipped_line_examples=list(state.skipped_examples),
            closed_runs=list(state.closed_runs),
        )


def _as_run_outcome(result: IncrementalMigrationResult) -> SimpleNamespace:
    """A sync's result in the fields :meth:`RunMonitor.finished` reads of a migration's."""
    failed = len(result.errors)
    return SimpleNamespace(
        dry_run=False,
        total_tokens_migrated=result.tokens_added,
        files_processed=max(0, result.files_changed - failed),
        files_failed=failed,
        total_records_inserted=result.records_inserted,
        success=result.success,
    )


def _root_of(path: str) -> str:
    from pathlib import Path

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

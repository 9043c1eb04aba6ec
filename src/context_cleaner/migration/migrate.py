"""One migration run (``HistoricalDataMigrator.run``): plan, begin, read and commit, check, finish.

The run's row is written by its :class:`~context_cleaner.migration.run_record.RunRecorder`:
``running`` when it begins (after a snapshot of the data tables, which a ``complete``
rollback restores) and at each checkpoint, then ``completed`` or ``failed``. A dry run
reads and counts without writing anything.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

from context_cleaner.bridge import BridgeWriter, EnhancedTokenDatabaseBridge, database_exists
from context_cleaner.migration import pipeline, rollback
from context_cleaner.migration.commits import ROLLUPS_DEFERRED
from context_cleaner.migration.comparison import ReadSums, read_sums
from context_cleaner.migration.counts import add_net
from context_cleaner.migration.crashed_runs import close_crashed
from context_cleaner.migration.incremental import skipped_note
from context_cleaner.migration.ledger import RUN_LEDGER, Ledger
from context_cleaner.migration.models import HistoricalMigrationResult
from context_cleaner.migration.monitor import RunMonitor
from context_cleaner.migration.pipeline import ProgressCallback, RunOptions, RunState
from context_cleaner.migration.readers import BatchReader, own_rss, tree_rss
from context_cleaner.migration.run_record import LogEntry, RunCounts, RunRecorder
from context_cleaner.migration.status import progress_record

#: Seconds between two rebuilds of the rollups during a migration that builds them whole
#: (``MigrationRun.deferred``); a shorter run rebuilds them once, at its end.
CATCH_UP_EVERY = 60.0

#: Rows per second a fresh embedded database takes (measured; used for dry-run projections).
PROJECTED_INSERT_ROWS_PER_SECOND = 150_000


def counts_of(state: RunState) -> RunCounts:
    """A migration's counts so far, for its run row."""
    found, plan = state.discovery, state.plan
    return RunCounts(
        source_roots=pipeline.source_paths(found) if found else [],
        files_found=len(found.files) if found else 0,
        files_processed=state.files_done - state.files_failed,
        files_skipped=len(plan.unchanged) if plan else 0,
        files_failed=state.files_failed,
        records_inserted=state.records_added,
        lines_skipped=state.skipped_lines,
        net=state.net,
    )


@dataclass(eq=False)  # a run is itself: compared and hashed by identity
class MigrationRun:
    """One run of :meth:`HistoricalDataMigrator.run` (a migration, a dry run, or a sync's
    plan read as a migration's)."""

    bridge: EnhancedTokenDatabaseBridge
    state: RunState
    options: RunOptions
    _: KW_ONLY
    kind: str = "migrate"
    validation_enabled: bool = True
    keep_snapshots: int = rollback.DEFAULT_KEEP
    min_snapshot_interval: float = 0.0
    monitor: RunMonitor | None = None
    recorder: RunRecorder = field(init=False)
    deferred: bool = field(init=False, default=False)
    """The rollups are rebuilt whole by the run, not unit by unit (``execute``)."""
    _last_snapshot: float = field(init=False, default=0.0)
    _caught_up: tuple[float, float] = field(init=False, default=(0.0, 0.0))
    """When the last rebuild of a deferring run ended, and how long it took."""
    _ended: bool = field(init=False, default=False)
    """The run's last row is written (``_finish``)."""

    def __post_init__(self) -> None:
        self.recorder = RunRecorder(
            self.bridge, self.kind, self.state.migration_id, started=self.state.started
        )

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    def execute(
        self, reader: BatchReader | None, progress: ProgressCallback | None
    ) -> HistoricalMigrationResult:
        bridge, state, options, dry_run = self.bridge, self.state, self.options, self.dry_run
        exists = holds_schema(bridge)
        prefetched = False
        if not exists and not dry_run and reader is not None:
            # Nothing is committed in a database that does not exist yet: discover on a
            # reader while this process loads the engine, then plan and start reading
            # while it opens the database and applies the schema.
            found = reader.discover(pipeline.source_roots(options))
            bridge.load_client_library()
            state.discovery, state.plan = pipeline.discover_and_plan(None, options, found.result())
            reader.prefetch(pipeline.planned_batches(state, options))
            prefetched = True
        if not dry_run:
            bridge.setup_migration_infrastructure()
        if prefetched:
            assert reader is not None
            # Working memory is measured from here: this process after connecting, the
            # workers as they were when ready, before they read anything.
            state.baseline_rss = own_rss() + reader.idle_rss()
            if pipeline.load_states(bridge):  # another process migrated in the meantime
                reader.discard_prefetch()
                state.batched = None
                prefetched = False
        else:
            state.baseline_rss = tree_rss()
        state.note_memory(options.memory)
        if not prefetched:
            state.discovery, state.plan = pipeline.discover_and_plan(
                bridge if (exists or not dry_run) else None, options
            )
        # A database this run created holds nothing yet (prefetched: no other run filled it).
        counted = not dry_run and not prefetched
        sessions_before = bridge.count_sessions() if counted else 0
        if dry_run:
            return self._run(reader, progress, prefetched, counted, sessions_before)
        self._begin(fresh=not exists)
        try:
            return self._run(reader, progress, prefetched, counted, sessions_before)
        except BaseException as exc:
            # Whatever stops it once its row says `running` (an error, a validation that
            # could not run, Ctrl-C): the row says `failed` (a kill leaves it for the next
            # run to close as crashed).
            if not self._ended:
                self._fail(exc)
            raise

    def _run(
        self,
        reader: BatchReader | None,
        progress: ProgressCallback | None,
        prefetched: bool,
        counted: bool,
        sessions_before: int,
    ) -> HistoricalMigrationResult:
        """The run once its row is written: read and commit, rebuild, validate, finish
        (``counted``: the database was not made by this run and may hold rows;
        ``sessions_before``: its sessions when the run began)."""
        bridge, state, options, dry_run = self.bridge, self.state, self.options, self.dry_run
        validating = not dry_run and self.validation_enabled and self.kind == "migrate"
        # A migration into a database that holds no usage rows builds the rollups whole,
        # at its checkpoints and its end, not unit by unit (commits.ROLLUPS_DEFERRED).
        self.deferred = (
            not dry_run and self.kind == "migrate" and (prefetched or not bridge.holds_usage_rows())
        )
        self._caught_up = (time.monotonic(), 0.0)
        # The validation of a run into a database that held nothing sums the whole table.
        started_empty = self.deferred or (
            validating and counted and not bridge.get_migration_totals().get("records", 1)
        )
        read = Ledger() if validating else None
        summed: Future[ReadSums] | None = None
        token = RUN_LEDGER.set(read)
        deferring = ROLLUPS_DEFERRED.set(self.deferred)
        try:
            pipeline.run_batches(
                bridge,
                state,
                options,
                progress=progress,
                on_checkpoint=self._checkpoint,
                on_batch=self._catch_up_now_and_then,
                reader=reader,
            )
            if reader is not None:
                reader.close()  # every batch is read: the readers' memory is not needed now
            # The run's records summed for its validation on a thread while this one
            # rebuilds the rollups (the engine works without holding the interpreter).
            if read is not None:
                summing = ThreadPoolExecutor(1, thread_name_prefix="validation-sums")
                summed = summing.submit(read_sums, read)
                summing.shutdown(wait=False)
            self._catch_up()
        finally:
            ROLLUPS_DEFERRED.reset(deferring)
            RUN_LEDGER.reset(token)
        options.memory.sample(force=True)
        state.note_memory(options.memory)
        result = migration_result(bridge, state, dry_run, sessions_before, options)
        if self.monitor is not None:
            result.alerts_fired = self.monitor.fired()
        if not dry_run:
            if validating and read is not None and state.plan is not None and state.plan.items:
                self._validate(result, read, started_empty, summed)
            else:
                result.validation_passed = not state.errors
                result.data_integrity_score = 1.0 if not state.errors else 0.0
            options.memory.sample(force=True)  # the validation's memory counts too
            state.note_memory(options.memory)
            set_memory(result, state)
            self._finish("completed" if result.success else "failed", result=result)
        return result

    def _validate(
        self,
        result: HistoricalMigrationResult,
        read: Ledger,
        started_empty: bool,
        summed: Future[ReadSums] | None,
    ) -> None:
        """The run's own check: what it read against the rows (no transcript read twice;
        ``summed``: its records' sums being made on another thread)."""
        from context_cleaner.migration import validator

        roots = self.options.source_dirs
        if read.has_ranges or not self.state.records_inserted:
            report = validator.validate_run(
                self.bridge,
                read,
                roots,
                database_totals=result.database_totals,
                started_empty=started_empty,
                summed=summed,
            )
        else:  # the batches ran where this process could not see what they read
            report = validator.validate_migration_integrity(self.bridge, roots)
        result.validation_passed = report.passed
        result.data_integrity_score = report.integrity_score
        result.consistency_check_results = report.to_dict()

    def _catch_up(self) -> None:
        """A deferring run (``self.deferred``): rebuild both rollups whole, under one hold of
        the database (the rollups equal the rows when it ends), and add to the run's net
        change what the rebuild brought into the day rollup: the rows inserted since the
        rollups were last level, which no unit measured. A unit's refresh measures its own
        the same way, so each change of the counted totals is measured once, by the run that
        brings it into the rollups: runs at the same time add up to the database's totals
        (a deferring run's count can include rows another run inserted meanwhile)."""
        if not self.deferred:
            return
        state = self.state
        started = time.monotonic()
        change: dict[str, float] = {}
        with self.bridge.writer() as w:
            w.rebuild_rollups(state.migration_id, change)
        add_net(state.net, change)
        ended = time.monotonic()
        self._caught_up = (ended, ended - started)

    def _catch_up_now_and_then(self, state: RunState, result: object) -> None:
        """During a long deferring run, rebuild the rollups every :data:`CATCH_UP_EVERY`
        seconds (or four times the last rebuild's time, if longer: at most a fifth of the
        run goes to it), so reports, the dashboard and a run killed meanwhile lag its rows
        by about that much, not by the whole run."""
        if not self.deferred:
            return
        last, took = self._caught_up
        if time.monotonic() - last >= max(CATCH_UP_EVERY, 4 * took):
            self._catch_up()

    def _fail(self, exc: BaseException) -> None:
        """Record the run ``failed``. A deferring run brings the rollups level with its rows
        first; when it cannot (the database refuses), its row is kept beside the database
        and the run stays ``running`` in it, so the next run closes it and recomputes the
        rollups of its sessions (``crashed_runs``)."""
        stash = False
        if self.deferred:
            try:
                self._catch_up()
            except Exception:
                stash = True
        self._finish("failed", extra={"error": str(exc)}, stash=stash)

    # -- the run's row ------------------------------------------------------------------------

    def _begin(self, *, fresh: bool = False) -> None:
        """Close crashed runs (none in a database this run created), snapshot, run row."""
        state, options = self.state, self.options
        assert state.discovery is not None and state.plan is not None
        if not fresh:
            close_crashed(self.bridge, state, pipeline.source_paths(state.discovery))

        def snapshot(w: BridgeWriter) -> None:
            rollback.take_snapshot(w.client, self.bridge.host, state.migration_id)
            rollback.prune_snapshots(w.client, self.keep_snapshots)
            self._last_snapshot = time.monotonic()

        started = {
            "roots": pipeline.source_paths(state.discovery),
            "files": len(state.discovery.files),
            "pending_files": len(state.plan.items),
            "pending_bytes": state.plan.pending_bytes,
            "batch_size": options.batch_size,
            "workers": options.parallel_workers,
        }
        self.recorder.running(
            counts_of(state),
            LogEntry(self.kind, "start", "started", started),
            first=snapshot if self.kind == "migrate" else None,
        )

    def _checkpoint(self, state: RunState, number: int) -> None:
        """Log a checkpoint; snapshot it too unless the last snapshot is very recent."""
        label = f"cp{number}"
        now = time.monotonic()
        snapshot = self.options.snapshot_checkpoints and (
            now - self._last_snapshot >= self.min_snapshot_interval
        )

        def take(w: BridgeWriter) -> None:  # (pruned when a run begins: a run keeps all its)
            rollback.take_snapshot(w.client, self.bridge.host, state.migration_id, label)
            self._last_snapshot = now

        self._catch_up()  # a checkpoint (and its snapshot) holds rollups equal to its rows
        progress = {
            "files_done": state.files_done,
            "records": state.records_inserted,
            "snapshot": snapshot,
            "progress": progress_record(state),
        }
        self.recorder.running(
            counts_of(state),
            LogEntry("checkpoint", label, "completed", progress),
            first=take if snapshot else None,
        )
        if snapshot:
            state.checkpoints.append(label)

    def _finish(
        self,
        status: str,
        *,
        result: HistoricalMigrationResult | None = None,
        extra: dict[str, Any] | None = None,
        stash: bool = False,
    ) -> None:
        """Write the run's last row (``stash``: keep it beside the database instead)."""
        state = self.state
        details = {
            "errors": state.errors[:50],
            "progress": progress_record(state, status),
            **(self.monitor.run_details() if self.monitor is not None else {}),
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
        log = LogEntry(
            self.kind,
            "finish",
            "failed" if status == "failed" else "completed",
            details,
            self.recorder.elapsed_ms(state.started),
        )
        # Already failing (no result): a refused row must not hide the run's own error.
        self.recorder.finished(
            status, counts_of(state), details, log, quiet=result is None, stash=stash
        )
        self._ended = True


def holds_schema(bridge: EnhancedTokenDatabaseBridge) -> bool:
    """Whether the database holds the schema (one the server does not know: no; the run
    creates it, or fails saying why). A server that cannot be reached, or a database held
    by another process past the wait, fails here: asking again would only wait again (a
    refused connection was retried for 3.5 s twice)."""
    from context_cleaner.errors import MigrationError, TransientError

    try:
        return database_exists(bridge)
    except TransientError:
        raise
    except MigrationError:
        return False


def migration_result(
    bridge: EnhancedTokenDatabaseBridge,
    state: RunState,
    dry_run: bool,
    sessions_before: int,
    options: RunOptions,
) -> HistoricalMigrationResult:
    """The result of a finished run, from its counters (and the database's totals)."""
    assert state.discovery is not None and state.plan is not None
    end = time.time()
    duration = end - state.started
    after = bridge.get_migration_totals() if not dry_run else {}
    sessions_after = bridge.count_sessions() if not dry_run else 0
    # Net: what this run's commits changed, measured unit by unit under the database's
    # hold (another run's commits meanwhile are not counted; a dry run: what it read).
    migrated = state.tokens_added if not dry_run else state.tokens_in_records
    records = state.records_added if not dry_run else state.records_inserted
    plan = state.plan
    counts = {"new": 0, "appended": 0, "reset": len(plan.reset), "unchanged": len(plan.unchanged)}
    for item in plan.items:
        if item.reason in ("new", "forced"):
            counts["new"] += 1
        elif item.reason == "appended":
            counts["appended"] += 1
    projected = None
    if dry_run:
        projected = state.analysis_seconds / max(1, options.parallel_workers) + (
            state.records_inserted / PROJECTED_INSERT_ROWS_PER_SECOND
        )
    warnings = []
    if state.skipped_lines:
        warnings.append(skipped_note(state.skipped_lines, state.skipped_by_reason))
    warnings += state.warnings
    warnings += [f"{p.path}: {p.reason}" for p in state.discovery.problems]
    result = HistoricalMigrationResult(
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
        average_processing_speed_tokens_per_second=state.tokens_in_records / max(duration, 1e-9),
        peak_memory_usage_mb=0.0,  # set_memory
        database_insertion_time=state.insert_seconds,
        errors=state.errors,
        warnings=warnings,
        skipped_files=state.failed_files,
        bytes_processed=state.bytes_read,
        skipped_lines=state.skipped_lines,
        checkpoints=state.checkpoints,
        resumed_files=counts["appended"],
        database_totals=after,
        projected_seconds=projected,
        consistency_check_results={"plan": counts},
        skipped_lines_by_reason=dict(state.skipped_by_reason),
        skipped_line_examples=list(state.skipped_examples),
        closed_runs=list(state.closed_runs),
    )
    set_memory(result, state)
    return result


def set_memory(result: HistoricalMigrationResult, state: RunState) -> None:
    """The run's memory as sampled so far (``migration.memory``): peak private memory of
    the process tree as ``peak_memory_usage_mb``, its resident memory beside it."""
    result.peak_memory_usage_mb = state.peak_private / 2**20
    result.peak_resident_memory_mb = state.peak_rss / 2**20
    result.working_memory_mb = max(0, state.peak_rss - state.baseline_rss) / 2**20

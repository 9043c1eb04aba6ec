"""The plain migration pipeline: discover, plan, read batches, insert, commit, checkpoint.

Used as it is by the local engine (``context-cleaner migrate``/``sync``) and
wrapped by the Prefect flows; no logic lives anywhere else. One run:

1. discover the transcript files and read this host's committed file states;
2. plan: each file from its committed offset (or from 0 when it changed identity);
3. read batches of files in worker processes (:mod:`~context_cleaner.migration.readers`),
   at most a few in flight so memory stays flat whatever the corpus;
4. gather the batches read over about ``commit_every`` seconds into one commit (each
   commit costs fixed database work whatever its size), then, in one hold of the
   database: insert the usage rows, recompute the touched sessions' summaries, then
   commit the files' offsets (:mod:`~context_cleaner.migration.commits`);
5. every ``checkpoint_interval`` files: a checkpoint (logged, snapshotted): batches and
   units end where one falls, so checkpoint k holds exactly the first k * interval files
   (at most ``MAX_CHECKPOINTS`` a run: a wider interval when the run's files would make
   more, :func:`~context_cleaner.migration.checkpoints.bounded_interval`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Collection, Generator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from context_cleaner.analysis import gc_pace
from context_cleaner.analysis.discovery import Discovery, TranscriptFile, discover, resolve_roots
from context_cleaner.analysis.scan import ScanResult, merge_scans
from context_cleaner.bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import MigrationError
from context_cleaner.migration.checkpoints import bounded_interval
from context_cleaner.migration.commits import commit_scan, net_tokens
from context_cleaner.migration.counts import BatchCounts
from context_cleaner.migration.memory import MigrationMemoryManager
from context_cleaner.migration.models import BatchProcessingResult, MigrationProgress
from context_cleaner.migration.planning import FileState, Plan, WorkItem, batches, plan_work
from context_cleaner.migration.readers import BatchReader
from context_cleaner.settings import (
    BATCH_SIZE,
    COMMIT_EVERY,
    COMMIT_MAX_RECORDS,
    DEFAULTS,
    MAX_BATCH_BYTES,
    SPEC_CHECKPOINT_INTERVAL,
)

ProgressCallback = Callable[[MigrationProgress], None]

WAIT_CHECK_EVERY = 0.05
"""Seconds between two asks whether another process waits for the database (a unit is
then committed at once, so the waiter gets the database after at most one unit)."""


@dataclass(slots=True)
class RunOptions:
    """How a run reads and writes; one typed place for the flags of migrate and sync."""

    source_dirs: list[str] | None = None
    batch_size: int = BATCH_SIZE
    parallel_workers: int = field(
        default_factory=lambda: resolve_workers(DEFAULTS.parallel_workers)
    )
    checkpoint_interval: int = SPEC_CHECKPOINT_INTERVAL
    dry_run: bool = False
    force: bool = False
    max_batch_bytes: int = MAX_BATCH_BYTES
    commit_max_records: int = COMMIT_MAX_RECORDS
    """A commit gathers at most this many usage records (memory stays flat)."""
    snapshot_checkpoints: bool = True
    only_paths: set[str] | None = None
    """Restrict the run to these absolute paths (watch mode)."""
    commit_every: float = COMMIT_EVERY
    """Gather the batches read over this many seconds into one commit: fewer, larger
    units of work. A commit is made sooner when another process waits for the
    database, and 0 commits every batch on its own."""
    memory: MigrationMemoryManager = field(
        default_factory=lambda: MigrationMemoryManager(DEFAULTS.max_memory_mb)
    )
    """Samples the run's memory and bounds its private memory: near the bound a commit
    is made at once (:mod:`~context_cleaner.migration.memory`)."""


@dataclass(slots=True)
class RunState(BatchCounts):
    """Counters a run accumulates (its batches' counts, :class:`BatchCounts`, summed and
    these); the results are computed from them."""

    migration_id: str
    started: float = field(default_factory=time.time)
    discovery: Discovery | None = None
    plan: Plan | None = None
    files_done: int = 0
    peak_rss: int = 0
    """Peak resident memory of the run's process tree (sampled: ``RunOptions.memory``)."""
    baseline_rss: int = 0
    """Resident memory after connecting to the database, before reading anything."""
    peak_private: int = 0
    """Peak private memory of the run's process tree (``migration.memory``)."""
    private_memory: int = 0
    """Private memory of the run's process tree at the last sample."""
    warnings: list[str] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    checkpoint_every: int = 0
    """Files between this run's checkpoints (``RunOptions.checkpoint_interval``, wider when
    that would make too many); set with ``batched``."""
    batches: list[BatchProcessingResult] = field(default_factory=list)
    batched: list[list[WorkItem]] | None = None
    """``plan`` in batches, as :func:`planned_batches` made them."""
    last_progress: float = field(default_factory=time.time)
    closed_runs: list[dict[str, object]] = field(default_factory=list)
    """Crashed runs this run closed (``crashed_runs.close_crashed_runs``)."""

    @property
    def tokens_added(self) -> int:
        """Tokens this run added to the database (net: responses it already held add 0)."""
        return net_tokens(self.net)

    @property
    def records_added(self) -> int:
        """Counted records this run added to the database (net)."""
        return int(self.net.get("records", 0))

    def note_memory(self, memory: MigrationMemoryManager) -> None:
        """Sample the tree's memory (at most a few times a second) and keep the peaks.

        The peaks are the manager's: every sample it took counts, including those its
        own ``near_limit`` checks took between two calls of this method."""
        now = memory.sample()
        self.private_memory = now.private
        self.peak_private = max(self.peak_private, now.private, memory.peak_usage)
        self.peak_rss = max(self.peak_rss, now.resident, memory.peak_resident)


def load_states(
    bridge: EnhancedTokenDatabaseBridge, paths: Collection[str] | None = None
) -> dict[tuple[str, str], FileState]:
    """This host's committed file states, keyed by (root, relative path); with ``paths``,
    only the files at those relative paths."""
    if not bridge.is_initialised():
        return {}
    return {(t.source_root, t.file_path): t for t in bridge.tracked_files(paths)}


def discover_and_plan(
    bridge: EnhancedTokenDatabaseBridge | None,
    options: RunOptions,
    found: Discovery | None = None,
) -> tuple[Discovery, Plan]:
    """The run's files (``found``, else discovered here) and its plan: where each is read
    from, by this host's committed states in ``bridge`` (none: every file from its start)."""
    if found is None:
        found = discover(source_roots(options))
    files: Sequence[TranscriptFile] = found.files
    if options.only_paths is not None:
        files = [f for f in files if f.path_str in options.only_paths]
    states = load_states(bridge) if bridge is not None else {}
    return found, plan_work(files, states, force=options.force)


def source_roots(options: RunOptions) -> list[Path]:
    """The run's transcript roots (``SourceNotFoundError`` when none exists)."""
    return resolve_roots(options.source_dirs or None)


def progress_of(state: RunState, phase: str) -> MigrationProgress:
    plan = state.plan
    total_files = len(plan.items) if plan else 0
    total_bytes = plan.pending_bytes if plan else 0
    elapsed = max(time.time() - state.started, 1e-6)
    rate = state.tokens_in_records / elapsed
    eta = None
    if state.bytes_read and total_bytes > state.bytes_read:
        remaining = (total_bytes - state.bytes_read) * elapsed / state.bytes_read
        eta = datetime.now(UTC) + timedelta(seconds=remaining)
    return MigrationProgress(
        migration_id=state.migration_id,
        current_phase=phase,
        files_completed=state.files_done,
        files_remaining=max(0, total_files - state.files_done),
        tokens_processed=state.tokens_in_records,
        estimated_completion_time=eta,
        current_processing_rate=rate,
        errors_encountered=len(state.errors) + state.files_failed,
        warnings_count=len(state.warnings),
        bytes_completed=state.bytes_read,
        bytes_total=total_bytes,
        records_inserted=state.records_inserted,
    )


def record_batch(state: RunState, batch: Sequence[WorkItem], result: BatchProcessingResult) -> None:
    """Add a committed batch's counts to the run's."""
    state.files_done += len(batch)
    state.failed_files += [e.split(": ", 1)[0] for e in result.errors]
    state.add_counts(result)
    state.batches.append(result)
    state.last_progress = time.time()


class BatchJob(NamedTuple):
    """What an executor is given: a run's planned batches, where they are committed and
    how they are read (``reader``: an entered one to use, else the executor makes one)."""

    bridge: EnhancedTokenDatabaseBridge
    state: RunState
    options: RunOptions
    plan: list[list[WorkItem]]
    reader: BatchReader | None


BatchResults = Generator[tuple[Sequence[WorkItem], BatchProcessingResult], None, None]
BatchExecutor = Callable[[BatchJob], BatchResults]
"""Reads and commits a run's planned batches, yielding each batch read and its result."""


def read_workers(state: RunState, options: RunOptions) -> int:
    """Reader processes for a run: ``--parallel-workers``, or 1 for a small run (< 8 MB)."""
    assert state.plan is not None
    return options.parallel_workers if state.plan.pending_bytes > 8 * 1024 * 1024 else 1


@dataclass(slots=True)
class CommitUnit:
    """Consecutive read batches committed together (see ``RunOptions.commit_every``)."""

    indices: list[int] = field(default_factory=list)
    """The read batches' positions (in the plan, or in a task's share of it)."""
    items: list[WorkItem] = field(default_factory=list)
    scans: list[ScanResult] = field(default_factory=list)
    seconds: float = 0.0
    records: int = 0
    started: float = 0.0

    def commit(
        self,
        bridge: EnhancedTokenDatabaseBridge,
        migration_id: str,
        dry_run: bool,
        *,
        first_index: int = 0,
    ) -> BatchProcessingResult:
        """Commit the unit; its id is ``<migration>-b<n>``, ``n`` its first batch's position
        in the run's plan (``first_index``: where ``indices`` start in it)."""
        batch_id = f"{migration_id}-b{first_index + self.indices[0]:05d}"
        scan = self.scans[0] if len(self.scans) == 1 else merge_scans(self.scans)
        return commit_scan(
            bridge, migration_id, batch_id, self.items, scan, self.seconds, dry_run=dry_run
        )


class Gatherer:
    """Gathers read batches into :class:`CommitUnit` s: a unit is full after
    ``commit_every`` seconds, ``commit_max_records`` records, its last batch, at a
    checkpoint, or as soon as another process waits for the database."""

    def __init__(
        self,
        options: RunOptions,
        bridge: EnhancedTokenDatabaseBridge,
        checkpoints: set[int] | None = None,
    ) -> None:
        self.every = options.commit_every
        self.max_records = options.commit_max_records
        self.memory = options.memory
        self.database = bridge.database
        self.unit = CommitUnit()
        self.checkpoints = checkpoints or set()
        """Batch positions after which a checkpoint falls: a unit ends there."""
        self._asked = 0.0

    def _waited_for(self) -> bool:
        """Whether another process waits for the database, asked at most every
        :data:`WAIT_CHECK_EVERY` seconds (a file opened and locked per ask: 200 asks on
        20,000 small files)."""
        now = time.monotonic()
        if now - self._asked < WAIT_CHECK_EVERY:
            return False
        self._asked = now
        return self.database.someone_waiting()

    def add(
        self, index: int, batch: Sequence[WorkItem], scan: ScanResult, seconds: float, last: bool
    ) -> CommitUnit | None:
        """Add a read batch; returns the unit when it is to be committed now."""
        unit = self.unit
        if not unit.indices:
            unit.started = time.monotonic()
        unit.indices.append(index)
        unit.items.extend(batch)
        unit.scans.append(scan)
        unit.seconds += seconds
        unit.records += len(scan.collector)
        if (
            last
            or index in self.checkpoints
            or time.monotonic() - unit.started >= self.every
            or unit.records >= self.max_records
            or self._waited_for()
            or self.memory.near_limit()  # what the unit holds is freed by its commit
        ):
            return self.take()
        return None

    def take(self) -> CommitUnit | None:
        """The unit gathered so far (None when empty); the next one starts empty."""
        unit, self.unit = self.unit, CommitUnit()
        return unit if unit.indices else None


def local_batches(job: BatchJob) -> BatchResults:
    """The plain executor: batches read on worker processes, committed here in order.

    Consecutive batches are committed together (:class:`Gatherer`) and yielded as one
    batch: the run counts and checkpoints what is committed.
    """
    bridge, state, options, plan, reader = job
    own = reader is None
    made = BatchReader(read_workers(state, options)) if own else None
    gather = Gatherer(options, bridge, checkpoint_ends(plan, state.checkpoint_every))

    def commit(unit: CommitUnit) -> tuple[Sequence[WorkItem], BatchProcessingResult]:
        return unit.items, unit.commit(bridge, state.migration_id, options.dry_run)

    with made if made is not None else contextlib.nullcontext(reader) as reader:
        for index, scan, seconds in reader.read(plan):
            unit = gather.add(index, plan[index], scan, seconds, last=index == len(plan) - 1)
            if unit is not None:
                yield commit(unit)
        if (unit := gather.take()) is not None:
            yield commit(unit)


BATCH_OBSERVER: ContextVar[Callable[[RunState, BatchProcessingResult], None] | None] = ContextVar(
    "batch_observer", default=None
)
"""Called after every batch of :func:`run_batches` in this context, before ``on_batch``
(the run monitor sets it: metrics and alerts, :mod:`context_cleaner.migration.monitor`)."""

BATCH_EXECUTOR: ContextVar[BatchExecutor | None] = ContextVar("batch_executor", default=None)
"""The executor :func:`run_batches` uses in this context (None: :func:`local_batches`).

An orchestrator sets it to run each batch its own way (the Prefect flows make each
a retryable, cached task); counting, callbacks and checkpoints stay in run_batches.
"""


def planned_batches(state: RunState, options: RunOptions) -> list[list[WorkItem]]:
    """``state.plan`` grouped into read batches (made once, so a prefetch and the run agree)."""
    assert state.plan is not None
    if state.batched is None:
        every, note = bounded_interval(len(state.plan.items), options.checkpoint_interval)
        if note and note not in state.warnings:
            state.warnings.append(note)
        state.checkpoint_every = every
        made = batches(state.plan.items, options.batch_size, options.max_batch_bytes)
        state.batched = split_at_checkpoints(made, every)
    return state.batched


def split_at_checkpoints(planned: list[list[WorkItem]], interval: int) -> list[list[WorkItem]]:
    """``planned`` with every batch cut where a checkpoint falls (after each ``interval``
    files of the run), so a checkpoint is taken exactly every ``interval`` files."""
    if interval <= 0:
        return planned
    out: list[list[WorkItem]] = []
    files = 0
    for batch in planned:
        current: list[WorkItem] = []
        for item in batch:
            current.append(item)
            files += 1
            if files % interval == 0:
                out.append(current)
                current = []
        if current:
            out.append(current)
    return out


def checkpoint_ends(planned: Sequence[Sequence[WorkItem]], interval: int) -> set[int]:
    """Positions of the batches of ``planned`` after which a checkpoint falls."""
    ends: set[int] = set()
    if interval <= 0:
        return ends
    files = 0
    for index, batch in enumerate(planned):
        before, files = files, files + len(batch)
        if files // interval > before // interval:
            ends.add(index)
    return ends


def run_batches(
    bridge: EnhancedTokenDatabaseBridge,
    state: RunState,
    options: RunOptions,
    *,
    progress: ProgressCallback | None = None,
    on_checkpoint: Callable[[RunState, int], None] | None = None,
    on_batch: Callable[[RunState, BatchProcessingResult], None] | None = None,
    reader: BatchReader | None = None,
) -> None:
    """Read and commit every batch of ``state.plan`` (see the module docstring).

    ``reader`` is an entered :class:`BatchReader` to use (one is made otherwise).
    """
    assert state.plan is not None
    plan = planned_batches(state, options)
    files_committed = 0
    checkpoint_no = 0
    executor = BATCH_EXECUTOR.get() or local_batches
    job = BatchJob(bridge, state, options, plan, reader)
    with gc_pace.bulk_work(), contextlib.closing(executor(job)) as results:
        for batch, result in results:
            record_batch(state, batch, result)
            state.note_memory(options.memory)
            if (observer := BATCH_OBSERVER.get()) is not None:
                observer(state, result)
            if on_batch is not None:
                on_batch(state, result)
            if progress is not None:
                progress(progress_of(state, "migrating"))
            files_committed += len(batch)
            interval = state.checkpoint_every
            if interval > 0 and files_committed // interval > checkpoint_no:
                # Checkpoint k: the first k * interval files committed (units end there;
                # an executor that grouped past it checkpoints at its next commit).
                checkpoint_no = files_committed // interval
                if on_checkpoint is not None and not options.dry_run:
                    on_checkpoint(state, checkpoint_no)


def resolve_workers(requested: int | None) -> int:
    """``--parallel-workers``: at least 1, at most the cores (more only adds contention)."""
    cores = os.cpu_count() or 1
    if requested is None:
        return cores
    if requested < 1:
        raise MigrationError(f"--parallel-workers must be at least 1 (got {requested}).")
    return min(requested, max(cores, 1))


def source_paths(found: Discovery) -> list[str]:
    return [str(r) for r in found.roots]

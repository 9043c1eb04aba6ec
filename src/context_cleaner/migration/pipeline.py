"""The plain migration pipeline: discover, plan, read batches, insert, commit, checkpoint.

Used as it is by the local engine (``context-cleaner migrate``/``sync``) and
wrapped by the Prefect flows; no logic lives anywhere else. One run:

1. discover the transcript files and read this host's committed file states;
2. plan: each file from its committed offset (or from 0 when it changed identity);
3. read batches of files in worker processes (both cores), at most a few in
   flight so memory stays flat whatever the corpus;
4. gather the batches read over about ``commit_every`` seconds into one commit (each
   commit costs ~0.1 s of fixed database work whatever its size), then, in one hold
   of the database: insert the usage rows, recompute the touched sessions'
   summaries, then commit the files' offsets (rows first, so a crash in between
   only replays the range, which the table's key makes harmless);
5. every ``checkpoint_interval`` files: a checkpoint (logged, snapshotted): batches and
   units end where one falls, so checkpoint k holds exactly the first k * interval files.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from context_cleaner.analysis.discovery import Discovery, TranscriptFile, discover, resolve_roots
from context_cleaner.analysis.processes import die_with_parent
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.scan import (
    FileStats,
    ScanResult,
    decode_scan,
    merge_scans,
    scan_ranges,
    scan_ranges_encoded,
)
from context_cleaner.bridge.summaries import CHANGE_KEYS
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.bridge.tracking import FileCommit
from context_cleaner.errors import MigrationError, TransientError
from context_cleaner.migration import ledger
from context_cleaner.migration.defaults import COMMIT_EVERY, COMMIT_MAX_RECORDS, MAX_BATCH_BYTES
from context_cleaner.migration.models import BatchProcessingResult, MigrationProgress
from context_cleaner.migration.planning import (
    HEAD_BYTES,
    FileState,
    Plan,
    WorkItem,
    batches,
    head_hash,
    plan_work,
)
from context_cleaner.observability import telemetry

ProgressCallback = Callable[[MigrationProgress], None]

#: Retries of a batch's database work on transient errors (then the run fails, resumable).
BATCH_RETRIES = 3

#: Skipped lines kept as examples per batch and per run (their counts are always complete).
SKIPPED_EXAMPLES = 20


def new_migration_id(kind: str = "mig") -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


@dataclass(slots=True)
class RunOptions:
    """How a run reads and writes; one typed place for the flags of migrate and sync."""

    source_dirs: list[str] | None = None
    batch_size: int = 100
    parallel_workers: int = 2
    checkpoint_interval: int = 10
    dry_run: bool = False
    force: bool = False
    max_batch_bytes: int = MAX_BATCH_BYTES
    snapshot_checkpoints: bool = True
    only_paths: set[str] | None = None
    """Restrict the run to these absolute paths (watch mode)."""
    commit_every: float = COMMIT_EVERY
    """Gather the batches read over this many seconds into one commit: fewer, larger
    units of work. A commit is made sooner when another process waits for the
    database, and 0 commits every batch on its own."""


@dataclass(slots=True)
class RunState:
    """Counters a run accumulates; the results are computed from them."""

    migration_id: str
    started: float = field(default_factory=time.time)
    discovery: Discovery | None = None
    plan: Plan | None = None
    files_done: int = 0
    files_failed: int = 0
    bytes_done: int = 0
    lines_read: int = 0
    records_inserted: int = 0
    tokens_in_records: int = 0
    skipped_lines: int = 0
    insert_seconds: float = 0.0
    analysis_seconds: float = 0.0
    peak_rss: int = 0
    baseline_rss: int = 0
    """Resident memory after connecting to the database, before reading anything."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    batches: list[BatchProcessingResult] = field(default_factory=list)
    batched: list[list[WorkItem]] | None = None
    """``plan`` in batches, as :func:`planned_batches` made them."""
    last_progress: float = field(default_factory=time.time)
    net: dict[str, float] = field(default_factory=dict)
    """The net change of the database's counted totals made by this run's commits."""
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
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

    def note_memory(self) -> None:
        rss = tree_rss()
        if rss > self.peak_rss:
            self.peak_rss = rss


def own_rss() -> int:
    """Resident memory of this process alone, in bytes."""
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return 0


def tree_rss() -> int:
    """Resident memory of this process and its workers, in bytes."""
    try:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total
    except psutil.Error:
        return 0


def load_states(bridge: EnhancedTokenDatabaseBridge) -> dict[tuple[str, str], FileState]:
    """This host's committed file states, keyed by (root, relative path)."""
    if not bridge.is_initialised():
        return {}
    return {(t.source_root, t.file_path): t for t in bridge.tracked_files()}


def discover_and_plan(
    bridge: EnhancedTokenDatabaseBridge | None, options: RunOptions
) -> tuple[Discovery, Plan]:
    roots = resolve_roots(options.source_dirs or None)
    found = discover(roots)
    files: Sequence[TranscriptFile] = found.files
    if options.only_paths is not None:
        files = [f for f in files if str(f.path) in options.only_paths]
    states = load_states(bridge) if bridge is not None else {}
    return found, plan_work(files, states, force=options.force)


# -- reading batches in worker processes -------------------------------------------------


def _ranges(batch: Sequence[WorkItem]) -> list[tuple[TranscriptFile, int, int]]:
    return [(i.file, i.start_offset, i.start_line) for i in batch]


#: Batches in flight per worker process (see :class:`BatchReader`).
IN_FLIGHT_PER_WORKER = 3


def _warm_up() -> tuple[int, int]:
    """Runs first in each new worker (a spawned one has imported the reader by then).

    Returns the worker's pid and resident memory once it is ready to read.
    """
    return os.getpid(), own_rss()


#: Reader processes run this much nicer than the run's own process. That process
#: (the engine, the commits) is the run's critical path and the readers work ahead of
#: it into a queue, so it should get a core whenever it wants one (docs/benchmarks.md).
#: On a machine busy with other work, the readers also yield to it.
READER_NICENESS = 10


def _start_reader(parent: int) -> None:
    """Runs first in each reader process: lower its priority (:data:`READER_NICENESS`),
    and end it when the run's process dies (:func:`die_with_parent`)."""
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(READER_NICENESS)
    die_with_parent(parent)


def worker_start_method() -> str:
    """How to start reader processes: ``fork`` while that is safe here, else ``spawn``.

    A forked worker is ready at once; a spawned one starts Python and imports the
    reader (~0.13 s, ~0.13 CPU-s each, on cores that are about to read). Forking is
    safe on Linux while this process runs one thread (counted by the kernel, so threads
    that libraries start outside Python count too) and has not loaded the embedded
    engine (its state must not be copied); a database lock held here is dropped in the
    child (``PROCESS_LOCKS.forget_after_fork``). Otherwise: spawn.
    """
    if sys.platform != "linux" or "chdb" in sys.modules or _os_threads() > 1:
        return "spawn"
    return "fork"


def _os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class BatchReader:
    """Reads batches on worker processes (forked when safe, see :func:`worker_start_method`).

    At most ``IN_FLIGHT_PER_WORKER * workers`` batches are in flight (queued, being
    read, or read and not yet taken), so memory does not grow with the corpus: a read
    batch is its records only, about 1% of its bytes. The queue is deep enough to keep
    the workers reading while this process starts the engine or commits. Yields results
    in batch order.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._frozen = False
        self._warming: list[Future[tuple[int, int]]] = []
        self._plan: Sequence[Sequence[WorkItem]] | None = None
        self._pending: deque[tuple[int, Future[bytes], float]] = deque()
        self._next = 0

    def __enter__(self) -> BatchReader:
        """Start the worker processes (several only when ``workers`` > 1)."""
        if self.workers > 1:
            method = worker_start_method()
            if method == "fork":
                # What exists now lives as long as the run: keep collections in this
                # process and the forked ones from walking it (and copying its pages).
                gc.freeze()
                self._frozen = True
            try:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context(method),
                    initializer=_start_reader,
                    initargs=(os.getpid(),),
                )
                # Forked workers start now, before the pool's own thread does; spawned
                # ones import the reader meanwhile, while this process goes on.
                self._warming = [self._pool.submit(_warm_up) for _ in range(self.workers)]
            except BaseException:
                self.__exit__()
                raise
        return self

    def idle_rss(self) -> int:
        """The workers' resident memory when ready, before reading (0 without workers).

        Waits for :meth:`warm`'s start-up; a worker that did not report (another ran
        both warm-ups) is counted like the largest one that did.
        """
        if not self._warming:
            return 0
        reported: dict[int, int] = {}
        for future in self._warming:
            with contextlib.suppress(Exception):
                pid, rss = future.result(timeout=60)
                reported[pid] = max(rss, reported.get(pid, 0))
        if not reported:
            return 0
        return sum(reported.values()) + (self.workers - len(reported)) * max(reported.values())

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def prefetch(self, plan: Sequence[Sequence[WorkItem]]) -> None:
        """Start reading ``plan``'s first batches now; :meth:`read` of the same plan goes on."""
        if self._pool is None:
            return
        self._plan, self._pending, self._next = plan, deque(), 0
        self._submit()

    def discard_prefetch(self) -> None:
        """Forget a prefetched plan (its results are not wanted after all)."""
        for _, future, _ in self._pending:
            future.cancel()
        self._plan, self._pending, self._next = None, deque(), 0

    def _submit(self) -> bool:
        """Keep the queue of batches full; True when any batch is in flight."""
        assert self._pool is not None and self._plan is not None
        plan = self._plan
        while self._next < len(plan) and len(self._pending) < IN_FLIGHT_PER_WORKER * self.workers:
            future = self._pool.submit(scan_ranges_encoded, _ranges(plan[self._next]))
            self._pending.append((self._next, future, time.perf_counter()))
            self._next += 1
        return bool(self._pending)

    def read(self, plan: Sequence[Sequence[WorkItem]]) -> Iterator[tuple[int, ScanResult, float]]:
        if self._pool is None:
            for index, batch in enumerate(plan):
                started = time.perf_counter()
                yield index, scan_ranges(_ranges(batch)), time.perf_counter() - started
            return
        if self._plan is not plan:
            self.discard_prefetch()
            self._plan = plan
        while self._submit():
            index, future, started = self._pending.popleft()
            data = future.result()
            yield index, decode_scan(data), time.perf_counter() - started
        self._plan = None


# -- committing one batch ------------------------------------------------------------------


@dataclass(slots=True)
class RecordSums:
    """A batch's records summed in one pass: by file, in all, and the sessions touched."""

    tokens: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, records: Sequence[UsageRecord]) -> RecordSums:
        sums = cls()
        tokens, counts, sessions = sums.tokens, sums.records, sums.sessions
        for r in records:
            path = r.file_path
            tokens[path] = tokens.get(path, 0) + r.total_tokens
            counts[path] = counts.get(path, 0) + 1
            sessions.add(r.session_id)
        return sums


def file_commits(batch: Sequence[WorkItem], scan: ScanResult, sums: RecordSums) -> list[FileCommit]:
    """Tracking rows for a batch: where each file's committed range now ends."""
    tokens, counts = sums.tokens, sums.records
    by_rel = {(s.path, s.relative_path): s for s in scan.files}
    commits = []
    for item in batch:
        f = item.file
        stats: FileStats | None = by_rel.get((str(f.path), f.relative_path))
        if stats is None:
            continue
        failed = bool(stats.error)
        end = stats.end_offset if not failed else item.start_offset
        head_len = min(HEAD_BYTES, end)
        commits.append(
            FileCommit(
                source_root=str(f.root),
                file_path=f.relative_path,
                device=f.device,
                inode=f.inode,
                head_hash=head_hash(str(f.path), head_len),
                head_length=head_len,
                file_size=stats.size,
                mtime_ns=f.mtime_ns,
                range_start=item.start_offset,
                committed_offset=end,
                committed_line=item.start_line + (stats.lines if not failed else 0),
                tokens_found=tokens.get(f.relative_path, 0),
                records_inserted=counts.get(f.relative_path, 0),
                lines_skipped=stats.skipped_lines,
                status="failed" if failed else "completed",
                error_message=stats.error,
            )
        )
    return commits


def write_batch(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    records: Sequence[UsageRecord],
    commits: Sequence[FileCommit],
    *,
    sessions: set[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    net: dict[str, float] | None = None,
) -> float:
    """Insert, refresh summaries, commit offsets: one unit of work, retried when transient.

    ``sessions`` are the records' sessions (found here when not given). Returns the
    seconds spent. Raises the last error when retries run out. ``net``, when given, gets
    the net change of the database's counted totals this unit made (:data:`NET_KEYS`):
    measured by the summary refresh inside the unit, under the database's hold, so
    another process's units are never counted in it.
    """
    if sessions is None:
        sessions = {r.session_id for r in records}
    delay = 0.5
    for attempt in range(1, BATCH_RETRIES + 1):
        started = time.perf_counter()
        change: dict[str, float] = {}
        try:
            with bridge.writer() as w:
                if records:
                    w.insert_records(records, migration_id)
                    w.refresh_summaries(sessions, migration_id, change)
                w.commit_files(commits, migration_id)
                w.release_memory()
            if net is not None:
                add_net(net, change)
            return time.perf_counter() - started
        except TransientError:
            if attempt == BATCH_RETRIES:
                raise
            telemetry.metrics().retry_attempts_counter.add(1, {"operation": "write_batch"})
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


NET_KEYS = CHANGE_KEYS
"""The counted totals whose net change a run measures (token kinds, cost, records)."""


def add_net(into: dict[str, float], change: dict[str, float]) -> None:
    """Add one net change to another (token counts and records stay integers)."""
    for key, value in change.items():
        into[key] = into.get(key, 0) + value


def net_tokens(net: dict[str, float]) -> int:
    """The total tokens of a net change."""
    return int(sum(net.get(k, 0) for k in NET_KEYS[:5]))


def progress_of(state: RunState, phase: str) -> MigrationProgress:
    plan = state.plan
    total_files = len(plan.items) if plan else 0
    total_bytes = plan.pending_bytes if plan else 0
    elapsed = max(time.time() - state.started, 1e-6)
    rate = state.tokens_in_records / elapsed
    eta = None
    if state.bytes_done and total_bytes > state.bytes_done:
        remaining = (total_bytes - state.bytes_done) * elapsed / state.bytes_done
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
        bytes_completed=state.bytes_done,
        bytes_total=total_bytes,
        records_inserted=state.records_inserted,
    )


@telemetry.traced(
    "migration.batch",
    arguments=("migration_id", "batch_id", "batch", "seconds", "dry_run"),
    outcome=("files_processed", "files_failed", "records_inserted", "tokens_in_records"),
)
def commit_scan(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    batch_id: str,
    batch: Sequence[WorkItem],
    scan: ScanResult,
    seconds: float,
    *,
    dry_run: bool = False,
) -> BatchProcessingResult:
    """Count one read batch and (unless a dry run) commit it: rows, summaries, then offsets."""
    records = list(scan.collector.candidates())
    result = BatchProcessingResult(
        batch_id=batch_id,
        files=[i.file.relative_path for i in batch],
        analysis_seconds=seconds,
    )
    for s in scan.files:
        result.bytes_read += s.end_offset - s.start_offset
        result.lines_read += s.lines
        result.usage_lines += s.usage_lines
        result.skipped_lines += s.skipped_lines
        if s.error:
            result.files_failed += 1
            result.errors.append(f"{s.path}: {s.error}")
        else:
            result.files_processed += 1
    sums = RecordSums.of(records)
    result.records_inserted = len(records)
    result.tokens_in_records = sum(sums.tokens.values())
    result.sessions_touched = len(sums.sessions)
    for reason, count in scan.skips.by_reason.items():
        result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + count
    result.skipped_examples = [
        f"{s.file_path}:{s.line_number} (byte {s.byte_offset}): {s.reason}"
        + (f" {s.detail}" if s.detail else "")
        for s in scan.skips.details[:SKIPPED_EXAMPLES]
    ]
    if not dry_run:
        commits = file_commits(batch, scan, sums)
        result.insert_seconds = write_batch(
            bridge, migration_id, records, commits, sessions=sums.sessions, net=result.net
        )
        ledger.note_committed(scan)  # what the run's own validation compares
    return result


def record_batch(state: RunState, batch: Sequence[WorkItem], result: BatchProcessingResult) -> None:
    """Add a committed batch's counts to the run's."""
    state.analysis_seconds += result.analysis_seconds
    state.insert_seconds += result.insert_seconds
    state.files_done += len(batch)
    state.files_failed += result.files_failed
    state.failed_files += [e.split(": ", 1)[0] for e in result.errors]
    state.errors += result.errors
    state.bytes_done += result.bytes_read
    state.lines_read += result.lines_read
    state.records_inserted += result.records_inserted
    state.tokens_in_records += result.tokens_in_records
    state.skipped_lines += result.skipped_lines
    add_net(state.net, result.net)
    for reason, count in result.skipped_by_reason.items():
        state.skipped_by_reason[reason] = state.skipped_by_reason.get(reason, 0) + count
    room = SKIPPED_EXAMPLES - len(state.skipped_examples)
    if room > 0:
        state.skipped_examples += result.skipped_examples[:room]
    state.batches.append(result)
    state.note_memory()
    state.last_progress = time.time()


BatchExecutor = Callable[
    [EnhancedTokenDatabaseBridge, RunState, RunOptions, list[list[WorkItem]], "BatchReader | None"],
    Generator[tuple[Sequence[WorkItem], BatchProcessingResult], None, None],
]
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
    ``commit_every`` seconds, :data:`COMMIT_MAX_RECORDS` records, its last batch, at a
    checkpoint, or as soon as another process waits for the database."""

    def __init__(
        self,
        options: RunOptions,
        bridge: EnhancedTokenDatabaseBridge,
        checkpoints: set[int] | None = None,
    ) -> None:
        self.every = options.commit_every
        self.database = bridge.database
        self.unit = CommitUnit()
        self.checkpoints = checkpoints or set()
        """Batch positions after which a checkpoint falls: a unit ends there."""

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
            or unit.records >= COMMIT_MAX_RECORDS
            or self.database.someone_waiting()
        ):
            return self.take()
        return None

    def take(self) -> CommitUnit | None:
        """The unit gathered so far (None when empty); the next one starts empty."""
        unit, self.unit = self.unit, CommitUnit()
        return unit if unit.indices else None


def local_batches(
    bridge: EnhancedTokenDatabaseBridge,
    state: RunState,
    options: RunOptions,
    plan: list[list[WorkItem]],
    reader: BatchReader | None,
) -> Generator[tuple[Sequence[WorkItem], BatchProcessingResult], None, None]:
    """The plain executor: batches read on worker processes, committed here in order.

    Consecutive batches are committed together (:class:`Gatherer`) and yielded as one
    batch: the run counts and checkpoints what is committed.
    """
    own = reader is None
    made = BatchReader(read_workers(state, options)) if own else None
    gather = Gatherer(options, bridge, checkpoint_ends(plan, options.checkpoint_interval))

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
        made = batches(state.plan.items, options.batch_size, options.max_batch_bytes)
        state.batched = split_at_checkpoints(made, options.checkpoint_interval)
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
    with contextlib.closing(executor(bridge, state, options, plan, reader)) as results:
        for batch, result in results:
            record_batch(state, batch, result)
            if (observer := BATCH_OBSERVER.get()) is not None:
                observer(state, result)
            if on_batch is not None:
                on_batch(state, result)
            if progress is not None:
                progress(progress_of(state, "migrating"))
            files_committed += len(batch)
            interval = options.checkpoint_interval
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


def relative_to_roots(path: Path, roots: Sequence[Path]) -> str | None:
    for root in roots:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return None

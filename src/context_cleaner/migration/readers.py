"""The reader processes of a run: batches of transcript ranges read ahead of the commits.

A :class:`BatchReader` keeps a few batches in flight per worker process, so memory stays
flat whatever the corpus, and yields what they read in batch order; the run's own process
(:mod:`~context_cleaner.migration.pipeline`) commits them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import psutil

from context_cleaner.analysis import gc_pace
from context_cleaner.analysis.discovery import Discovery, TranscriptFile, discover
from context_cleaner.analysis.processes import die_with_parent, pool_context
from context_cleaner.analysis.reader import MAX_LINE_BYTES
from context_cleaner.analysis.scan import (
    ReadTask,
    ScanResult,
    decode_scan,
    read_tasks,
    scan_ranges,
    scan_tasks_encoded,
)
from context_cleaner.migration.planning import HEAD_BYTES, WorkItem
from context_cleaner.observability.process_memory import sample_tree


def own_rss() -> int:
    """Resident memory of this process alone, in bytes."""
    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
        return 0


def tree_rss() -> int:
    """Resident memory of this process and its workers, in bytes."""
    return sample_tree().resident


def _ranges(batch: Sequence[WorkItem]) -> list[tuple[TranscriptFile, int, int]]:
    return [(i.file, i.start_offset, i.start_line) for i in batch]


#: Batches in flight per worker process, at least (see :class:`BatchReader`).
IN_FLIGHT_PER_WORKER = 3

#: Transcript bytes the readers may be ahead of the commits by, beyond
#: :data:`IN_FLIGHT_PER_WORKER` batches per worker (see :class:`BatchReader`). Most of it is
#: read while this process starts the engine and applies the schema (~0.8 s), which the
#: readers otherwise sat out: on 20,000 small files (docs/benchmarks.md), 16 MiB ->
#: 2.62-2.71 s a migration, 64 MiB -> 2.46-2.55 s on a quiet machine; 64 -> 256 MiB (all of
#: that corpus's 156 MB) 2.79 -> 2.71 and 2.87 -> 2.80 s medians of 10-12 runs each on a
#: slower one, the readers' CPU 2.07 -> 1.92 s (they no longer stop and start again).
#: What is held is the batches' records only, 1-11% of their bytes (11 MiB for all of
#: these files), so the tree's private peak did not move (178-184 MiB either way).
READ_AHEAD_BYTES = 256 * 2**20

#: Batches in flight, at most, whatever their size.
MAX_IN_FLIGHT = 256


def _warm_up() -> tuple[int, int]:
    """Runs first in each new worker (a spawned one has imported the reader by then).

    Returns the worker's pid and resident memory once it is ready to read.
    """
    return os.getpid(), own_rss()


#: Reader processes read this much nicer than the run's own process: that process (the
#: engine, the commits) is the run's critical path, the readers work ahead of it. A
#: discovery (:meth:`BatchReader.discover`), which the run waits for, runs before their
#: first read, at the run's own priority.
READER_NICENESS = 10

_nicer = False
"""Whether this reader process has lowered its priority (:func:`_read_batch`)."""


def _start_reader(parent: int) -> None:
    """Runs first in each reader process: end it when the run's process dies
    (:func:`die_with_parent`), collect at the pace of bulk work
    (:mod:`~context_cleaner.analysis.gc_pace`)."""
    die_with_parent(parent)
    gc_pace.for_this_process()


def _read_batch(tasks: list[ReadTask], max_line_bytes: int, head_bytes: int) -> bytes:
    """A reader's work on a batch (:func:`~context_cleaner.analysis.scan.scan_tasks_encoded`,
    without the every-line sum only the analysis reports), from its first batch on at
    :data:`READER_NICENESS`."""
    global _nicer
    if not _nicer:
        _nicer = True
        with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
            os.nice(READER_NICENESS)
    return scan_tasks_encoded(tasks, max_line_bytes, head_bytes, every_line=False)


def worker_start_method() -> str:
    """How to start reader processes: ``fork`` while that is safe here, else ``spawn``.

    A forked worker is ready at once; a spawned one starts Python and imports the
    reader first, on cores that are about to read. Forking is
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

    Batches are in flight (queued, being read, or read and not yet taken) up to
    ``IN_FLIGHT_PER_WORKER * workers`` of them, or more while the ones in flight hold
    less than :data:`READ_AHEAD_BYTES` of transcript (at most :data:`MAX_IN_FLIGHT`), so
    memory does not grow with the corpus: a read batch is its records only, 1-11% of its
    bytes (11% for files of three responses). The queue keeps the workers reading for part
    of the time this process starts the engine or commits a unit (~0.6 s for 20,000
    records): 3 batches per worker of 100 small files each were read in ~0.1 s, and the
    workers then waited. Yields results in batch order.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._frozen = False
        self._warming: list[Future[tuple[int, int]]] = []
        self._plan: Sequence[Sequence[WorkItem]] | None = None
        self._pending: deque[tuple[int, Future[bytes], float, int, list[ReadTask]]] = deque()
        self._pending_bytes = 0
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
                    mp_context=pool_context(method),
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

        Waits for the workers' start-up (:func:`_warm_up`); a worker that did not report
        (another ran two of them) is counted like the largest one that did.
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

    def close(self) -> None:
        """End the worker processes now (the run reads nothing more): what they hold is
        freed before the run's last work, its rollups and validation, where its memory
        peaks. Reading again afterwards reads in this process; ``__exit__`` does the rest."""
        pool, self._pool = self._pool, None
        self._warming = []
        self.discard_prefetch()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def discover(self, roots: Sequence[Path]) -> Future[Discovery]:
        """Discover ``roots``' transcripts on a worker process (here without workers): the
        run's process loads the database engine meanwhile (``MigrationRun.execute``)."""
        if self._pool is not None:
            return self._pool.submit(discover, roots)
        done: Future[Discovery] = Future()
        done.set_result(discover(roots))
        return done

    def prefetch(self, plan: Sequence[Sequence[WorkItem]]) -> None:
        """Start reading ``plan``'s first batches now; :meth:`read` of the same plan goes on."""
        if self._pool is None:
            return
        self._plan, self._pending, self._pending_bytes, self._next = plan, deque(), 0, 0
        self._submit()

    def discard_prefetch(self) -> None:
        """Forget a prefetched plan (its results are not wanted after all)."""
        for _, future, *_ in self._pending:
            future.cancel()
        self._plan, self._pending, self._pending_bytes, self._next = None, deque(), 0, 0

    def _submit(self) -> bool:
        """Keep the queue of batches full; True when any batch is in flight."""
        assert self._pool is not None and self._plan is not None
        plan = self._plan
        floor = IN_FLIGHT_PER_WORKER * self.workers
        while self._next < len(plan) and (
            len(self._pending) < floor
            or (self._pending_bytes < READ_AHEAD_BYTES and len(self._pending) < MAX_IN_FLIGHT)
        ):
            # The readers hash each file's head too (the identity its commit records).
            batch = plan[self._next]
            size = sum(i.pending_bytes for i in batch)
            tasks = read_tasks(_ranges(batch))
            future = self._pool.submit(_read_batch, tasks, MAX_LINE_BYTES, HEAD_BYTES)
            self._pending.append((self._next, future, time.perf_counter(), size, tasks))
            self._pending_bytes += size
            self._next += 1
        return bool(self._pending)

    def read(self, plan: Sequence[Sequence[WorkItem]]) -> Iterator[tuple[int, ScanResult, float]]:
        if self._pool is None:
            for index, batch in enumerate(plan):
                started = time.perf_counter()
                scan = scan_ranges(_ranges(batch), head_bytes=HEAD_BYTES, every_line=False)
                yield index, scan, time.perf_counter() - started
            return
        if self._plan is not plan:
            self.discard_prefetch()
            self._plan = plan
        while self._submit():
            index, future, started, size, tasks = self._pending.popleft()
            self._pending_bytes -= size
            data = future.result()
            yield index, decode_scan(data, tasks), time.perf_counter() - started
        self._plan = None

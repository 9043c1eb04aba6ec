"""What validation compares the database with: the records of byte ranges on disk.

Two ways to get them (both end in a :class:`Ledger`: the preferred record per key,
rule 3, of the ranges read, and which ranges those were):

- :func:`scan_committed` reads the committed part ``[0, committed offset)`` of
  each file again (``validate``): a fresh analysis of exactly the bytes the
  database says it holds;
- a migration keeps what its own readers already read (:data:`RUN_LEDGER`, filled
  by the pipeline as it commits each unit), so its built-in validation reads no
  file a second time. Memory: the run's records (~1% of the bytes read), what an
  analysis of the same files holds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from context_cleaner.analysis.dedup import UsageCollector
from context_cleaner.analysis.discovery import TranscriptFile
from context_cleaner.analysis.processes import worker_pool
from context_cleaner.analysis.scan import (
    PARALLEL_MIN_BYTES,
    FileStats,
    ScanResult,
    SkipLog,
    decode_scan,
    encode_scan,
    merge_scans,
    scan_file,
    split_by_size,
)

#: A file and where its compared range ends (it starts at 0).
Prefix = tuple[TranscriptFile, int]


@dataclass(slots=True)
class Ledger:
    """Records read from byte ranges: the preferred one per key, and the ranges."""

    collector: UsageCollector = field(default_factory=UsageCollector)
    ranges: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(root, relative path) -> (first, last) byte read (a union of the ranges)."""
    skipped_lines: int = 0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, scan: ScanResult) -> None:
        """Fold in a scan (thread-safe: batch tasks may commit from several threads)."""
        with self._lock:
            self.collector.merge(scan.collector)
            self.skipped_lines += scan.skips.total
            for s in scan.files:
                if s.error:
                    self.errors.append(f"{s.path}: {s.error}")
                    continue
                if s.end_offset <= s.start_offset:
                    continue
                key = (_root_of(s), s.relative_path)
                old = self.ranges.get(key)
                start, end = s.start_offset, s.end_offset
                if old is not None:
                    start, end = min(start, old[0]), max(end, old[1])
                self.ranges[key] = (start, end)

    @property
    def bytes(self) -> int:
        return sum(end - start for start, end in self.ranges.values())


def _root_of(s: FileStats) -> str:
    path = s.path.replace("\\", "/")
    rel = s.relative_path
    return s.path[: -len(rel) - 1] if path.endswith("/" + rel) else s.path


RUN_LEDGER: ContextVar[Ledger | None] = ContextVar("run_ledger", default=None)
"""Set by a migration for its validation: every unit it commits is added (pipeline)."""


def note_committed(scan: ScanResult) -> None:
    """Called by the pipeline for each committed unit: adds it to the run's ledger, if any."""
    ledger = RUN_LEDGER.get()
    if ledger is not None:
        ledger.add(scan)


# -- reading the committed ranges again ------------------------------------------------------


def _scan_prefixes(prefixes: Sequence[Prefix]) -> ScanResult:
    collector = UsageCollector()
    skips = SkipLog()
    stats = [
        scan_file(f, collector.add, skips, start_offset=0, start_line=1, stop_at=stop)
        for f, stop in prefixes
    ]
    return ScanResult(collector, stats, skips)


def _scan_prefixes_encoded(prefixes: Sequence[Prefix]) -> bytes:
    """Worker entry point (spawned processes import this module only)."""
    return encode_scan(_scan_prefixes(prefixes))


def scan_committed(prefixes: Sequence[Prefix], *, workers: int = 2) -> Ledger:
    """A fresh analysis of ``[0, stop)`` of each file (several processes when large).

    Workers are spawned, never forked: the caller may hold the embedded engine.
    """
    prefixes = [(f, stop) for f, stop in prefixes if stop > 0]
    total = sum(stop for _, stop in prefixes)
    if workers <= 1 or total < PARALLEL_MIN_BYTES or len(prefixes) < 2:
        scan = _scan_prefixes(prefixes)
    else:
        stops = {id(f): stop for f, stop in prefixes}
        groups = split_by_size([f for f, _ in prefixes], min(len(prefixes), workers * 4))
        with worker_pool(workers, "spawn") as pool:
            futures = [
                pool.submit(_scan_prefixes_encoded, [(f, stops[id(f)]) for f in g]) for g in groups
            ]
            scan = merge_scans(decode_scan(future.result()) for future in futures)
    ledger = Ledger()
    ledger.add(scan)
    return ledger

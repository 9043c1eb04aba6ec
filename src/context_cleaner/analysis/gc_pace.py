"""How often Python's cycle collector runs while a run reads and commits in bulk.

The collector runs after every 700 net allocations of container objects and, every
tenth or hundredth time, walks every older object too. A migration allocates a few
objects per record and holds its plan (an object or two per file) for the whole run:
on 20,000 small files the run's own process spent 0.5-0.8 s of its ~4.5 CPU-s in 660
young and 4-5 full collections, walking the same long-lived objects again and again.
The records are tuples and lists that reference counting frees (no cycles), so bulk
work collects after :data:`BULK_THRESHOLDS` allocations instead: 17 young collections
and no full one, 0.12 s (docs/benchmarks.md). A run near its memory bound still
collects at once (``MigrationMemoryManager.cleanup``).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

BULK_THRESHOLDS = (20_000, 20, 20)
"""``gc.set_threshold`` while bulk work runs: a young collection every 20,000 net
allocations, an older one every 20 of those."""

_lock = threading.Lock()
_active = 0
_before: tuple[int, ...] = ()


@contextlib.contextmanager
def bulk_work() -> Iterator[None]:
    """Collect at :data:`BULK_THRESHOLDS` inside the block; the thresholds found before
    the first of several overlapping blocks (threads of one process) come back after the
    last one ends."""
    global _active, _before
    with _lock:
        if _active == 0:
            _before = gc.get_threshold()
            gc.set_threshold(*BULK_THRESHOLDS)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_before)


def for_this_process() -> None:
    """Collect at :data:`BULK_THRESHOLDS` for the rest of this process (a reader process,
    which does bulk work only)."""
    gc.set_threshold(*BULK_THRESHOLDS)

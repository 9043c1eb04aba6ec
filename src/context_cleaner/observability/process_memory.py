"""The memory of a process tree: private (what the run itself holds) and resident.

*Private* memory is the anonymous memory of every process of the tree (heaps, the
engine's buffers, the readers' records): what the run holds and the machine must find
room for. Resident memory (RSS) adds the pages mapped from files, which the kernel may
drop and read again at any time: the embedded engine's library alone keeps ~200 MB of
its code resident, the same on a 3 MB corpus as on a 1 GB one, so RSS says little about
what a run costs. A page two processes share (a forked reader and its parent) is
counted once: the root's anonymous memory (``RssAnon``) holds it, and a child adds only
the pages it alone holds (``Private_Dirty``).

Cheap enough to sample a few times a second (measured in docs/benchmarks.md): the root
process's counters come from ``/proc/<pid>/status`` (its ``smaps_rollup`` walks every
page of the engine's mappings: ~16 ms), the children's from ``smaps_rollup`` (small
processes: ~0.4 ms each), the tree from ``/proc/<pid>/task/<tid>/children`` (psutil's
``children()`` scans the whole process table: 2-9 ms). Elsewhere than Linux: psutil's
USS and RSS, slower.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemorySample:
    """One look at a process tree, in bytes."""

    private: int
    """Anonymous memory, shared pages counted once (see the module docstring)."""
    resident: int
    """Resident memory (RSS) summed over the processes, file pages included."""
    processes: int


def _status(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) of one process from ``/proc/<pid>/status``; zeros once gone."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                    break  # after VmRSS in the file
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, anon


def _private_dirty(pid: int) -> int | None:
    """``Private_Dirty`` of one process: the anonymous pages it shares with no other
    (None when the kernel does not give it)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (any of its threads may have started them)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return found


def tree_pids(root: int | None = None) -> list[int]:
    """``root`` (default: this process) and all its descendants, root first."""
    root = os.getpid() if root is None else root
    if sys.platform != "linux" or not os.path.exists(f"/proc/{root}/task/{root}/children"):
        import psutil  # only here: on Linux a sample reads /proc alone

        try:
            return [root, *(c.pid for c in psutil.Process(root).children(recursive=True))]
        except psutil.Error:
            return [root]
    pids, queue = [root], [root]
    while queue:
        children = _children(queue.pop())
        pids += children
        queue += children
    return pids


def sample_tree(root: int | None = None) -> MemorySample:
    """The private and resident memory of ``root`` (default: this process) and its
    descendants (see the module docstring)."""
    pids = tree_pids(root)
    if sys.platform != "linux":
        return _sample_psutil(pids)
    private = resident = counted = 0
    for n, pid in enumerate(pids):
        rss, anon = _status(pid)
        if not rss:
            continue  # ended meanwhile
        if n:  # a child: the pages it shares with the root are the root's, counted there
            own = _private_dirty(pid)
            anon = anon if own is None else own
        private += anon
        resident += rss
        counted += 1
    return MemorySample(private=private, resident=resident, processes=counted)


def _sample_psutil(pids: list[int]) -> MemorySample:
    import psutil

    private = resident = counted = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        private += int(getattr(info, "uss", info.rss))
        resident += int(info.rss)
        counted += 1
    return MemorySample(private=private, resident=resident, processes=counted)

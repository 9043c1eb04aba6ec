"""What a discovery walk saw, kept so a later walk can be answered by a C-speed check.

A :class:`TreeSnapshot` holds every folder the walk listed (its entries' names, sorted)
and the ``stat`` of every root and every entry (links followed), as one flat list of
integers. :func:`tree_unchanged` lists each folder again and stats each entry again
with ``map`` (no Python code runs per file, no object is built per file) and compares.

It does not trust folder times: a file created, deleted or renamed changes its folder's
listing; an append or a rewrite changes the file's size or modification time; a file
replaced by another (an editor's save, a rotation) changes the inode; a file that turns
into a folder, a FIFO or a link elsewhere changes the mode or the inode. Equal listings
and equal stamps therefore mean the walk would find exactly the same files with the same
stamps. (A rewrite that keeps the size and restores the modification time is invisible
to it, as to every stat-based check here: DESIGN §5.)
"""

from __future__ import annotations

import operator
import os
from functools import partial
from itertools import chain

import msgspec

#: What one ``stat`` contributes to the stamps, in this order.
STAMP = operator.attrgetter("st_mode", "st_ino", "st_dev", "st_size", "st_mtime_ns")


class TreeSnapshot(msgspec.Struct, array_like=True, frozen=True):
    """The folders below some roots as one walk saw them (see the module docstring)."""

    roots: list[str]
    folders: list[tuple[str, list[str]]]
    """Each folder walked, in walk order: its path and its entries' names, sorted."""
    stamps: list[int]
    """:data:`STAMP` of each root, then of each entry of each folder, in that order."""


class TreeRecorder:
    """Collects a :class:`TreeSnapshot` during a walk (see ``discovery._walk``)."""

    __slots__ = ("folders", "root_stamps", "stamps", "storable")

    def __init__(self) -> None:
        self.root_stamps: list[int] = []
        self.folders: list[tuple[str, list[str]]] = []
        self.stamps: list[int] = []
        self.storable = True
        """False once the walk met a name that is not UTF-8 (``discovery.storable``): the
        snapshot, names and all, could not be written, so none is made."""

    def root(self, st: os.stat_result) -> None:
        self.root_stamps.extend(STAMP(st))

    def folder(self, path: str, names: list[str], stats: list[os.stat_result]) -> None:
        """One folder: its sorted entry names and each entry's ``stat``, in that order."""
        self.folders.append((path, names))
        self.stamps.extend(chain.from_iterable(map(STAMP, stats)))

    def snapshot(self, roots: list[str]) -> TreeSnapshot:
        return TreeSnapshot(roots, self.folders, self.root_stamps + self.stamps)


def tree_unchanged(snapshot: TreeSnapshot, roots: list[str]) -> bool:
    """True when every folder of ``snapshot`` lists the same names and every root and entry
    stats the same: a walk of ``roots`` now would find what the snapshot's walk found."""
    if roots != snapshot.roots:
        return False
    want = snapshot.stamps
    stamps: list[int] = []
    add = stamps.extend
    try:
        add(chain.from_iterable(map(STAMP, map(os.stat, roots))))
        for path, names in snapshot.folders:
            # Opened once: each entry is stat'ed relative to it (no path walked per file).
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                listing = os.listdir(fd)
                listing.sort()
                if listing != names:
                    return False
                done = len(stamps)
                add(chain.from_iterable(map(STAMP, map(partial(os.stat, dir_fd=fd), names))))
            finally:
                os.close(fd)
            if stamps[done:] != want[done : len(stamps)]:  # a change: stop at its folder
                return False
    except OSError:  # gone, unreadable, a loop: the walk will say which
        return False
    return stamps == want

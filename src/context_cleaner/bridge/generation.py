"""The write generation: a token beside an embedded database that every writer replaces.

Two equal reads of the token mean no unit of work wrote in between, so a cache of
committed state keyed by it (the sync's stat cache) stays valid without opening the
engine. Servers have no token: their callers always open the database.

A :func:`watch_writes` block follows one thread's own writes: it is *settled* at a token
when every token this thread replaced meanwhile was the one it had seen or written last,
and the token is the last it wrote (so no other writer came in between), and it keeps
the file commits the thread made (so a sync can know the tracking table without
reading it again).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from context_cleaner.bridge.database import Database
    from context_cleaner.bridge.tracking import FileCommit


def generation_path(database: Database) -> Path | None:
    """``<database dir>.generation`` beside an on-disk embedded database; else None."""
    lock = database.lock_path
    return None if lock is None else lock.with_name(Path(database.url.path).name + ".generation")


def read_generation(database: Database) -> str | None:
    """The token every :meth:`EnhancedTokenDatabaseBridge.writer` replaces before writing.

    Two equal reads mean no unit of work wrote in between (writers take it under the
    lock), so a cache of committed state keyed by it (the sync's stat cache) stays
    valid without opening the engine. ``""`` before the first write; None for servers.
    """
    path = generation_path(database)
    return None if path is None else _read(path)


def bump_generation(database: Database) -> None:
    """Replace the generation token atomically; when that fails, remove it (never leave it
    stale: an empty or missing token is never trusted by a cache)."""
    path = generation_path(database)
    if path is None:
        return
    watches = _watching(path)
    before = _read(path) if watches else None
    after = _replace(path)
    for watch in watches:
        watch.saw(before, after)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def _replace(path: Path) -> str:
    """Write a new token; returns it, or ``""`` when none could be written."""
    token = os.urandom(16).hex()
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        # secrets.token_hex(16) without importing secrets (a no-op sync reads this module)
        tmp.write_text(token + "\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return ""
    return token


class WriteWatch:
    """One thread's writes to one database since a token was read (:func:`watch_writes`)."""

    def __init__(self, path: Path, start: str | None) -> None:
        self.path = path
        self.thread = threading.get_ident()
        self.expected = start or ""
        self.intact = bool(start)
        """False once a token this thread replaced was not the one expected (another
        writer came in between), or a token could not be read or written."""
        self.commits: list[FileCommit] = []
        """The file commits this thread wrote, in order."""

    def saw(self, before: str | None, after: str) -> None:
        if not before or before != self.expected or not after:
            self.intact = False
        self.expected = after

    def settled(self, generation: str | None) -> bool:
        """True when ``generation`` (read under the lock) is the token this thread wrote
        last and no other writer replaced one in between since the start."""
        return self.intact and bool(generation) and generation == self.expected


_WATCHES: list[WriteWatch] = []
_WATCHES_GUARD = threading.Lock()


def _watching(path: Path) -> list[WriteWatch]:
    if not _WATCHES:  # every write asks: nothing to do unless a sync watches
        return []
    me = threading.get_ident()
    with _WATCHES_GUARD:
        return [w for w in _WATCHES if w.thread == me and w.path == path]


@contextlib.contextmanager
def watch_writes(database: Database, start: str | None) -> Iterator[WriteWatch | None]:
    """Follow this thread's writes to ``database`` from the token ``start`` (read under
    the lock, with whatever state the caller read beside it). None for servers (no token).

    Only this thread's writes are followed: a write by another thread or process is
    seen as a token this thread did not expect, and the watch is never settled.
    """
    path = generation_path(database)
    if path is None:
        yield None
        return
    watch = WriteWatch(path, start)
    with _WATCHES_GUARD:
        _WATCHES.append(watch)
    try:
        yield watch
    finally:
        with _WATCHES_GUARD:
            _WATCHES.remove(watch)


def note_commits(database: Database, commits: Sequence[FileCommit]) -> None:
    """Record ``commits`` (just written by this thread) in the watches following it."""
    path = generation_path(database) if _WATCHES else None
    if path is not None:
        for watch in _watching(path):
            watch.commits.extend(commits)

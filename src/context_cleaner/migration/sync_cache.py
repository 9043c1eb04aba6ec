"""The sync's stat cache: what the database committed of each file, kept beside it.

After each sync the committed state of every file, as ``(device, inode, size,
mtime_ns)`` when its range was read, is written to ``<database dir>.sync-cache`` with
the database's write generation (a token every bridge writer replaces under the lock,
:func:`~context_cleaner.bridge.read_generation`). A later sync whose files all still stat
the same, while the generation is unchanged, has nothing to read and ends without
opening the database engine: it only stats files. Any write by anyone (a migrate, a
rollback, another sync) changes the generation, and a deleted or recreated database
directory changes its identity, so a stale cache is never trusted: the sync then plans
from the tracking table as usual and rewrites the cache.

The cache also keeps its **quiet walk**: the last walk of the roots in which every file
stated as committed (:mod:`~context_cleaner.analysis.tree`). A sync with nothing new
then checks that walk at C speed (a listing per folder, a ``stat`` per entry) instead of
walking, and decodes only the cache's head, not the stamp of every file. This module
imports neither the engine nor the transcript reader: it is on the path of every
hourly sync, which usually finds nothing new.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import msgspec

from context_cleaner.analysis.tree import TreeSnapshot, tree_unchanged
from context_cleaner.bridge.generation import read_generation

if TYPE_CHECKING:
    from context_cleaner.analysis.discovery import Discovery, TranscriptFile
    from context_cleaner.bridge import Database, FileCommit, TrackedFile

CACHE_VERSION = 2


class FileStamp(msgspec.Struct, array_like=True, frozen=True):
    """What ``stat`` says of a file: equal stamps mean nothing was written in between."""

    device: int
    inode: int
    size: int
    mtime_ns: int


_SEP = "\0"


def file_key(source_root: str, file_path: str) -> str:
    """One string per (root, relative path): the cache's key."""
    return f"{source_root}{_SEP}{file_path}"


def pair_keys(pairs: Iterable[tuple[str, str]]) -> Iterator[str]:
    """:func:`file_key` of each (root, relative path), at C speed."""
    return map(_SEP.join, pairs)


def committed_stamp(t: TrackedFile | FileCommit) -> FileStamp | None:
    """The stamp of a cleanly committed file (None for a failed one: it must be retried)."""
    if t.status != "completed" or t.error_message:
        return None
    return FileStamp(t.device, t.inode, t.file_size, t.mtime_ns)


class QuietTree(msgspec.Struct, array_like=True, frozen=True):
    """A walk whose every file stated as committed, and what a sync then reports."""

    tree: TreeSnapshot
    files: int
    """Transcripts the walk found (the sync's ``files_checked``)."""
    deleted: int
    """Committed files under the roots it did not find (the sync's ``files_deleted``)."""


class CacheHead(msgspec.Struct, kw_only=True):
    """What decides whether the cache is still true of the database, and the quiet walk:
    decoded alone (the per-file stamps skipped) when a sync only asks whether anything
    changed."""

    version: int = CACHE_VERSION
    host: str
    database: tuple[int, ...]
    """Identity of the database directory: a recreated database is another one."""
    generation: str
    quiet: QuietTree | None = None
    """The last walk that found nothing to read, if any since the cache was written."""


class SyncCache(CacheHead, kw_only=True):
    """The committed stamps of one host's files in one database, at one write generation."""

    files: dict[str, FileStamp]

    def covers(self, files: Sequence[TranscriptFile]) -> bool:
        """True when every file stats exactly as when it was last committed."""
        return next(self._uncovered(files), None) is None

    def uncovered(self, files: Sequence[TranscriptFile]) -> list[TranscriptFile]:
        """The files that do not stat as when they were last committed (or are not known)."""
        return list(self._uncovered(files))

    def _uncovered(self, files: Sequence[TranscriptFile]) -> Iterator[TranscriptFile]:
        # Tens of thousands of files: keys built per root, fields compared without building
        # a stamp per file (building FileStamps to compare lists measured slower).
        for f, s in zip(files, map(self.files.get, keys_of(files)), strict=True):
            if s is None or (s.size, s.mtime_ns, s.inode, s.device) != (
                f.size,
                f.mtime_ns,
                f.inode,
                f.device,
            ):
                yield f

    def missing(self, found: Discovery, only: set[str] | None = None) -> int:
        """Committed files under the roots that are no longer on disk (their rows stay)."""
        return count_missing(self.files, found, only)


_ROOT, _RELATIVE = attrgetter("root"), attrgetter("relative_path")


def keys_of(files: Iterable[TranscriptFile]) -> list[str]:
    """:func:`file_key` of each file, in order, built at C speed (one prefix per root)."""
    keys: list[str] = []
    for root, group in groupby(files, _ROOT):
        keys.extend(map(f"{root}{_SEP}".__add__, map(_RELATIVE, group)))
    return keys


def count_missing(keys: Iterable[str], found: Discovery, only: set[str] | None = None) -> int:
    """Keys of files under ``found``'s roots that it did not find (nor could not read);
    with ``only`` (the paths a partial discovery looked at), among those paths only."""
    wanted = {str(r) for r in found.roots}
    unreadable = {p.path for p in found.problems}
    missing = 0
    for k in set(keys).difference(keys_of(found.files)):  # only the absent are looked at
        root, rel = k.split(_SEP, 1)
        if root not in wanted:
            continue
        if only is None and not unreadable:  # no path to compare: none is built
            missing += 1
            continue
        path = str(Path(root) / rel)
        if (only is None or path in only) and path not in unreadable:
            missing += 1
    return missing


def cache_path(database: Database) -> Path | None:
    """``<database dir>.sync-cache``; None for servers and in-memory databases."""
    lock = database.lock_path
    return None if lock is None else lock.with_name(Path(database.url.path).name + ".sync-cache")


def _database_identity(database: Database) -> tuple[int, ...] | None:
    """Which database directory this is: its (device, inode), and the inode and change time
    of its ``metadata/`` folder, made once with the database (inode numbers are reused by
    a directory created after another was deleted; a creation time is not)."""
    try:
        st = os.stat(database.url.path)
        meta = os.stat(os.path.join(database.url.path, "metadata"))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, meta.st_ino, meta.st_ctime_ns)


_Cache = TypeVar("_Cache", bound=CacheHead)
_decoder = msgspec.json.Decoder(SyncCache)
_head_decoder = msgspec.json.Decoder(CacheHead)


def load_cache(database: Database, host: str) -> SyncCache | None:
    """The stat cache, when it is still true of the database; else None."""
    return _load(database, host, _decoder)


def _load(database: Database, host: str, decoder: msgspec.json.Decoder[_Cache]) -> _Cache | None:
    path = cache_path(database)
    if path is None:
        return None
    try:
        cache = decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    generation = read_generation(database)
    if (
        cache.version != CACHE_VERSION
        or cache.host != host
        or not generation
        or cache.generation != generation
        or _database_identity(database) != tuple(cache.database)
    ):
        return None
    return cache


def quiet_walk(database: Database, host: str, roots: list[str]) -> QuietTree | None:
    """The cache's quiet walk when the cache is still true of the database and nothing
    below ``roots`` changed since that walk (:func:`~context_cleaner.analysis.tree.tree_unchanged`):
    a sync then has nothing to read, and the quiet walk says what it reports. Else None."""
    head = _load(database, host, _head_decoder)
    if head is None or head.quiet is None or not tree_unchanged(head.quiet.tree, roots):
        return None
    return head.quiet


def remember_quiet(database: Database, cache: SyncCache, found: Discovery) -> None:
    """Keep ``found``'s walk in the cache as its quiet walk, when it has one; every file
    it found must stat as committed (``cache.covers(found.files)``, the caller's check).
    The next sync with nothing new then only checks the walk (:func:`quiet_walk`)."""
    if found.tree is not None:
        quiet = QuietTree(found.tree, len(found.files), cache.missing(found))
        _write(database, msgspec.structs.replace(cache, quiet=quiet))


def save_cache(
    database: Database,
    host: str,
    generation: str | None,
    tracked: Iterable[TrackedFile | FileCommit],
    found: Discovery | None = None,
) -> bool:
    """Write the cache from each file's state at ``generation`` (its tracking rows read
    under the lock right after reading ``generation``, or known to be those: see
    :mod:`~context_cleaner.migration.incremental`);
    with ``found`` (the sync's walk), its quiet walk too when every file in it stats as
    committed (:func:`remember_quiet`).

    Returns False (and removes any old cache) when it cannot be trusted or written.
    """
    return save_stamps(database, host, generation, stamps_of(tracked), found)


def stamps_of(tracked: Iterable[TrackedFile | FileCommit]) -> dict[str, FileStamp]:
    """:func:`file_key` -> the stamp of each cleanly committed file among ``tracked``."""
    files = {}
    for t in tracked:
        stamp = committed_stamp(t)
        if stamp is not None:
            files[file_key(t.source_root, t.file_path)] = stamp
    return files


def stamps_after(
    files: dict[str, FileStamp], commits: Iterable[FileCommit]
) -> dict[str, FileStamp]:
    """``files`` (a cache's stamps) once ``commits`` are in, in their order: updated in place."""
    for c in commits:
        key, stamp = file_key(c.source_root, c.file_path), committed_stamp(c)
        if stamp is None:
            files.pop(key, None)  # failed: retried by the next sync
        else:
            files[key] = stamp
    return files


def save_stamps(
    database: Database,
    host: str,
    generation: str | None,
    files: dict[str, FileStamp],
    found: Discovery | None = None,
) -> bool:
    """:func:`save_cache` from the stamps themselves (:func:`stamps_of`)."""
    path = cache_path(database)
    identity = _database_identity(database)
    if path is None:
        return False
    if not generation or identity is None:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    cache = SyncCache(host=host, database=identity, generation=generation, files=files)
    if found is not None and found.tree is not None and cache.covers(found.files):
        cache.quiet = QuietTree(found.tree, len(found.files), cache.missing(found))
    return _write(database, cache)


def _write(database: Database, cache: SyncCache) -> bool:
    path = cache_path(database)
    if path is None:
        return False
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(msgspec.json.encode(cache))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    return True

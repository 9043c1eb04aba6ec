"""Freshness: has anything changed since the database last committed it, and how far behind is it?

Two cheap questions the incremental sync and ``status`` ask (DESIGN §5):

1. **The stat cache.** After each sync the committed state of every file, as
   ``(device, inode, size, mtime_ns)`` when its range was read, is written to
   ``<database dir>.sync-cache`` with the database's write generation (a token
   every bridge writer replaces under the lock, :func:`read_generation`). A later
   sync whose files all still stat the same, while the generation is unchanged,
   has nothing to read and ends without opening the database engine: it only
   stats files. Any write by anyone (a migrate, a rollback, another sync) changes
   the generation, and a deleted or recreated database directory changes its
   identity, so a stale cache is never trusted: the sync then plans from the
   tracking table as usual and rewrites the cache.
2. **The data lag.** The newest source line time against the newest record in
   the database. The newest source lines are in the most recently modified
   files; only their tails are read (the last complete line carrying usage).
   A line before its file's committed offset is in the database, so a fully
   synced history has a lag of 0 whatever the clock says.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from context_cleaner.analysis.discovery import Discovery, TranscriptFile, discover
from context_cleaner.analysis.extract import USAGE_MARKER, Source, extract_line
from context_cleaner.analysis.reader import open_regular
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge import Database, TrackedFile, read_generation

CACHE_VERSION = 1
#: Files probed for the newest source line (the most recently modified ones).
PROBE_FILES = 8
#: First tail window read per probed file; it grows 4x up to :data:`MAX_TAIL_BYTES`.
TAIL_WINDOW = 64 * 1024
MAX_TAIL_BYTES = 4 * 1024 * 1024


class FileStamp(msgspec.Struct, array_like=True, frozen=True):
    """What ``stat`` says of a file: equal stamps mean nothing was written in between."""

    device: int
    inode: int
    size: int
    mtime_ns: int


def file_key(source_root: str, file_path: str) -> str:
    """One string per (root, relative path): the cache's key."""
    return f"{source_root}\0{file_path}"


def committed_stamp(t: TrackedFile) -> FileStamp | None:
    """The stamp of a cleanly committed file (None for a failed one: it must be retried)."""
    if t.status != "completed" or t.error_message:
        return None
    return FileStamp(t.device, t.inode, t.file_size, t.mtime_ns)


class SyncCache(msgspec.Struct, kw_only=True):
    """The committed stamps of one host's files in one database, at one write generation."""

    version: int = CACHE_VERSION
    host: str
    database: tuple[int, ...]
    """Identity of the database directory: a recreated database is another one."""
    generation: str
    files: dict[str, FileStamp]

    def covers(self, files: Iterable[TranscriptFile]) -> bool:
        """True when every file stats exactly as when it was last committed."""
        stamps = self.files
        for f in files:  # tens of thousands of files: compared field by field, no stamp built
            s = stamps.get(file_key(str(f.root), f.relative_path))
            if s is None or (s.size, s.mtime_ns, s.inode, s.device) != (
                f.size,
                f.mtime_ns,
                f.inode,
                f.device,
            ):
                return False
        return True

    def missing(self, found: Discovery, only: set[str] | None = None) -> int:
        """Committed files under the roots that are no longer on disk (their rows stay)."""
        return count_missing(self.files, found, only)


def count_missing(keys: Iterable[str], found: Discovery, only: set[str] | None = None) -> int:
    """Keys of files under ``found``'s roots that it did not find (nor could not read);
    with ``only`` (the paths a partial discovery looked at), among those paths only."""
    wanted = {str(r) for r in found.roots}
    present = {file_key(str(f.root), f.relative_path) for f in found.files}
    unreadable = {p.path for p in found.problems}
    missing = 0
    for k in keys:
        if k in present:
            continue
        root, rel = k.split("\0", 1)
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


_decoder = msgspec.json.Decoder(SyncCache)


def load_cache(database: Database, host: str) -> SyncCache | None:
    """The stat cache, when it is still true of the database; else None."""
    path = cache_path(database)
    if path is None:
        return None
    try:
        cache = _decoder.decode(path.read_bytes())
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


def save_cache(
    database: Database, host: str, generation: str | None, tracked: Iterable[TrackedFile]
) -> bool:
    """Write the cache from tracking rows read under the lock right after ``generation``.

    Returns False (and removes any old cache) when it cannot be trusted or written.
    """
    path = cache_path(database)
    identity = _database_identity(database)
    if path is None:
        return False
    if not generation or identity is None:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    files = {}
    for t in tracked:
        stamp = committed_stamp(t)
        if stamp is not None:
            files[file_key(t.source_root, t.file_path)] = stamp
    cache = SyncCache(host=host, database=identity, generation=generation, files=files)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(msgspec.json.encode(cache))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        return False
    return True


# -- data lag --------------------------------------------------------------------------------


def last_usage_line(f: TranscriptFile) -> tuple[int, int] | None:
    """(byte offset, epoch ms) of the last complete line of ``f`` carrying usage, or None.

    Reads the tail only (a growing window up to :data:`MAX_TAIL_BYTES`); a torn last
    line is not a line yet.
    """
    source = Source(f.relative_path, f.project, f.session_id)
    window = TAIL_WINDOW
    try:
        with open_regular(f.path) as stream:
            end = stream.seek(0, os.SEEK_END)
            while True:
                start = max(0, end - window)
                stream.seek(start)
                data = stream.read(end - start)
                found = _last_usage_in(data, start, source)
                if found is not None:
                    return found
                if start == 0 or window >= MAX_TAIL_BYTES:
                    return None
                window *= 4
    except OSError:
        return None


def _last_usage_in(data: bytes, start: int, source: Source) -> tuple[int, int] | None:
    stop = data.rfind(b"\n")
    if stop < 0:
        return None
    first = 0 if start == 0 else data.find(b"\n") + 1  # a window's first piece may be partial
    while stop >= first:
        begin = data.rfind(b"\n", first, stop) + 1 or first
        line = data[begin:stop]
        if USAGE_MARKER in line:
            record = extract_line(source, 0, start + begin, line)
            if isinstance(record, UsageRecord):
                return start + begin, record.timestamp_ms
        stop = begin - 1
    return None


@dataclass(frozen=True, slots=True)
class Freshness:
    """How current the database is against the transcripts."""

    newest_source_time: float | None
    """Epoch seconds of the newest complete usage line in the most recently modified files."""
    newest_database_time: float | None
    """Epoch seconds of the newest usage record in the database."""
    data_lag_seconds: float | None
    """Newest source usage line not yet in the database, minus the newest database record
    (0 when every probed line is committed; None when the database holds nothing yet)."""
    probed_files: int = 0


def measure_freshness(
    files: Sequence[TranscriptFile],
    committed: Mapping[str, int],
    newest_database_time: float | None,
    *,
    probe: int = PROBE_FILES,
) -> Freshness:
    """The data lag from the tails of the ``probe`` most recently modified ``files``.

    ``committed`` maps :func:`file_key` to the committed offset (bytes in the database).
    """
    recent = sorted(files, key=lambda f: f.mtime_ns, reverse=True)[:probe]
    newest: int | None = None
    lag_ms: int | None = 0
    for f in recent:
        found = last_usage_line(f)
        if found is None:
            continue
        offset, ts_ms = found
        newest = ts_ms if newest is None else max(newest, ts_ms)
        if offset < committed.get(file_key(str(f.root), f.relative_path), 0):
            continue  # already in the database
        if newest_database_time is None:
            lag_ms = None
        elif lag_ms is not None:
            lag_ms = max(lag_ms, ts_ms - int(newest_database_time * 1000))
    return Freshness(
        newest_source_time=None if newest is None else newest / 1000,
        newest_database_time=newest_database_time,
        data_lag_seconds=None if lag_ms is None else lag_ms / 1000,
        probed_files=len(recent),
    )


def committed_offsets(tracked: Iterable[TrackedFile]) -> dict[str, int]:
    """:func:`file_key` -> committed offset, for :func:`measure_freshness`."""
    return {file_key(t.source_root, t.file_path): t.committed_offset for t in tracked}


# -- per-file tracking against the disk (``status``) -------------------------------------------


def file_states(
    tracked: Sequence[TrackedFile],
) -> tuple[list[dict[str, object]], list[TranscriptFile]]:
    """Each tracked file's commit beside what is on disk now, and the files on disk.

    ``state`` is the file classifier's (:mod:`~context_cleaner.migration.file_state`):
    synced, behind, unfinished (a last line without its newline yet), replaced,
    truncated, deleted or error; ``message`` says what it means for a person.
    """
    from context_cleaner.migration.file_state import classify_all

    roots = sorted({t.source_root for t in tracked})
    found = discover([Path(r) for r in roots if os.path.isdir(r)])
    found.roots = [Path(r) for r in roots]  # a vanished root's files are deleted, not elsewhere
    classified = classify_all(tracked, found, include_untracked=False)
    return [c.to_row() for c in classified], found.files

"""Freshness: how far behind the transcripts is the database?

**The data lag** (DESIGN §5): the newest source line time against the newest record in
the database. The newest source lines are in the most recently modified files; only
their tails are read (the last complete line carrying usage). A line before its file's
committed offset is in the database, so a fully synced history has a lag of 0 whatever
the clock says. (Whether anything changed at all is the stat cache's question:
:mod:`~context_cleaner.migration.sync_cache`.)
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from context_cleaner.analysis.discovery import TranscriptFile, discover
from context_cleaner.analysis.extract import USAGE_MARKER, Source, extract_line
from context_cleaner.analysis.reader import open_regular
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge import FileCommit, TrackedFile
from context_cleaner.migration.sync_cache import file_key

#: Files probed for the newest source line (the most recently modified ones).
PROBE_FILES = 8
#: First tail window read per probed file; it grows 4x up to :data:`MAX_TAIL_BYTES`.
TAIL_WINDOW = 64 * 1024
MAX_TAIL_BYTES = 4 * 1024 * 1024


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


_MTIME = attrgetter("mtime_ns")


def probed(files: Sequence[TranscriptFile], probe: int = PROBE_FILES) -> list[TranscriptFile]:
    """The ``probe`` most recently modified ``files``: those :func:`measure_freshness` reads."""
    return heapq.nlargest(probe, files, key=_MTIME)  # not a sort of every file


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
    recent = probed(files, probe)
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


def committed_offsets(tracked: Iterable[TrackedFile | FileCommit]) -> dict[str, int]:
    """:func:`file_key` -> committed offset, for :func:`measure_freshness`."""
    return {file_key(t.source_root, t.file_path): t.committed_offset for t in tracked}


# -- per-file tracking against the disk (``status``) -------------------------------------------


def file_states(
    tracked: Sequence[TrackedFile],
) -> tuple[list[dict[str, object]], list[TranscriptFile]]:
    """Each tracked file's commit beside what is on disk now, and the files on disk.

    ``state`` is the file classifier's (:mod:`~context_cleaner.migration.file_state`):
    synced, behind, unfinished (a last line without its newline yet), replaced,
    truncated, deleted or error; ``message`` says what it means for a person. A file that
    stats as it did when committed is taken as committed (``classify``'s ``stamps``).
    """
    from context_cleaner.migration.file_state import classify_all

    roots = sorted({t.source_root for t in tracked})
    found = discover([Path(r) for r in roots if os.path.isdir(r)])
    found.roots = [Path(r) for r in roots]  # a vanished root's files are deleted, not elsewhere
    classified = classify_all(tracked, found, include_untracked=False, stamps=True)
    return [c.to_row() for c in classified], found.files

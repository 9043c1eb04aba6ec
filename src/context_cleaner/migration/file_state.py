"""One classifier of transcript files against what the database committed (DESIGN §5).

Every surface that says how current a file is (``status``, ``validate``, the
dashboard, the sync's plan) asks :func:`classify`, so they never disagree:

- ``synced``: every complete line is in the database;
- ``behind``: complete lines were written after the committed offset (or the file
  is new): the next ``sync`` reads them;
- ``unfinished``: the only bytes after the committed offset are a last line without
  its newline yet; it is counted once it ends (``sync`` cannot do anything sooner);
- ``replaced``: another file is at the path (device/inode changed) or its first
  bytes changed: the rows of the earlier file are kept (retained history) and the
  next ``sync`` reads the new file from 0;
- ``truncated``: the file is shorter than what was committed, or no line ends at the
  committed offset any more (rewritten): as ``replaced``;
- ``deleted``: the file is gone; its rows are kept (retained history);
- ``error``: the file cannot be read, or its last read failed (retried by ``sync``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from context_cleaner.analysis.discovery import Discovery, TranscriptFile, folder_below, os_path
from context_cleaner.analysis.reader import head_digest, head_matches, open_fd, open_regular
from context_cleaner.bridge import TrackedFile

SYNCED = "synced"
BEHIND = "behind"
UNFINISHED = "unfinished"
REPLACED = "replaced"
TRUNCATED = "truncated"
DELETED = "deleted"
ERROR = "error"
STATES = (SYNCED, BEHIND, UNFINISHED, REPLACED, TRUNCATED, DELETED, ERROR)

#: Bytes of a file's head covered by the identity hash.
HEAD_BYTES = 4096
#: Window read backwards from the end of a file looking for its last newline.
TAIL_WINDOW = 64 * 1024


def head_hash(path: str, length: int) -> str:
    """The identity hash (:func:`~context_cleaner.analysis.reader.head_digest`) of the first
    ``length`` bytes (``""`` when the file has fewer)."""
    if length <= 0:
        return ""
    try:
        fd = open_fd(path)
        try:
            data = _read_at(fd, length, 0)
        finally:
            os.close(fd)
    except OSError:
        return ""
    if len(data) < length:
        return ""
    return head_digest(data)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer only at the file's end), straight from the
    descriptor: a file object costs more to build and close than these few bytes take to
    read, and every unchanged file of a migration is checked so."""
    data = os.pread(fd, size, offset)  # one call: no seek first
    if len(data) == size or not data:
        return data
    parts = [data]
    size, offset = size - len(data), offset + len(data)
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        parts.append(chunk)
        size, offset = size - len(chunk), offset + len(chunk)
    return b"".join(parts)


def identity_change(f: TranscriptFile, t: TrackedFile) -> tuple[str, str]:
    """``(state, why)`` when ``f`` is not the file ``t`` committed, else ``("", "")``.

    The state is :data:`REPLACED` (another file, or its head changed) or
    :data:`TRUNCATED` (shorter than committed, or no line ends at the committed
    offset any more: rewritten). Reads at most the head and one byte.
    """
    if (f.device, f.inode) != (t.device, t.inode):
        return REPLACED, "replaced (device/inode changed)"
    if f.size < t.committed_offset:
        return TRUNCATED, f"truncated ({f.size:,} < {t.committed_offset:,} bytes committed)"
    if not t.head_length and not t.committed_offset:
        return "", ""
    committed, length = t.committed_offset, t.head_length
    try:
        fd = open_fd(f.path_str)
        try:
            # One read covers the head and the committed range's last byte when that byte
            # is inside the head (a small transcript's whole committed range is).
            data = _read_at(fd, max(length, committed), 0) if committed <= HEAD_BYTES else b""
            if length:
                head = data[:length] if data else _read_at(fd, length, 0)
                if len(head) < length or not head_matches(head, t.head_hash):
                    return REPLACED, "rewritten (first bytes changed)"
            if committed:
                last = data[committed - 1 : committed] if data else _read_at(fd, 1, committed - 1)
                if last != b"\n":
                    return TRUNCATED, "rewritten (no line ends at the committed offset any more)"
        finally:
            os.close(fd)
    except OSError:
        return "", ""  # unreadable: the read reports it
    return "", ""


def complete_end(path: str | Path, start: int, size: int) -> int:
    """The offset after the last newline in ``[start, size)`` of ``path`` (``start`` when none).

    Reads backwards from ``size`` in windows until a newline or ``start`` is reached.
    """
    end = size
    try:
        with open_regular(path) as stream:
            while end > start:
                begin = max(start, end - TAIL_WINDOW)
                stream.seek(begin)
                data = stream.read(end - begin)
                found = data.rfind(b"\n")
                if found >= 0:
                    return begin + found + 1
                end = begin
    except OSError:
        return start
    return start


@dataclass(frozen=True, slots=True)
class ClassifiedFile:
    """One file's state against the database, with the byte counts behind it."""

    source_root: str
    file_path: str
    """Relative to ``source_root``, ``/``-separated."""
    state: str
    """One of :data:`STATES`."""
    committed_offset: int
    """Bytes ``[0, committed_offset)`` of this file are in the database (0 when new or
    replaced: the committed bytes belong to an earlier file)."""
    size: int | None
    """Size on disk now (None when deleted)."""
    pending_bytes: int = 0
    """Complete lines on disk not yet in the database (``sync`` reads them)."""
    unfinished_bytes: int = 0
    """Bytes after the last newline: a line still being written, counted once it ends."""
    reason: str = ""
    """Why a file is replaced, truncated or in error."""
    tracked: TrackedFile | None = None
    file: TranscriptFile | None = None

    @property
    def is_new(self) -> bool:
        return self.tracked is None

    @property
    def compared_bytes(self) -> int:
        """Bytes of this file whose rows validation compares with a fresh analysis."""
        if self.state in (SYNCED, BEHIND, UNFINISHED) or (
            self.state == ERROR and self.file is not None
        ):
            return self.committed_offset
        return 0

    def describe(self) -> str:
        """One line for a person: what the state means and what to do, if anything."""
        s = self.state
        if s == SYNCED:
            return "synced: every complete line is in the database"
        if s == UNFINISHED:
            return (
                f"last line not finished yet: {self.unfinished_bytes:,} bytes; counted once it ends"
            )
        if s == BEHIND:
            what = "new file" if self.is_new else "written since the last sync"
            tail = (
                f" (and a last line not finished yet: {self.unfinished_bytes:,} bytes)"
                if self.unfinished_bytes
                else ""
            )
            return (
                f"behind ({what}): {self.pending_bytes:,} bytes not yet in the database"
                f"{tail}; run `context-cleaner sync`"
            )
        if s in (REPLACED, TRUNCATED):
            return (
                f"{self.reason}: the earlier file's rows are kept as retained history; "
                "`context-cleaner sync` reads the new content from its start"
            )
        if s == DELETED:
            return "deleted: its rows are kept in the database as retained history"
        return f"error: {self.reason or 'the last read failed'}; `context-cleaner sync` retries it"

    def to_row(self) -> dict[str, Any]:
        """The file as ``status --json`` lists it."""
        t = self.tracked
        return {
            "source_root": self.source_root,
            "path": self.file_path,
            "state": self.state,
            "committed_offset": t.committed_offset if t is not None else 0,
            "size": self.size,
            "pending_bytes": self.pending_bytes,
            "unfinished_bytes": self.unfinished_bytes,
            "size_at_sync": t.file_size if t is not None else None,
            "status": t.status if t is not None else "untracked",
            "last_sync": t.processed_at if t is not None else None,
            "error": self.reason if self.state == ERROR else (t.error_message if t else ""),
            "reason": self.reason,
            "message": self.describe(),
            "lines_skipped": t.lines_skipped if t is not None else 0,
        }


def classify(
    tracked: TrackedFile | None,
    file: TranscriptFile | None,
    *,
    problem: str = "",
    source_root: str = "",
    file_path: str = "",
    stamps: bool = False,
) -> ClassifiedFile:
    """The state of one file: ``tracked`` is its committed state (None: never committed),
    ``file`` what discovery found now (None: not found), ``problem`` why it could not be
    walked (then it is an error, not a deletion).

    ``stamps``: a file whose device, inode, size and modification time are still those it
    had when committed is taken as the committed file without reading its head, as the
    sync's quiet check takes it (:mod:`~context_cleaner.migration.sync_cache`): the views
    (``status``, the dashboard) compare tens of thousands of files so. Validation and
    planning read the head of every file (:func:`identity_change`)."""
    root = tracked.source_root if tracked is not None else source_root
    rel = tracked.file_path if tracked is not None else file_path
    if file is not None:
        root, rel = str(file.root), file.relative_path
    if file is None:
        if problem:
            return ClassifiedFile(
                root,
                rel,
                ERROR,
                tracked.committed_offset if tracked else 0,
                None,
                reason=problem,
                tracked=tracked,
            )
        assert tracked is not None, "a file neither tracked nor found"
        return ClassifiedFile(root, rel, DELETED, tracked.committed_offset, None, tracked=tracked)
    committed = 0
    if tracked is not None:
        state, why = (
            ("", "") if stamps and _same_stamp(file, tracked) else identity_change(file, tracked)
        )
        if state:
            end = complete_end(file.path, 0, file.size)
            return ClassifiedFile(
                root,
                rel,
                state,
                0,
                file.size,
                pending_bytes=end,
                unfinished_bytes=file.size - end,
                reason=why,
                tracked=tracked,
                file=file,
            )
        committed = tracked.committed_offset
        if tracked.status != "completed" or tracked.error_message:
            return ClassifiedFile(
                root,
                rel,
                ERROR,
                committed,
                file.size,
                pending_bytes=max(0, file.size - committed),
                reason=tracked.error_message or f"last read {tracked.status}",
                tracked=tracked,
                file=file,
            )
    if file.size <= committed:
        return ClassifiedFile(root, rel, SYNCED, committed, file.size, tracked=tracked, file=file)
    unchanged = tracked is not None and (
        file.size,
        file.mtime_ns,
    ) == (tracked.file_size, tracked.mtime_ns)
    # Unchanged since its commit: the bytes after the committed offset were a torn line then,
    # and still are. Otherwise find the last newline written since.
    end = committed if unchanged else complete_end(file.path, committed, file.size)
    state = BEHIND if end > committed else UNFINISHED
    return ClassifiedFile(
        root,
        rel,
        state,
        committed,
        file.size,
        pending_bytes=end - committed,
        unfinished_bytes=file.size - end,
        tracked=tracked,
        file=file,
    )


def _same_stamp(f: TranscriptFile, t: TrackedFile) -> bool:
    """Whether ``f`` stats as the file ``t`` committed did when it was committed."""
    return (f.device, f.inode, f.size, f.mtime_ns) == (t.device, t.inode, t.file_size, t.mtime_ns)


def classify_all(
    tracked: Sequence[TrackedFile],
    found: Discovery,
    *,
    include_untracked: bool = True,
    stamps: bool = False,
) -> list[ClassifiedFile]:
    """Every tracked file under ``found``'s roots, and (``include_untracked``) every file
    found that was never committed, classified (``stamps``: see :func:`classify`). Tracked
    files of other roots are left out."""
    roots = {str(r) for r in found.roots}
    on_disk = {(str(f.root), f.relative_path): f for f in found.files}
    problems = {p.path: p.reason for p in found.problems}
    out: list[ClassifiedFile] = []
    seen: set[tuple[str, str]] = set()
    for t in tracked:
        if t.source_root not in roots:
            continue
        key = (t.source_root, t.file_path)
        seen.add(key)
        problem = problems.get(os.path.join(t.source_root, t.file_path), "") if problems else ""
        out.append(classify(t, on_disk.get(key), problem=problem, stamps=stamps))
    if include_untracked:
        for key, f in on_disk.items():
            if key not in seen:
                out.append(classify(None, f))
    return out


def counted_once(tracked: Sequence[TrackedFile]) -> tuple[list[TrackedFile], int]:
    """``tracked`` with each file tracked under two folders kept once (see
    :func:`tracked_twice`), and how many rows were left out."""
    left_out = tracked_twice(tracked)
    if not left_out:
        return list(tracked), 0
    kept = [t for t in tracked if (t.source_root, t.file_path) not in left_out]
    return kept, len(tracked) - len(kept)


def tracked_twice(tracked: Sequence[TrackedFile]) -> set[tuple[str, str]]:
    """The (root, relative path) of each tracking row that another root's row of the same
    file describes better.

    Two of this host's roots may be one folder (a link to it) or one inside the other: a
    user who migrated a project folder with ``--source-dir`` and later the projects folder
    above it, or versions before 2026-12 with both default folders linked. Each such file
    then has a row under each root, and only the root still walked moves on: the other
    row would say "behind" for good and count the file twice. Of the two rows the one
    committed further describes what the database holds; on a tie, the outer root's.
    """
    by_root: dict[str, dict[str, TrackedFile]] = {}
    for t in tracked:
        by_root.setdefault(t.source_root, {})[t.file_path] = t
    if len(by_root) < 2:
        return set()
    real = {r: os.path.realpath(r) for r in by_root}
    left_out: set[tuple[str, str]] = set()
    for inner, inner_rows in by_root.items():
        for outer, outer_rows in by_root.items():
            prefix = folder_below(real[inner], real[outer]) if inner != outer else None
            if prefix is None:
                continue
            for t in inner_rows.values():
                other = outer_rows.get(prefix + t.file_path)
                if other is None:
                    continue
                # The outer row wins a tie; two names of one folder: the lesser name's.
                outer_first = prefix != "" or outer < inner
                if (other.committed_offset, outer_first) > (t.committed_offset, not outer_first):
                    left_out.add((inner, t.file_path))
                else:
                    left_out.add((outer, other.file_path))
    return left_out


@functools.lru_cache(maxsize=64)
def _root_path(root: str) -> Path:
    """A transcript root as a path, made once (tens of thousands of files share a few)."""
    return Path(root)


def transcript_from_stat(t: TrackedFile, st: os.stat_result) -> TranscriptFile:
    """A tracked file as discovery would find it, from a ``stat`` of its path."""
    path = os_path(t.source_root, t.file_path)
    return TranscriptFile.from_stat(_root_path(t.source_root), path, t.file_path, st)


def stats_now(tracked: Iterable[TrackedFile]) -> list[tuple[TrackedFile, os.stat_result | None]]:
    """Each tracked file with its ``stat`` now (None when it is gone or unreadable)."""
    out: list[tuple[TrackedFile, os.stat_result | None]] = []
    for t in tracked:
        try:
            out.append((t, os.stat(os_path(t.source_root, t.file_path))))
        except OSError:
            out.append((t, None))
    return out


def classify_stats(
    stats: Iterable[tuple[TrackedFile, os.stat_result | None]],
) -> list[ClassifiedFile]:
    """Tracked files with a ``stat`` of each (None: gone), classified (the dashboard's view,
    by their stamps: :func:`classify`)."""
    out = []
    for t, st in stats:
        if st is None:
            out.append(classify(t, None))
        elif not _is_regular(st):
            out.append(classify(t, None))  # a folder in its place: the file is gone
        else:
            out.append(classify(t, transcript_from_stat(t, st), stamps=True))
    return out


def _is_regular(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def counts(files: Iterable[ClassifiedFile]) -> dict[str, int]:
    """Files per state, and the byte totals behind them."""
    out: dict[str, int] = {s: 0 for s in STATES}
    out.update(new=0, pending_bytes=0, unfinished_bytes=0)
    for f in files:
        out[f.state] += 1
        out["new"] += f.is_new
        out["pending_bytes"] += f.pending_bytes
        out["unfinished_bytes"] += f.unfinished_bytes
    return out

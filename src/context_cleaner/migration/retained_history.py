"""What validation compares, and why the rest of the database is retained history.

The database is the durable record; the transcripts are a window (DESIGN §5). A
validation's :class:`Scope` is the roots asked for (``--source-dir``, else every root
this host's tracking names) with each of their files classified (:mod:`.file_state`).
Its :meth:`Scope.origin_function` says why a stored row is not backed by the bytes
compared: its file was deleted, replaced or cannot be read now, it lies under another
root or came from another host (retained history: counted and reported, never a
variance), or no file tracking of any host lists it (``unaccounted``: a difference).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.bridge import TRACKING, TrackedFile, query_rows
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.migration import file_state
from context_cleaner.migration.comparison import OriginOf
from context_cleaner.migration.stored_rows import StoredRow

if TYPE_CHECKING:
    from context_cleaner.bridge import EnhancedTokenDatabaseBridge


@dataclass(slots=True)
class Scope:
    """The roots compared and the state of each of their files."""

    roots: list[str]
    files: list[file_state.ClassifiedFile]
    tracked: list[TrackedFile]
    host: str
    tracked_anywhere: set[tuple[str, str]] = field(default_factory=set)
    """(host, file path) of every file any host's tracking lists."""

    @property
    def reported(self) -> list[file_state.ClassifiedFile]:
        """``files`` with a file tracked under two of the compared roots once
        (:func:`~.file_state.tracked_twice`): what a validation reports as pending or
        tracked. All of ``files`` are compared and account for stored rows."""
        twice = file_state.tracked_twice([f.tracked for f in self.files if f.tracked is not None])
        if not twice:
            return self.files
        return [
            f
            for f in self.files
            if f.tracked is None or (f.tracked.source_root, f.tracked.file_path) not in twice
        ]

    def origin_function(self) -> OriginOf:
        """Why a stored row is not backed by compared bytes: ``deleted`` (its file is gone),
        ``earlier_generation`` (its file was replaced, truncated or rewritten: an earlier
        content of a path still on disk), ``unreadable`` (its file cannot be read now),
        ``other_root``, ``other_host``; ``unaccounted``
        when no tracking of its host lists its file (not history: a difference)."""
        in_scope = {f.file_path: f.state for f in self.files if f.tracked is not None}
        elsewhere = {t.file_path for t in self.tracked if t.source_root not in self.roots}
        host = self.host

        anywhere = self.tracked_anywhere

        def origin(row: StoredRow) -> str:
            if (row.host, row.file_path) not in anywhere:
                return "unaccounted"
            if row.host != host:
                return "other_host"
            state = in_scope.get(row.file_path)
            if state == file_state.DELETED:
                return "deleted"
            if state == file_state.ERROR:
                return "unreadable"
            if state is not None:
                return "earlier_generation"
            if row.file_path in elsewhere:
                return "other_root"
            return "unaccounted"

        return origin


def scope_of(bridge: EnhancedTokenDatabaseBridge, source_dirs: Sequence[str] | None) -> Scope:
    """The roots asked for (``source_dirs``, else every root this host's tracking names)
    and each of their tracked and new files, classified."""
    tracked = bridge.tracked_files() if bridge.is_initialised() else []
    if source_dirs:
        try:
            roots = [str(r) for r in resolve_roots(source_dirs)]
        except SourceNotFoundError:
            roots = [os.path.abspath(os.path.expanduser(d)) for d in source_dirs]
    else:
        roots = sorted({t.source_root for t in tracked})
        if not roots:
            try:
                roots = [str(r) for r in resolve_roots(None)]
            except SourceNotFoundError:
                roots = []
    present = [Path(r) for r in roots if os.path.isdir(r)]
    found = discover(present) if present else discover([])
    found.roots = [Path(r) for r in roots]
    files = file_state.classify_all(tracked, found)
    anywhere: set[tuple[str, str]] = set()
    if tracked or bridge.is_initialised():
        with bridge.database.session() as client:
            rows = query_rows(client, f"SELECT DISTINCT host, file_path FROM {TRACKING}")
        anywhere = {(h, p) for h, p in rows}
    return Scope(
        roots=roots, files=files, tracked=tracked, host=bridge.host, tracked_anywhere=anywhere
    )

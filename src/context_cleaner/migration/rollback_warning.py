"""What a rollback would remove that no later ``migrate`` can bring back: the records that
no transcript on disk holds any more (deleted since, or rewritten without them).
``rollback`` says so before it asks (``context-cleaner rollback``); nothing here changes
the database.

A record the rollback removes comes back with the next ``migrate`` when the file at its
path still holds it (the same message and request id): the rolled-back tracking makes the
next run read that file again, from its start when it was replaced. So the files with
removed records are read (up to :data:`READ_BUDGET_BYTES`) and their records' keys
compared with the removed ones. Beyond that budget only deleted files and files rewritten
since their last commit are read, and the count is a lower bound
(:attr:`Unrecoverable.exact`).
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from context_cleaner.bridge import (
    EnhancedTokenDatabaseBridge,
    TrackedFile,
    query_rows,
    table_exists,
)
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration.rollback import DATA_TABLES, choose_snapshot, require_known

#: Transcript bytes the warning reads, at most, to tell which removed records are still on
#: disk (a rollback of a sync reads a few files; of a first migration, every file).
READ_BUDGET_BYTES = 512 * 2**20

#: Removed records compared one by one, at most (their keys are fetched from the database).
MAX_COMPARED_RECORDS = 2_000_000


@dataclass(frozen=True, slots=True)
class Unrecoverable:
    """What a rollback would remove that no file on disk holds any more: no later
    ``migrate`` can bring it back (the database is its only copy)."""

    files: int
    records: int
    tokens: int
    exact: bool = True
    """False when the files were too many to read (:data:`READ_BUDGET_BYTES`): only
    deleted and rewritten files were, and there may be more."""


def unrecoverable(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    mode: str = "complete",
    checkpoint: str | None = None,
) -> Unrecoverable | None:
    """The counted records of this host a rollback in ``mode`` would remove that no file
    at their path holds now (None when it cannot tell: an unknown id or snapshot, which the
    rollback itself refuses). Nothing is changed.

    Removed: every record (``data-only``, ``schema``), or those whose key the snapshot
    rolled back to does not hold (``complete``, ``partial``)."""
    from context_cleaner.bridge.details import COUNTED_VIEW

    if checkpoint and mode == "complete":
        mode = "partial"
    tracked: dict[str, list[TrackedFile]] = defaultdict(list)
    for t in bridge.tracked_files():
        tracked[t.file_path].append(t)
    if not tracked:
        return Unrecoverable(0, 0, 0)
    removed = "host = {host:String}"
    parameters: dict[str, Any] = {"host": bridge.host}
    try:
        with bridge.database.session() as client:
            if mode in ("complete", "partial"):
                require_known(client, migration_id)
                snap = choose_snapshot(client, migration_id, mode, checkpoint)
                kept = snap.tables.get(DATA_TABLES[0])
                if kept is None or not table_exists(client, kept):
                    return None
                removed += (
                    " AND (message_id, request_id) NOT IN "
                    f"(SELECT message_id, request_id FROM {kept})"
                )
            per_path = {
                path: (int(n), int(tokens or 0))
                for path, n, tokens in query_rows(
                    client,
                    f"SELECT file_path, count(), sum(total_tokens) FROM {COUNTED_VIEW} "
                    f"WHERE {removed} GROUP BY file_path",
                    parameters,
                )
                if path in tracked  # a path this host tracks (its transcripts are here)
            }
            on_disk = {path: _regular_files(tracked[path]) for path in per_path}
            gone = [path for path, files in on_disk.items() if not files]
            present = [path for path, files in on_disk.items() if files]
            size = sum(st.st_size for path in present for _, st in on_disk[path])
            exact = (
                size <= READ_BUDGET_BYTES
                and sum(n for n, _ in per_path.values()) <= MAX_COMPARED_RECORDS
            )
            checked = present if exact else [p for p in present if _rewritten(on_disk[p])]
            # Every removed key when every path is compared (a filter by 20,000 paths took the
            # engine 5 s, reading the keys unfiltered 0.08 s); else those of the few checked.
            only = "" if exact else " AND file_path IN {checked:Array(String)}"
            rows = (
                query_rows(
                    client,
                    f"SELECT file_path, message_id, request_id, total_tokens FROM {COUNTED_VIEW} "
                    f"WHERE {removed}{only}",
                    {**parameters, "checked": checked} if only else parameters,
                )
                if checked
                else []
            )
    except ConfigurationError:
        return None
    held = {path: _keys_held(on_disk[path]) for path in checked}
    lost_files = set(gone)
    records = sum(per_path[p][0] for p in gone)
    tokens = sum(per_path[p][1] for p in gone)
    for path, message_id, request_id, total in rows:
        keys = held.get(path)
        if keys is not None and (message_id, request_id) not in keys:
            lost_files.add(path)
            records += 1
            tokens += int(total or 0)
    return Unrecoverable(len(lost_files), records, tokens, exact)


def _regular_files(entries: Iterable[TrackedFile]) -> list[tuple[TrackedFile, os.stat_result]]:
    """The tracked entries of one path with a regular file at them now, each with its
    ``stat`` (gone as the file classifier says: no regular file there, a folder in its
    place included)."""
    from context_cleaner.migration.file_state import stats_now

    return [(t, st) for t, st in stats_now(entries) if st is not None and stat.S_ISREG(st.st_mode)]


def _rewritten(files: Sequence[tuple[TrackedFile, os.stat_result]]) -> bool:
    """Whether any of a path's files was replaced or rewritten since its commit (the file
    classifier's identity check)."""
    from context_cleaner.migration import file_state

    return any(
        file_state.identity_change(file_state.transcript_from_stat(t, st), t)[0] for t, st in files
    )


def _keys_held(files: Sequence[tuple[TrackedFile, os.stat_result]]) -> set[tuple[str, str]]:
    """The (message id, request id) of every record the files of one path hold now, as
    the database stores them (a record without a message id: its synthetic one)."""
    from context_cleaner.analysis.records import UsageRecord
    from context_cleaner.analysis.scan import SkipLog, scan_file
    from context_cleaner.bridge.details import storage_message_id
    from context_cleaner.migration import file_state

    records: list[UsageRecord] = []
    for t, st in files:
        scan_file(file_state.transcript_from_stat(t, st), records.append, SkipLog(limit=0))
    return {(storage_message_id(r), r.request_id) for r in records}

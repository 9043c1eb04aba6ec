"""What a rollback would remove that no later ``migrate`` can bring back: the records of
transcripts deleted from disk since, or rewritten without them. ``rollback`` says so
before it asks (``context-cleaner rollback``); nothing here changes the database."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
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


@dataclass(frozen=True, slots=True)
class Unrecoverable:
    """What a rollback would remove whose transcripts no longer hold it on disk (deleted,
    or rewritten without it): no later ``migrate`` can bring it back (the database is its
    only copy)."""

    files: int
    records: int
    tokens: int


def _content_gone(
    tracked: Sequence[TrackedFile],
) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """This host's tracked files with no regular file at their path any more, and those
    replaced or rewritten since their commit (the file classifier's identity check), each
    with the keys of the records its content holds now."""
    from context_cleaner.analysis.discovery import os_path
    from context_cleaner.analysis.records import UsageRecord
    from context_cleaner.analysis.scan import SkipLog, scan_file
    from context_cleaner.bridge.details import storage_message_id
    from context_cleaner.migration import file_state

    gone: set[str] = set()
    rewritten: dict[str, list[tuple[str, str]]] = {}
    for t in tracked:
        try:
            st = os.stat(os_path(t.source_root, t.file_path))
        except OSError:
            st = None
        # Gone as the file classifier says (file_state.classify_stats): no regular file at
        # its path any more, a folder in its place included.
        if st is None or not stat.S_ISREG(st.st_mode):
            gone.add(t.file_path)
            continue
        found = file_state.transcript_from_stat(t, st)
        if t.file_path in rewritten or not file_state.identity_change(found, t)[0]:
            continue
        records: list[UsageRecord] = []
        scan_file(found, records.append, SkipLog(limit=0))
        rewritten[t.file_path] = [(storage_message_id(r), r.request_id) for r in records]
    return sorted(gone), rewritten


def unrecoverable(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    mode: str = "complete",
    checkpoint: str | None = None,
) -> Unrecoverable | None:
    """The counted records a rollback in ``mode`` would remove whose transcripts no longer
    hold them: this host's files deleted from disk since, and those replaced or rewritten
    whose content now lacks the record (None when it cannot tell: an unknown id or
    snapshot, which the rollback itself refuses). Nothing is changed.

    Removed: every record (``data-only``, ``schema``), or those whose key the snapshot
    rolled back to does not hold (``complete``, ``partial``)."""
    from context_cleaner.bridge.details import COUNTED_VIEW

    if checkpoint and mode == "complete":
        mode = "partial"
    gone, rewritten = _content_gone(bridge.tracked_files())
    if not gone and not rewritten:
        return Unrecoverable(0, 0, 0)
    held = [(path, *key) for path, keys in rewritten.items() for key in keys]
    where = (
        "(file_path IN {gone:Array(String)} OR (file_path IN {rewritten:Array(String)} "
        "AND (file_path, message_id, request_id) NOT IN "
        "(SELECT tupleElement(k, 1), tupleElement(k, 2), tupleElement(k, 3) "
        "FROM (SELECT arrayJoin({held:Array(Tuple(String, String, String))}) AS k))))"
    )
    parameters: dict[str, Any] = {"gone": gone, "rewritten": sorted(rewritten), "held": held}
    try:
        with bridge.database.session() as client:
            if mode in ("complete", "partial"):
                require_known(client, migration_id)
                snap = choose_snapshot(client, migration_id, mode, checkpoint)
                kept = snap.tables.get(DATA_TABLES[0])
                if kept is None or not table_exists(client, kept):
                    return None
                where += (
                    " AND (message_id, request_id) NOT IN "
                    f"(SELECT message_id, request_id FROM {kept})"
                )
            ((records, tokens, files),) = query_rows(
                client,
                f"SELECT count(), sum(total_tokens), uniqExact(file_path) FROM {COUNTED_VIEW} "
                f"WHERE {where}",
                parameters,
            )
    except ConfigurationError:
        return None
    return Unrecoverable(int(files), int(records), int(tokens or 0))

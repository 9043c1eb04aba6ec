"""Closing the runs whose process died: the next run of the same host records them.

What a crashed run is (its recorded process is gone or reused) is decided in
:mod:`context_cleaner.bridge.runs`; this module writes the verdict: the run's row
becomes ``crashed`` (or ``failed``, when the database refused its last row and the
row was kept beside the database), with the reason and the run that closed it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from context_cleaner.bridge.runs import (
    crash_reason,
    details_of,
    drop_stash,
    is_crashed,
    read_stash,
)
from context_cleaner.bridge.token_bridge import METADATA, EnhancedTokenDatabaseBridge, query_rows


def close_crashed_runs(
    bridge: EnhancedTokenDatabaseBridge, closing_run: str, roots: Sequence[str]
) -> list[dict[str, Any]]:
    """Close this host's crashed runs: their rows become ``crashed``, finished now, with the
    reason and ``closed_by``. Returns what was closed: ``migration_id``, ``run_kind``,
    ``reason``, ``source_roots`` and ``resumed`` (True when ``roots`` cover every root of
    that run, so the closing run reads what it left unread)."""
    with bridge.database.session() as client:
        rows = query_rows(
            client,
            "SELECT migration_id, run_kind, status, host, source_roots, details, "
            "toUnixTimestamp64Milli(started_at) / 1000.0, files_found, "
            "files_processed, files_failed, files_skipped, records_inserted, lines_skipped "
            f"FROM {METADATA} FINAL WHERE status = 'running' AND host = {{h:String}}",
            {"h": bridge.host},
        )
    crashed = []
    for row in rows:
        run = {"migration_id": row[0], "run_kind": row[1], "status": row[2], "host": row[3]}
        run["details"] = details_of({"details": row[5]})
        if row[0] == closing_run or not is_crashed(run, bridge.host):
            continue
        crashed.append((run, row))
    if not crashed:
        return []
    closed = []
    wanted = {os.path.realpath(r) for r in roots}
    with bridge.writer() as w:
        for run, row in crashed:
            stashed = read_stash(bridge.database, run["migration_id"])
            if stashed is not None:  # it failed, and the database refused its last row
                reason = str(details_of(stashed).get("error") or "failed")
                w.save_run(stashed)
                w.log(run["migration_id"], run["run_kind"], "finish", "failed", stashed["details"])
                drop_stash(bridge.database, run["migration_id"])
                closed.append(
                    {
                        "migration_id": run["migration_id"],
                        "run_kind": run["run_kind"],
                        "status": "failed",
                        "reason": reason,
                        "source_roots": list(row[4]),
                        "resumed": {os.path.realpath(r) for r in row[4]} <= wanted,
                    }
                )
                continue
            reason = crash_reason(run)
            details = {**run["details"], "crash_reason": reason, "closed_by": closing_run}
            w.save_run(
                {
                    "migration_id": run["migration_id"],
                    "run_kind": run["run_kind"],
                    "status": "crashed",
                    "started_at": row[6],
                    "finished_at": time.time(),
                    "source_roots": list(row[4]),
                    "files_found": row[7],
                    "files_processed": row[8],
                    "files_failed": row[9],
                    "files_skipped": row[10],
                    "records_inserted": row[11],
                    "lines_skipped": row[12],
                    "details": details,
                }
            )
            w.log(run["migration_id"], run["run_kind"], "crashed", "failed", details)
            closed.append(
                {
                    "migration_id": run["migration_id"],
                    "run_kind": run["run_kind"],
                    "status": "crashed",
                    "reason": reason,
                    "source_roots": list(row[4]),
                    "resumed": {os.path.realpath(r) for r in row[4]} <= wanted,
                }
            )
    return closed


def closed_note(closed: dict[str, Any], by: str) -> str:
    """One line for the closing run's warnings: what was closed and who reads its work."""
    if closed.get("status") == "failed":
        head = f"Run {closed['migration_id']} had failed: {closed['reason']}; recorded as failed."
    else:
        head = f"Run {closed['migration_id']} had crashed: {closed['reason']}; closed as crashed."
    if closed["resumed"]:
        return f"{head} Run {by} resumes its work (it reads what that run left unread)."
    roots = ", ".join(closed["source_roots"]) or "its folders"
    return (
        f"{head} Its folders ({roots}) are not part of run {by}: run "
        f"`context-cleaner migrate --source-dir ...` on them to finish its work."
    )

"""Closing the runs whose process died: the next run of the same host records them.

What a crashed run is (its recorded process is gone or reused) is decided in
:mod:`context_cleaner.bridge.runs`; this module writes the verdict: the run's row
becomes ``crashed`` (or ``failed``, when the database refused its last row and the
row was kept beside the database), with the reason, the run that closed it, and what it
committed: its row was last written at a checkpoint, so its files, records, tokens and
cost are read from its tracking and counted usage rows (``details.committed_bytes`` and
``last_commit_at``: the bytes its tracking rows committed and when it last committed,
for ``status``'s progress and rates). Closing also recomputes the rollups of the run's
sessions: a run killed between a unit's insert and its rollup refresh left them behind
its usage rows.

A run of the Prefect engine is also a flow run in the same process: the same verdict
on that process (its labels) ends the flow run ``Crashed`` in Prefect, in
:mod:`context_cleaner.orchestration.crashed` (only ``orchestration/`` imports Prefect),
when the next flow run of the host starts or ``status`` shows the crashed run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge import METADATA, EnhancedTokenDatabaseBridge, query_rows
from context_cleaner.bridge.runs import (
    committed_by,
    crash_reason,
    details_of,
    drop_stash,
    is_crashed,
    read_stash,
    sessions_of,
)
from context_cleaner.migration.run_record import LogEntry, RunCounts, RunRecorder, write_run

if TYPE_CHECKING:
    from context_cleaner.migration.pipeline import RunState


def close_crashed_runs(
    bridge: EnhancedTokenDatabaseBridge, closing_run: str, roots: Sequence[str]
) -> list[dict[str, Any]]:
    """Close this host's crashed runs: their rows become ``crashed``, finished now, with the
    reason, ``closed_by`` and what each committed (files, records, tokens and cost as the
    database holds them under its id: :func:`~context_cleaner.bridge.runs.committed_by`;
    its row was last written at a checkpoint). Returns what was closed: ``migration_id``,
    ``run_kind``, ``reason``, ``source_roots``, ``resumed`` (True when ``roots`` cover
    every root of that run, so the closing run reads what it left unread) and
    ``committed`` (its files, records, tokens and cost, as its row now says)."""
    with bridge.database.session() as client:
        rows = query_rows(
            client,
            "SELECT migration_id, run_kind, status, host, source_roots, details, "
            "toUnixTimestamp64Milli(started_at) / 1000.0, files_found, files_skipped "
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
        committed = committed_by(client, [run["migration_id"] for run, _ in crashed])
    closed: list[dict[str, Any]] = []
    wanted = {os.path.realpath(r) for r in roots}
    with bridge.writer() as w:
        for run, row in crashed:
            run_id, kind, run_roots = run["migration_id"], run["run_kind"], list(row[4])
            # Killed between a unit's insert and its rollup refresh, the run left rollups
            # behind its rows: the next run's net change (measured on the rollups) would
            # count those rows again when it replays them. Bring them level first.
            sessions = sessions_of(w.client, run_id)
            if sessions:
                w.refresh_summaries(sessions, closing_run)
            stashed = read_stash(bridge.database, run_id)
            if stashed is not None:  # it failed, and the database refused its last row
                status, reason = "failed", str(details_of(stashed).get("error") or "failed")
                write_run(
                    w, stashed, (run_id, LogEntry(kind, "finish", "failed", stashed["details"]))
                )
                drop_stash(bridge.database, run_id)
            else:
                status, reason = "crashed", crash_reason(run)
                done = committed[run_id]
                details = {
                    **run["details"],
                    "crash_reason": reason,
                    "closed_by": closing_run,
                    "committed_bytes": done.bytes,
                    "last_commit_at": done.last_commit,
                }
                recorder = RunRecorder(bridge, kind, run_id, started=row[6])
                counts = RunCounts(
                    source_roots=run_roots,
                    files_found=row[7],
                    files_processed=done.files_processed,
                    files_failed=done.files_failed,
                    files_skipped=row[8],
                    records_inserted=done.records,
                    lines_skipped=done.lines_skipped,
                    net=done.net,
                )
                row_now = recorder.row("crashed", counts, details, finished=time.time())
                write_run(w, row_now, (run_id, LogEntry(kind, "crashed", "failed", details)))
            closed.append(
                {
                    "migration_id": run_id,
                    "run_kind": kind,
                    "status": status,
                    "reason": reason,
                    "source_roots": run_roots,
                    "resumed": {os.path.realpath(r) for r in run_roots} <= wanted,
                    "committed": committed[run_id].row_counts(),
                }
            )
    return closed


def close_crashed(
    bridge: EnhancedTokenDatabaseBridge, state: RunState, roots: Sequence[str]
) -> None:
    """Close this host's crashed runs as the run ``state`` begins (reading ``roots``); what
    was closed goes in its ``closed_runs``, a note on each in its warnings."""
    closed = close_crashed_runs(bridge, state.migration_id, roots)
    state.closed_runs += closed
    state.warnings += [closed_note(c, state.migration_id) for c in closed]


def closed_note(closed: dict[str, Any], by: str) -> str:
    """One line for the closing run's warnings: what was closed and who reads its work."""
    if closed.get("status") == "failed":
        head = f"Run {closed['migration_id']} had failed: {closed['reason']}; recorded as failed."
    else:
        done = closed["committed"]
        head = (
            f"Run {closed['migration_id']} had crashed: {closed['reason']}; closed as crashed "
            f"(it had committed {done['files_processed']:,} file(s), "
            f"{done['records_inserted']:,} records)."
        )
    if closed["resumed"]:
        return f"{head} Run {by} resumes its work (it reads what that run left unread)."
    roots = ", ".join(closed["source_roots"]) or "its folders"
    return (
        f"{head} Its folders ({roots}) are not part of run {by}: run "
        f"`context-cleaner migrate --source-dir ...` on them to finish its work."
    )

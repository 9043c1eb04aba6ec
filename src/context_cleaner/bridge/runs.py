"""Whether a run marked ``running`` still has a process: crashed runs, told without a human.

A migration rewrites its row in ``enhanced_analysis_metadata`` as ``running`` while it
works, and the row's ``details.process`` names the process that writes it: its pid and
the time the operating system says that process started. A reader on the same host
(``status``, the dashboard, ``get_migration_status``, the next run) asks the operating
system about that pid: gone, a zombie, or a different process under a reused pid (its
start time differs) means the run's process died without finishing: the run is
*crashed*. A run of another host cannot be judged from here (``unknown``); such a run
is reported ``stalled`` once it has written nothing for a while.

The next migrate or sync on the host closes the crashed runs it finds
(:mod:`context_cleaner.migration.crashed_runs`): their rows become ``crashed`` with a
finished time, a reason, and the run that closed them, and that run says so in its result.

A crashed run's row was last written at a checkpoint (or at its start), so its counts
are behind what it committed. What it committed is in the database, under its id: its
file tracking rows and its counted usage rows (:func:`committed_by`, two statements).
Readers show a crashed run with those counts, and the run that closes it writes them.

A run that fails writes its row ``failed`` with the reason. When the database refuses
that row too (a full disk), the row is kept in a file beside the embedded database
(:func:`stash_run`, ``<database>.unrecorded-runs/<id>.json``): readers show the run
``failed`` with its reason from there, and the next run records it and removes the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.details import COUNTED_VIEW, DETAILS_TABLE
from context_cleaner.bridge.generation import read_generation
from context_cleaner.bridge.queries import NOT_COMPILED, query_rows, settings_clause
from context_cleaner.bridge.summaries import CHANGE_KEYS, TOKEN_SUMS
from context_cleaner.bridge.tracking import TRACKING

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from context_cleaner.bridge.database import Database

#: A recorded start time and the process's own may differ by rounding; a reused pid
#: belongs to a process started later, by far more than this.
START_TOLERANCE_SECONDS = 1.0

ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"


@cache
def _own_start() -> float:
    import psutil  # only a run's writer and a judge of crashed runs need it

    try:
        return float(psutil.Process(os.getpid()).create_time())
    except psutil.Error:
        return 0.0


def this_process() -> dict[str, Any]:
    """What a running run's row records about the process writing it."""
    return {"pid": os.getpid(), "started": round(_own_start(), 3)}


def process_state(process: Any, run_host: str, this_host: str) -> str:
    """``alive``, ``gone`` (the run's process died or its pid was reused) or ``unknown``
    (another host, or nothing recorded)."""
    if not isinstance(process, dict) or run_host != this_host:
        return UNKNOWN
    pid, started = process.get("pid"), process.get("started")
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return UNKNOWN
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return GONE
        if abs(proc.create_time() - float(started)) > START_TOLERANCE_SECONDS:
            return GONE  # the pid now belongs to another process
    except psutil.NoSuchProcess:
        return GONE
    except psutil.Error:  # access denied: it exists
        return ALIVE
    return ALIVE


def details_of(run: dict[str, Any]) -> dict[str, Any]:
    details = run.get("details")
    if isinstance(details, str):
        try:
            details = json.loads(details or "{}")
        except ValueError:
            details = {}
    return details if isinstance(details, dict) else {}


def is_crashed(run: dict[str, Any], this_host: str) -> bool:
    """True for a run recorded ``running`` whose process on this host is gone."""
    if run.get("status") != "running":
        return False
    process = details_of(run).get("process")
    return process_state(process, str(run.get("host") or ""), this_host) == GONE


def crash_reason(run: dict[str, Any]) -> str:
    process = details_of(run).get("process") or {}
    return (
        f"its process (pid {process.get('pid', '?')} on {run.get('host')}) ended without "
        "finishing the run (killed, crashed, or the machine stopped)"
    )


@dataclass(frozen=True, slots=True)
class Committed:
    """What a run committed, as the database holds it under the run's id."""

    files_processed: int
    """Files whose last tracking row of the run is ``completed``."""
    files_failed: int
    """Files whose last tracking row of the run is ``failed``."""
    bytes: int
    """Bytes of the ranges its tracking rows committed."""
    lines_skipped: int
    net: dict[str, float]
    """Its counted usage rows' sums (:data:`~.summaries.CHANGE_KEYS`: tokens by kind,
    ``cost_usd``, ``records``): what it added, as a finished run's net change says."""
    last_commit: float | None
    """Epoch seconds of its last tracking row (None: it committed no file)."""

    @property
    def records(self) -> int:
        return int(self.net.get("records", 0))

    def row_counts(self) -> dict[str, Any]:
        """These counts under the names of a run row (as ``migration_runs`` lists it)."""
        return {
            "files_processed": self.files_processed,
            "files_failed": self.files_failed,
            "records_inserted": self.records,
            "lines_skipped": self.lines_skipped,
            "total_tokens": int(sum(self.net.get(k, 0) for k in CHANGE_KEYS[:5])),
            "cost_usd": float(self.net.get("cost_usd", 0.0)),
        }


#: Per run: its files by their last tracking row of that run, then counted by state.
_TRACKED_SQL = f"""
SELECT migration_id, countIf(state = 'completed'), countIf(state = 'failed'),
       sum(committed), sum(skipped), toUnixTimestamp64Milli(max(last)) / 1000.0
FROM (
    SELECT migration_id, toString(argMax(processing_status, processed_at)) AS state,
           sum(committed_offset - range_start) AS committed, sum(lines_skipped) AS skipped,
           max(processed_at) AS last
    FROM {TRACKING} WHERE migration_id IN {{ids:Array(String)}}
    GROUP BY migration_id, source_root, file_path
)
GROUP BY migration_id
"""

#: Per run: the sums of its usage rows that the counting rules keep (run once or twice a
#: process: not compiled to machine code).
_COUNTED_SQL = (
    f"SELECT migration_id, {TOKEN_SUMS} FROM {COUNTED_VIEW} "
    "WHERE migration_id IN {ids:Array(String)} GROUP BY migration_id"
    + settings_clause(NOT_COMPILED)
)


def committed_by(client: Client, run_ids: Sequence[str]) -> dict[str, Committed]:
    """What each of ``run_ids`` committed (every id has an entry; zeros when nothing).

    Two statements: the tracking table is sorted by run id (a range read); the usage
    rows go through the counted view (a pass over the table, as the totals read does),
    so a row a later run replaced counts for that run, never for both.
    """
    if not run_ids:
        return {}
    params = {"ids": list(run_ids)}
    action = "reading what crashed runs committed"
    tracked = {r[0]: r[1:] for r in query_rows(client, _TRACKED_SQL, params, action=action)}
    counted = counted_by(client, run_ids)
    out = {}
    for run_id in run_ids:
        done, failed, committed, skipped, last = tracked.get(run_id, (0, 0, 0, 0, None))
        out[run_id] = Committed(
            files_processed=int(done),
            files_failed=int(failed),
            bytes=int(committed),
            lines_skipped=int(skipped),
            net=counted[run_id],
            last_commit=None if last is None else float(last),
        )
    return out


def counted_by(client: Client, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """The sums of each of ``run_ids``' usage rows that the counting rules keep
    (:data:`~.summaries.CHANGE_KEYS`; zeros when none): what each added."""
    params = {"ids": list(run_ids)}
    action = "reading what runs added"
    rows = {r[0]: r[1:] for r in query_rows(client, _COUNTED_SQL, params, action=action)}
    zeros = (0,) * len(CHANGE_KEYS)
    return {i: dict(zip(CHANGE_KEYS, rows.get(i, zeros), strict=True)) for i in run_ids}


_SESSIONS_SQL = f"SELECT DISTINCT session_id FROM {DETAILS_TABLE} WHERE migration_id = {{m:String}}"


def sessions_of(client: Client, run_id: str) -> list[str]:
    """The sessions of the usage rows ``run_id`` inserted (any version: a pass over the
    table's run and session columns)."""
    rows = query_rows(client, _SESSIONS_SQL, {"m": run_id}, action="reading a run's sessions")
    return [r[0] for r in rows]


def mark_crashed(
    runs: Sequence[dict[str, Any]],
    this_host: str,
    database: Database | None = None,
    committed: Callable[[Sequence[str]], dict[str, Committed]] | None = None,
) -> list[dict[str, Any]]:
    """``runs`` (as :meth:`EnhancedTokenDatabaseBridge.migration_runs` returns them) with
    each crashed one shown ``crashed`` (and ``crash_reason`` in its details) with what it
    committed (``committed``: :func:`committed_by` in a session, asked only when a run
    crashed), or as its stashed last row says (``failed`` with its reason, :func:`stash_run`)."""
    out = []
    crashed = []
    for run in runs:
        if is_crashed(run, this_host):
            stashed = read_stash(database, str(run["migration_id"])) if database else None
            if stashed is not None:
                run = {**run, "status": stashed.get("status", "failed")}
                run["details"] = details_of(stashed)
                run["finished_at"] = stashed.get("finished_at")
            else:
                details = dict(details_of(run))
                details.setdefault("crash_reason", crash_reason(run))
                run = {**run, "status": "crashed", "details": details}
                crashed.append(run)
        out.append(run)
    if committed is not None and crashed:
        found = remembered(database, [str(r["migration_id"]) for r in crashed], committed)
        for run in crashed:
            run.update(found[str(run["migration_id"])].row_counts())
    return out


def stash_dir(database: Database) -> Path | None:
    """Where refused run rows are kept: beside an on-disk embedded database (else None)."""
    lock = database.lock_path
    if lock is None:
        return None
    return lock.with_name(Path(database.url.path).name + ".unrecorded-runs")


def stash_run(database: Database, row: dict[str, Any]) -> None:
    """Keep a run row the database refused (best effort: a full disk may refuse it too)."""
    folder = stash_dir(database)
    if folder is None:
        return
    try:
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{row['migration_id']}.tmp"
        tmp.write_text(json.dumps(row, default=str), encoding="utf-8")
        os.replace(tmp, folder / f"{row['migration_id']}.json")
    except OSError:
        pass


def read_stash(database: Database, migration_id: str) -> dict[str, Any] | None:
    folder = stash_dir(database)
    if folder is None:
        return None
    try:
        row = json.loads((folder / f"{migration_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def drop_stash(database: Database, migration_id: str) -> None:
    folder = stash_dir(database)
    if folder is not None:
        with contextlib.suppress(OSError):
            (folder / f"{migration_id}.json").unlink()


_REMEMBERED: dict[str, dict[str, Committed]] = {}
"""Readers' :func:`committed_by` answers of the current write generation, by run id."""


def remembered(
    database: Database | None,
    run_ids: Sequence[str],
    read: Callable[[Sequence[str]], dict[str, Committed]],
) -> dict[str, Committed]:
    """``read(run_ids)``, but what was read since the last write is not read again: a
    crashed run's counts cannot change before something writes. The usage half is a pass
    over the counted view (seconds on a large database: docs/benchmarks.md); ``status``
    asks twice (the runs list, the run) and the dashboard every 30 s."""
    token = read_generation(database) if database is not None else None
    if not token:  # a server, or nothing written yet: no token to trust
        return read(run_ids)
    known = _REMEMBERED.get(token)
    if known is None:
        _REMEMBERED.clear()  # answers of older generations are stale
        known = _REMEMBERED.setdefault(token, {})
    missing = [r for r in run_ids if r not in known]
    if missing:
        known.update(read(missing))
    return {r: known[r] for r in run_ids}

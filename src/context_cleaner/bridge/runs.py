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

A run that fails writes its row ``failed`` with the reason. When the database refuses
that row too (a full disk), the row is kept in a file beside the embedded database
(:func:`stash_run`, ``<database>.unrecorded-runs/<id>.json``): readers show the run
``failed`` with its reason from there, and the next run records it and removes the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def mark_crashed(
    runs: Sequence[dict[str, Any]], this_host: str, database: Database | None = None
) -> list[dict[str, Any]]:
    """``runs`` (as :meth:`EnhancedTokenDatabaseBridge.migration_runs` returns them) with
    each crashed one shown ``crashed`` (and ``crash_reason`` in its details), or as its
    stashed last row says (``failed`` with its reason, :func:`stash_run`)."""
    out = []
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
        out.append(run)
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

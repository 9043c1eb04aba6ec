"""``get_migration_status``: where a run is, read back from the database (spec "Real-time
Progress Dashboard").

A run writes its progress where any process can read it: the run's row in
``enhanced_analysis_metadata``, a ``progress`` record (:func:`progress_record`)
in the details of its checkpoint and finish rows in ``migration_execution_log``,
and its alert transitions in ``migration_alerts``. :func:`get_migration_status`
turns them into a :class:`MigrationStatus` (phase, progress, rates, errors, ETA,
memory, alerts) for ``context-cleaner status`` and the dashboard, from any
process, while the run goes on or after it ended, and even after it was killed:
a run still marked running whose process on this host is gone is reported
``crashed`` (:mod:`context_cleaner.bridge.runs`), and one of another host that
stopped updating ``stalled``. The advice for a crashed, stalled or failed run names
the later run that finished its work when there is one, instead of "run again".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import psutil

from context_cleaner.bridge import (
    EXECUTION_LOG,
    METADATA,
    EnhancedTokenDatabaseBridge,
    database_exists,
    query_rows,
    read_alerts,
)
from context_cleaner.bridge.runs import (
    GONE,
    committed_by,
    crash_reason,
    details_of,
    is_crashed,
    process_state,
    read_stash,
    remembered,
)
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration import pipeline
from context_cleaner.migration.alerts import AlertRule, alert_rules
from context_cleaner.migration.models import to_jsonable
from context_cleaner.observability.telemetry import db_call

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from context_cleaner.migration.pipeline import RunState


def progress_record(state: RunState, phase: str = "migrating") -> dict[str, Any]:
    """A run's progress as stored in its log rows (what :func:`get_migration_status` reads)."""
    p = pipeline.progress_of(state, phase)
    return {
        "at": time.time(),
        "files_completed": p.files_completed,
        "files_total": p.files_completed + p.files_remaining,
        "files_failed": state.files_failed,
        "bytes_completed": p.bytes_completed,
        "bytes_total": p.bytes_total,
        "tokens_processed": p.tokens_processed,
        "records_inserted": p.records_inserted,
        "lines_skipped": state.skipped_lines,
        "tokens_per_second": round(p.current_processing_rate, 3),
        "errors": p.errors_encountered,
        "peak_memory_mb": round(state.peak_private / 2**20, 1),
        "peak_resident_mb": round(state.peak_rss / 2**20, 1),
        "working_memory_mb": round(max(0, state.peak_rss - state.baseline_rss) / 2**20, 1),
    }


@dataclass
class MigrationStatus:
    """Real-time status of one run (the spec's ``MigrationStatus``)."""

    migration_id: str
    run_kind: str
    phase: str
    """starting | migrating | syncing | validating | stalled | crashed | completed | failed |
    rolled_back"""
    status: str
    """As recorded (running | completed | failed | crashed | rolled_back), except that a run
    recorded running whose process on this host is gone is ``crashed``."""
    host: str
    started_at: datetime
    updated_at: datetime | None
    finished_at: datetime | None
    files_total: int
    files_completed: int
    files_failed: int
    files_remaining: int
    bytes_total: int
    bytes_completed: int
    progress: float
    """0..1: bytes (else files) completed of those the run planned to read."""
    tokens_processed: int
    """Tokens of the records read (of a crashed run: of its counted rows, as committed)."""
    records_inserted: int
    lines_skipped: int
    tokens_per_second: float
    files_per_minute: float
    megabytes_per_second: float
    errors_count: int
    estimated_completion_time: datetime | None
    eta_seconds: float | None
    peak_memory_mb: float | None
    working_memory_mb: float | None
    memory_usage_ratio: float | None
    """The machine's memory in use now (only for a running run of this host)."""
    seconds_since_progress: float | None
    """For a running run: seconds since it last recorded anything."""
    errors: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """Alerts firing at the run's last word (a stalled run's stall included)."""
    alert_history: list[dict[str, Any]] = field(default_factory=list)
    """Every transition recorded, oldest first."""
    reason: str | None = None
    """Why a run crashed or failed, as recorded (or as found: its process is gone)."""
    closed_by: str | None = None
    """The run that found this one crashed and closed it."""
    finished_by: str | None = None
    """A later completed run of this host over the same folders: it finished this run's work."""
    advice: str | None = None
    """What to do about a crashed, stalled or failed run (nothing when a later run did it)."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]


_RUN_COLUMNS = (
    *("source_roots", "migration_id", "run_kind", "status", "host"),
    *("started", "updated", "finished"),
    *("files_found", "files_processed", "files_failed", "records_inserted"),
    *("lines_skipped", "total_tokens", "details"),
)
_RUN_SQL = (
    "SELECT source_roots, migration_id, run_kind, status, host, "
    "toUnixTimestamp64Milli(started_at) / 1000.0, "
    "toUnixTimestamp64Milli(updated_at) / 1000.0, "
    "toUnixTimestamp64Milli(finished_at) / 1000.0, files_found, files_processed, files_failed, "
    f"records_inserted, lines_skipped, total_tokens, details FROM {METADATA} FINAL "
    "WHERE {where} "
    "ORDER BY started_at DESC LIMIT 1"
)
_LOG_SQL = (
    "SELECT toUnixTimestamp64Milli(execution_timestamp) / 1000.0, phase, operation, "
    f"toString(status), details FROM {EXECUTION_LOG} WHERE migration_id = {{m:String}} "
    "ORDER BY execution_timestamp"
)


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read(
    client: Client, migration_id: str | None
) -> tuple[dict[str, Any] | None, list[tuple], list[dict[str, Any]]]:
    where, params = "run_kind IN ('migrate', 'sync')", {}
    if migration_id is not None:
        where, params = "migration_id = {m:String}", {"m": migration_id}
    with db_call("SELECT", METADATA):
        rows = query_rows(client, _RUN_SQL.format(where=where), params)
    if not rows:
        return None, [], []
    run = dict(zip(_RUN_COLUMNS, rows[0], strict=True))
    with db_call("SELECT", EXECUTION_LOG):
        log = query_rows(client, _LOG_SQL, {"m": run["migration_id"]})
    with db_call("SELECT", METADATA):
        later = query_rows(client, _LATER_SQL, {"h": run["host"], "s": run["started"]})
    roots = {str(r) for r in run["source_roots"]}
    run["finished_by"] = next((m for m, r in later if roots <= {str(x) for x in r}), None)
    return run, log, read_alerts(client, run["migration_id"], limit=1000)


_LATER_SQL = (
    f"SELECT migration_id, source_roots FROM {METADATA} FINAL WHERE host = {{h:String}} "
    "AND run_kind IN ('migrate', 'sync') AND status = 'completed' "
    "AND toUnixTimestamp64Milli(started_at) / 1000.0 > {s:Float64} ORDER BY started_at"
)
"""Completed migrate and sync runs of a host that started after a given time."""


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def get_migration_status(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str | None = None,
    *,
    rules: dict[str, AlertRule] | None = None,
    now: float | None = None,
) -> MigrationStatus | None:
    """The status of run ``migration_id`` (default: the latest migrate or sync run).

    None when the database holds no run yet; :class:`ConfigurationError` for an unknown id.
    """
    if not database_exists(bridge):
        if migration_id is None:
            return None
        raise ConfigurationError(
            f"No migration {migration_id} in {bridge.database.url.redacted()}: the database is "
            "empty. Run `context-cleaner migrate` first."
        )
    with bridge.database.session() as client:
        run, log, alert_rows = _read(client, migration_id)
        if run is not None and run["status"] == "running":
            run["stashed"] = read_stash(bridge.database, run["migration_id"])
            if run["stashed"] is None and is_crashed(run, bridge.host):
                mid = run["migration_id"]
                done = remembered(bridge.database, [mid], partial(committed_by, client))[mid]
                run["committed"] = {
                    **done.row_counts(),
                    "bytes": done.bytes,
                    "last_commit": done.last_commit,
                }
    if run is None:
        if migration_id is None:
            return None
        raise ConfigurationError(
            f"No migration {migration_id} in {bridge.database.url.redacted()}; "
            "`context-cleaner status` lists the recent runs."
        )
    return build_status(run, log, alert_rows, bridge.host, rules or alert_rules(), now)


def build_status(
    run: dict[str, Any],
    log: list[tuple],
    alert_rows: list[dict[str, Any]],
    this_host: str,
    rules: dict[str, AlertRule],
    now: float | None = None,
) -> MigrationStatus:
    """Combine a run's rows into its :class:`MigrationStatus` (pure: no database)."""
    now = time.time() if now is None else now
    details = _json(run["details"])
    plan: dict[str, Any] = {}
    progress: dict[str, Any] = {}
    errors: list[str] = list(details.get("errors") or [])
    last_write = max(run["updated"] or 0.0, run["started"] or 0.0)
    for at, _phase, operation, _outcome, text in log:
        last_write = max(last_write, at)
        info = _json(text)
        if operation == "start":
            plan = info
        if isinstance(info.get("progress"), dict):
            progress = info["progress"]
        if info.get("errors") and not errors:
            errors = list(info["errors"])
    status = run["status"]
    reason = details.get("crash_reason") or details.get("error")
    process = details.get("process")
    if status == "running" and process_state(process, run["host"], this_host) == GONE:
        status = "crashed"
        reason = crash_reason({**run, "details": details})
        stashed = run.get("stashed")
        if stashed:  # it failed, and the database refused its last row: kept beside it
            status = str(stashed.get("status") or "failed")
            reason = details_of(stashed).get("error") or reason
            run = {**run, "finished": stashed.get("finished_at")}
    if status == "failed" and not reason and errors:
        reason = errors[0]
    if status == "crashed":  # its last progress note is behind what it committed
        progress = {**progress, **_committed_progress(run, details)}
    files_total = int(progress.get("files_total", plan.get("pending_files", 0)) or 0)
    files_done = int(progress.get("files_completed", run["files_processed"] + run["files_failed"]))
    bytes_total = int(progress.get("bytes_total", plan.get("pending_bytes", 0)) or 0)
    bytes_done = int(progress.get("bytes_completed", 0) or 0)
    tokens = int(progress.get("tokens_processed", 0) or 0)
    end = run["finished"] if run["finished"] else progress.get("at", last_write)
    if progress.get("last_commit"):  # a crashed run: its work ended at its last commit
        end = progress["last_commit"]
    elapsed = max(float(end or now) - run["started"], 1e-9)

    stalled_after = rules["migration_stalled"].threshold if "migration_stalled" in rules else 300
    since = now - last_write if status == "running" else None
    finished_by = run.get("finished_by")
    if status != "running":
        phase = status
    elif since is not None and since > stalled_after:
        phase = "stalled"
    elif progress and files_total and files_done >= files_total:
        phase = "validating" if run["run_kind"] == "migrate" else "syncing"
    elif not progress:
        phase = "starting"
    else:
        phase = "migrating" if run["run_kind"] == "migrate" else "syncing"

    if status == "completed":
        ratio = 1.0
    elif bytes_total:
        ratio = min(1.0, bytes_done / bytes_total)
    else:
        ratio = min(1.0, files_done / files_total) if files_total else 0.0

    eta_seconds = eta = None
    if status == "running" and bytes_done and bytes_total > bytes_done:
        at = float(progress.get("at", now))
        remaining = (bytes_total - bytes_done) * (at - run["started"]) / bytes_done
        eta = _at(at + remaining)
        eta_seconds = max(0.0, at + remaining - now)

    history = sorted(alert_rows, key=lambda a: (a["raised_at"], a["alert"]))
    latest: dict[str, dict[str, Any]] = {}
    for a in history:
        latest[a["alert"]] = a
    firing = [a for a in latest.values() if a["state"] == "firing"]
    if phase == "stalled" and "migration_stalled" not in {a["alert"] for a in firing}:
        firing.append(_stall_alert(run, since or 0.0, stalled_after, now, finished_by))
    if phase in ("crashed", "failed"):  # a run that ended: nothing of it still fires
        firing = [a for a in firing if a["alert"] != "migration_stalled"]
    advice = _advice(run, phase, finished_by)
    memory_ratio = None
    if status == "running" and run["host"] == this_host:
        vm = psutil.virtual_memory()
        memory_ratio = round(1.0 - vm.available / vm.total, 4)

    return MigrationStatus(
        migration_id=run["migration_id"],
        run_kind=run["run_kind"],
        phase=phase,
        status=status,
        host=run["host"],
        started_at=_at(run["started"]),  # type: ignore[arg-type]
        updated_at=_at(last_write),
        finished_at=_at(run["finished"]),
        files_total=files_total,
        files_completed=files_done,
        files_failed=int(progress.get("files_failed", run["files_failed"]) or 0),
        files_remaining=max(0, files_total - files_done),
        bytes_total=bytes_total,
        bytes_completed=bytes_done,
        progress=round(ratio, 6),
        tokens_processed=tokens,
        records_inserted=int(progress.get("records_inserted", run["records_inserted"]) or 0),
        lines_skipped=int(progress.get("lines_skipped", run["lines_skipped"]) or 0),
        tokens_per_second=round(tokens / elapsed, 3),
        files_per_minute=round(files_done * 60 / elapsed, 3),
        megabytes_per_second=round(bytes_done / 1e6 / elapsed, 3),
        errors_count=int(progress.get("errors", len(errors)) or 0),
        estimated_completion_time=eta,
        eta_seconds=eta_seconds,
        peak_memory_mb=progress.get("peak_memory_mb"),
        working_memory_mb=progress.get("working_memory_mb"),
        memory_usage_ratio=memory_ratio,
        seconds_since_progress=None if since is None else round(since, 3),
        errors=errors[:50],
        alerts=firing,
        alert_history=history,
        reason=reason if phase in ("crashed", "failed") else None,
        closed_by=details.get("closed_by"),
        finished_by=finished_by if phase in ("crashed", "stalled", "failed") else None,
        advice=advice,
    )


def _committed_progress(run: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """What a crashed run committed, as progress: read from the database while it is not
    closed (``run["committed"]``), from its row once the run that closed it wrote them
    there (with ``committed_bytes``; a row closed before that has only its old counts)."""
    done = run.get("committed")
    if done is None and "committed_bytes" in details:
        done = {k: run[k] for k in _COMMITTED_COLUMNS}
        done["bytes"] = details["committed_bytes"]
        done["last_commit"] = details.get("last_commit_at")
    if done is None:
        return {}
    return {
        "files_completed": done["files_processed"] + done["files_failed"],
        "files_failed": done["files_failed"],
        "bytes_completed": done["bytes"],
        "tokens_processed": done["total_tokens"],
        "records_inserted": done["records_inserted"],
        "lines_skipped": done["lines_skipped"],
        "last_commit": done["last_commit"],
    }


_COMMITTED_COLUMNS = (
    "files_processed",
    "files_failed",
    "records_inserted",
    "lines_skipped",
    "total_tokens",
)


def _advice(run: dict[str, Any], phase: str, finished_by: str | None) -> str | None:
    """What to do about a run that did not finish; never "run again" when a later run did."""
    if phase not in ("crashed", "stalled", "failed"):
        return None
    if finished_by:
        return f"Nothing to do: run {finished_by}, started later, finished its work."
    verb = "migrate" if run["run_kind"] == "migrate" else "sync"
    return f"Run `context-cleaner {verb}` again over the same folders: it resumes this run's work."


def _stall_alert(
    run: dict[str, Any], since: float, threshold: float, now: float, finished_by: str | None = None
) -> dict[str, Any]:
    mid = run["migration_id"]
    then = (
        f"run {finished_by}, started later, finished its work."
        if finished_by
        else "Run the same command again to resume it."
    )
    return {
        "migration_id": mid,
        "run_kind": run["run_kind"],
        "alert": "migration_stalled",
        "state": "firing",
        "raised_at": now,
        "metric": "seconds_without_progress",
        "value": round(since, 3),
        "threshold": threshold,
        "window_seconds": 0,
        "message": (
            f"migration {mid} is marked running but has recorded nothing for {since:,.0f} s "
            f"(threshold {threshold:,.0f} s): its process on {run['host']} was stopped or is "
            f"stuck. {then}"
        ),
        "host": run["host"],
        "derived": True,
    }


def status_lines(status: dict[str, Any] | None) -> list[str]:
    """``status`` (a :meth:`MigrationStatus.to_dict`) as plain lines for a terminal."""
    if status is None:
        return []
    s = status
    lines = [
        f"Run {s['migration_id']} ({s['run_kind']} on {s['host']}): {s['phase']}; "
        f"{s['progress']:.1%} done ({s['files_completed']:,}/{s['files_total']:,} files, "
        f"{s['bytes_completed'] / 1e6:,.1f}/{s['bytes_total'] / 1e6:,.1f} MB); "
        f"{s['tokens_processed']:,} tokens at {s['tokens_per_second']:,.0f} tokens/s "
        f"({s['files_per_minute']:,.1f} files/min, {s['megabytes_per_second']:,.1f} MB/s)."
    ]
    if s["estimated_completion_time"]:
        lines.append(
            f"  ETA {s['estimated_completion_time'][:19]} UTC (in {s['eta_seconds']:,.0f} s)."
        )
    memory = []
    if s["peak_memory_mb"] is not None:
        memory.append(
            f"peak {s['peak_memory_mb']:,.0f} MB private (working {s['working_memory_mb']:,.0f})"
        )
    if s["memory_usage_ratio"] is not None:
        memory.append(f"machine {s['memory_usage_ratio']:.0%} in use")
    if memory:
        lines.append("  Memory: " + "; ".join(memory) + ".")
    if s.get("reason"):
        lines.append(f"  {s['phase'].capitalize()}: {s['reason']}.")
    if s.get("closed_by"):
        lines.append(f"  Closed by run {s['closed_by']}.")
    if s.get("advice"):
        lines.append(f"  {s['advice']}")
    if s["errors_count"] or s["errors"]:
        lines.append(f"  Errors: {s['errors_count']:,}.")
        lines += [f"    {e}" for e in s["errors"][:5]]
    if s["alerts"]:
        lines.append(f"  Alerts firing: {len(s['alerts'])}.")
        lines += [f"    {a['alert']}: {a['message']}" for a in s["alerts"]]
    else:
        fired = sum(1 for a in s["alert_history"] if a["state"] == "firing")
        lines.append(
            f"  Alerts: none firing ({fired} raised during the run, all resolved)."
            if fired
            else "  Alerts: none."
        )
    return lines

"""Migration health for the dashboard: run progress, validation state, freshness, alerts.

Pure functions over what the bridge returns (runs, tracked files), so both
sources and the tests can use them. Freshness classifies each tracked file with
the file classifier ``status`` uses (:mod:`context_cleaner.migration.file_state`:
a last line still being written is not work for ``sync``), and measures the data
lag as ``status`` does: from the last usage line of the most recently modified
tracked files (only its time is read; no transcript content leaves this module).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from context_cleaner.bridge import TrackedFile

MAX_MESSAGE = 300
_FINISHED = ("completed", "failed", "crashed", "rolled_back")


def iso_utc(value: Any) -> str | None:
    """A timestamp (ISO text without zone = UTC, datetime, or epoch seconds) as ``...Z``."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        value = value.isoformat()
    text = str(value)
    if text.endswith("Z") or "+" in text[10:]:
        return text
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:3]}"
    return text + "Z"


def epoch(value: Any) -> float | None:
    """The inverse of :func:`iso_utc`, for lag arithmetic."""
    text = iso_utc(value)
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _short(text: Any) -> str:
    text = str(text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def present_run(run: dict[str, Any]) -> dict[str, Any]:
    """One run as the API shows it: counts, progress, validation; details whitelisted."""
    details = run.get("details") if isinstance(run.get("details"), dict) else {}
    found = int(run.get("files_found") or 0)
    done = sum(int(run.get(k) or 0) for k in ("files_processed", "files_failed", "files_skipped"))
    status = str(run.get("status") or "")
    progress = min(1.0, done / found) if found else 0.0
    if status == "completed":
        progress = 1.0
    errors = details.get("errors") or []
    passed = details.get("validation_passed", details.get("passed"))
    return {
        "migration_id": run.get("migration_id"),
        "run_kind": run.get("run_kind"),
        "status": status,
        "started_at": iso_utc(run.get("started_at")),
        "finished_at": iso_utc(run.get("finished_at")),
        "host": run.get("host"),
        "files_found": found,
        "files_done": done,
        "files_failed": int(run.get("files_failed") or 0),
        "records_inserted": int(run.get("records_inserted") or 0),
        "lines_skipped": int(run.get("lines_skipped") or 0),
        "total_tokens": int(run.get("total_tokens") or 0),
        "cost_usd": float(run.get("cost_usd") or 0.0),
        "progress": round(progress, 4),
        "validation_passed": passed if isinstance(passed, bool) else None,
        "integrity_score": details.get("integrity_score"),
        "error_count": len(errors) if isinstance(errors, list) else 1,
        "first_error": _short(errors[0]) if isinstance(errors, list) and errors else None,
    }


def validation_state(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest validation: a ``validate`` run if there is one, else a migration's own check.

    ``runs`` are raw bridge runs, newest first. None when nothing was ever validated.
    """
    chosen = next((r for r in runs if r.get("run_kind") == "validate"), None)
    if chosen is None:
        chosen = next(
            (
                r
                for r in runs
                if isinstance(r.get("details"), dict) and "validation_passed" in r["details"]
            ),
            None,
        )
    if chosen is None:
        return None
    details = chosen.get("details") if isinstance(chosen.get("details"), dict) else {}
    passed = details.get("passed", details.get("validation_passed"))
    if passed is None and chosen.get("run_kind") == "validate":
        passed = chosen.get("status") == "completed"
    return {
        "passed": bool(passed),
        "migration_id": chosen.get("migration_id"),
        "run_kind": chosen.get("run_kind"),
        "at": iso_utc(chosen.get("finished_at") or chosen.get("started_at")),
        "integrity_score": details.get("integrity_score"),
        "variance_ratio": details.get("variance_ratio"),
        "sessions_checked": details.get("sessions_checked"),
    }


def on_disk(tracked: Sequence[TrackedFile]) -> list[tuple[TrackedFile, os.stat_result | None]]:
    """Each tracked file with its ``stat`` now (None when it is gone or unreadable); a file
    tracked under two folders once (``file_state.counted_once``)."""
    from context_cleaner.migration.file_state import counted_once, stats_now

    return stats_now(counted_once(tracked)[0])


def file_freshness(stats: Iterable[tuple[TrackedFile, os.stat_result | None]]) -> dict[str, int]:
    """Tracked files by the file classifier's state (the one ``status`` uses).

    ``files_behind``/``bytes_behind``: complete lines not yet in the database (``sync``
    reads them), in files replaced or truncated too; ``files_replaced``: of those, files
    replaced or truncated (read again from their start, earlier rows kept);
    ``files_unfinished``/``bytes_unfinished``: a last line without its newline yet
    (counted once it ends); ``files_missing``: deleted (rows kept).
    """
    from context_cleaner.migration.file_state import classify_stats, counts

    n = counts(classify_stats(stats))
    return {
        "files_tracked": sum(n[s] for s in _STATES),
        "files_synced": n["synced"],
        "files_behind": n["behind"] + n["replaced"] + n["truncated"],
        "bytes_behind": n["pending_bytes"],
        "files_unfinished": n["unfinished"],
        "bytes_unfinished": n["unfinished_bytes"],
        "files_replaced": n["replaced"] + n["truncated"],
        "files_missing": n["deleted"],
        "files_with_errors": n["error"],
    }


_STATES = ("synced", "behind", "unfinished", "replaced", "truncated", "deleted", "error")


def last_sync(runs: Sequence[dict[str, Any]]) -> str | None:
    """When the newest finished migrate or sync run ended."""
    for r in runs:
        if r.get("run_kind") in ("migrate", "sync") and r.get("status") in _FINISHED:
            return iso_utc(r.get("finished_at") or r.get("started_at"))
    return None


def record_age(newest: float | None, now: float | None = None) -> float | None:
    """Seconds between now and the newest counted record (None without records)."""
    if newest is None:
        return None
    return max(0.0, (time.time() if now is None else now) - newest)


def data_lag(
    stats: Sequence[tuple[TrackedFile, os.stat_result | None]], newest: float | None
) -> float | None:
    """The data lag as ``status`` reports it: the newest usage line on disk that is not in
    the database yet, minus the newest record in it (0 when all is in). Measured on the
    most recently modified tracked files found on this machine; None when none is here
    (a dashboard on another machine than the transcripts) or the database is empty."""
    from context_cleaner.migration.file_state import transcript_from_stat
    from context_cleaner.migration.freshness import committed_offsets, measure_freshness

    here = [transcript_from_stat(t, st) for t, st in stats if st is not None]
    if not here or newest is None:
        return None
    lag = measure_freshness(here, committed_offsets(t for t, _ in stats), newest)
    return lag.data_lag_seconds


def alerts(
    runs: Sequence[dict[str, Any]],
    freshness: dict[str, Any],
    validation: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Alerts recorded in run details, plus failed runs, failed validation and stale files."""
    out: list[dict[str, Any]] = []
    for r in runs:
        details = r.get("details") if isinstance(r.get("details"), dict) else {}
        for a in details.get("alerts") or []:
            level = a.get("level", "warning") if isinstance(a, dict) else "warning"
            message = a.get("message", a) if isinstance(a, dict) else a
            out.append(_alert(level, message, r))
    for i, r in enumerate(runs[:5]):
        if r.get("status") in ("failed", "crashed"):
            details = r.get("details") if isinstance(r.get("details"), dict) else {}
            reason = (
                details.get("crash_reason")
                or details.get("error")
                or (details.get("errors") or ["no reason recorded"])[0]
            )
            later = _finished_later(r, runs[:i])
            then = (
                f"run {later} finished its work." if later else "Run the command again to resume."
            )
            if details.get("closed_by"):
                then = f"closed by run {details['closed_by']}; " + then
            out.append(
                _alert(
                    "error",
                    f"{r.get('run_kind')} run {r.get('migration_id')} "
                    f"{r.get('status')}: {reason}. {then}",
                    r,
                )
            )
    if validation is not None and not validation["passed"]:
        out.append(
            {
                "level": "error",
                "message": f"Validation failed ({validation['run_kind']} "
                f"{validation['migration_id']}); run `context-cleaner validate` for details.",
                "migration_id": validation["migration_id"],
                "at": validation["at"],
            }
        )
    if freshness.get("files_with_errors"):
        out.append(
            _alert(
                "warning",
                f"{freshness['files_with_errors']} tracked file(s) failed to sync; "
                "see `context-cleaner status`.",
            )
        )
    if freshness.get("files_behind"):
        out.append(
            _alert(
                "info",
                f"{freshness['files_behind']} file(s) have {freshness['bytes_behind']:,} byte(s) "
                "of complete lines not yet in the database; run `context-cleaner sync`.",
            )
        )
    if freshness.get("files_replaced"):
        out.append(
            _alert(
                "info",
                f"{freshness['files_replaced']} file(s) were replaced or rewritten: the earlier "
                "content stays as retained history; `context-cleaner sync` reads the new one.",
            )
        )
    return out


def _finished_later(run: dict[str, Any], newer: Sequence[dict[str, Any]]) -> str | None:
    """A newer completed migrate or sync run of the same host over the same folders."""
    roots = set(run.get("source_roots") or [])
    for r in reversed(newer):  # oldest of the newer runs first
        if (
            r.get("run_kind") in ("migrate", "sync")
            and r.get("status") == "completed"
            and r.get("host") == run.get("host")
            and roots <= set(r.get("source_roots") or [])
        ):
            return str(r.get("migration_id"))
    return None


def firing_alerts(transitions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts still firing, from the ``migration_alerts`` transitions (newest first).

    A rule's latest transition per run decides: ``firing`` is shown, ``resolved`` is not.
    """
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for t in transitions:
        latest.setdefault((t.get("migration_id"), t.get("alert")), t)
    return [
        {
            "level": "error" if t.get("alert") == "migration_stalled" else "warning",
            "message": _short(t.get("message") or f"{t.get('alert')} in {t.get('migration_id')}"),
            "migration_id": t.get("migration_id"),
            "at": iso_utc(t.get("raised_at")),
        }
        for t in latest.values()
        if t.get("state") == "firing"
    ]


def _alert(level: str, message: Any, run: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "level": level if level in ("error", "warning", "info") else "warning",
        "message": _short(message),
        "migration_id": run.get("migration_id") if run else None,
        "at": iso_utc(run.get("finished_at") or run.get("started_at")) if run else None,
    }

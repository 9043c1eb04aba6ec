"""What a user needs to keep their history: the checks behind ``context-cleaner doctor``.

Each check is a plain function returning a :class:`Check` (``ok``, ``warn`` or ``fail``,
what was found, and the next step that fixes it). Claude Code deletes transcripts after
``cleanupPeriodDays`` (default 30); the database keeps every response it synced, so
history survives only when the sync runs more often than the cleanup.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from context_cleaner.settings import API_ENV, CONFIG_DIR_ENV

DEFAULT_CLEANUP_DAYS = 30
KEEP_DAYS = 36500
STALE_SYNC_SECONDS = 2 * 3600


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def settings_files(environ: Mapping[str, str]) -> list[Path]:
    """Claude Code's settings files: ``~/.claude/settings.json`` and each
    ``$CLAUDE_CONFIG_DIR`` entry's ``settings.json`` (an entry may name its ``projects/``)."""
    home = Path(environ.get("HOME") or Path.home())
    files = [home / ".claude" / "settings.json"]
    for entry in (environ.get(CONFIG_DIR_ENV) or "").split(","):
        if entry.strip():
            folder = Path(entry.strip()).expanduser()
            if folder.name == "projects":
                folder = folder.parent
            files.append(folder / "settings.json")
    unique: list[Path] = []
    for f in files:
        if f not in unique:
            unique.append(f)
    return unique


def check_retention(environ: Mapping[str, str]) -> Check:
    """``transcript_retention``: how long Claude Code keeps transcripts."""
    found: list[tuple[Path, Any]] = []
    broken: list[str] = []
    for path in settings_files(environ):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            broken.append(f"{path}: {exc}")
            continue
        if isinstance(data, dict) and "cleanupPeriodDays" in data:
            found.append((path, data["cleanupPeriodDays"]))
    target = settings_files(environ)[-1]
    line = f'"cleanupPeriodDays": {KEEP_DAYS}'
    fix = f"add {line} to {target} (inside its top-level {{...}})"
    if broken:
        return Check(
            "transcript_retention", "warn", "unreadable settings: " + "; ".join(broken), fix
        )
    if not found:
        return Check(
            "transcript_retention",
            "warn",
            f"cleanupPeriodDays is not set: Claude Code deletes transcripts after "
            f"{DEFAULT_CLEANUP_DAYS} days (the database keeps what was synced before).",
            fix,
        )
    days = [d for _, d in found if isinstance(d, int) and not isinstance(d, bool)]
    where = ", ".join(f"{d} in {p}" for p, d in found)
    if len(days) != len(found):
        return Check(
            "transcript_retention", "warn", f"cleanupPeriodDays is not a number: {where}", fix
        )
    shortest = min(days)
    if shortest < DEFAULT_CLEANUP_DAYS:
        return Check(
            "transcript_retention",
            "warn",
            f"Claude Code deletes transcripts after {shortest} days ({where}).",
            fix,
        )
    return Check("transcript_retention", "ok", f"transcripts are kept {shortest} days ({where}).")


def check_roots(source_dirs: list[str] | None) -> Check:
    from context_cleaner.analysis.discovery import resolve_roots
    from context_cleaner.errors import ContextCleanerError

    try:
        roots = resolve_roots(source_dirs)
    except ContextCleanerError as exc:
        roots, problem = [], str(exc)
    present = [r for r in roots if r.is_dir()]
    if not present:
        return Check(
            "transcript_roots",
            "warn",
            problem if not roots else "no transcript folder found.",
            "set CLAUDE_CONFIG_DIR to the folder holding Claude Code's projects/, or pass "
            "--source-dir to migrate and sync",
        )
    parts = []
    empty = []
    for r in present:
        n = sum(1 for _ in r.rglob("*.jsonl"))
        parts.append(f"{r} ({n} transcript(s))")
        if not n:
            empty.append(str(r))
    status = "warn" if len(empty) == len(present) else "ok"
    return Check(
        "transcript_roots",
        status,
        "found " + ", ".join(parts) + (f"; empty: {', '.join(empty)}" if empty else ""),
        "" if status == "ok" else "use Claude Code once, or point CLAUDE_CONFIG_DIR at your data",
    )


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check_database(
    url: str | None, source_dirs: list[str] | None, now: float | None = None
) -> list[Check]:
    """``database`` and ``last_sync``: where it is, what it holds, how fresh it is."""
    from context_cleaner.analysis.periods import ReportQuery
    from context_cleaner.analysis.transcript_report import report_from_transcripts
    from context_cleaner.bridge import (
        COUNTED_VIEW,
        TRACKING,
        Database,
        applied_schema_files,
        default_host,
        query_rows,
    )
    from context_cleaner.errors import ContextCleanerError

    try:
        database = Database(url)
    except ContextCleanerError as exc:
        return [Check("database", "fail", str(exc), "fix CONTEXT_CLEANER_CLICKHOUSE_URL")]
    target = database.url
    where = target.redacted()
    migrate = "run `context-cleaner migrate` to copy your transcripts into it"
    if target.is_embedded and not target.is_memory and not Path(target.path).exists():
        return [Check("database", "warn", f"no database yet at {where}.", migrate)]
    try:
        with database.session() as client:
            if not query_rows(client, f"EXISTS TABLE {COUNTED_VIEW}")[0][0]:
                return [Check("database", "warn", f"{where} has no schema yet.", migrate)]
            applied = applied_schema_files(client)
            rows, oldest, newest = query_rows(
                client,
                f"SELECT count(), toString(min(toDate(timestamp))), "
                f"toString(max(toDate(timestamp))) FROM {COUNTED_VIEW}",
            )[0]
            days = {
                str(r[0])
                for r in query_rows(
                    client, f"SELECT DISTINCT toString(toDate(timestamp)) FROM {COUNTED_VIEW}"
                )
            }
            last = query_rows(
                client,
                "SELECT toUnixTimestamp64Milli(max(finished_at)) FROM enhanced_analysis_metadata "
                "FINAL WHERE run_kind IN ('migrate', 'sync') AND status = 'completed'",
            )[0][0]
            if not source_dirs:
                # The folders this host migrated from (what status and validate look at), not
                # the default ones, which may hold none of its transcripts.
                roots = f"SELECT DISTINCT source_root FROM {TRACKING} WHERE host = {{h:String}}"
                named = query_rows(client, roots, {"h": default_host()})
                source_dirs = sorted(str(r[0]) for r in named if os.path.isdir(str(r[0]))) or None
    except ContextCleanerError as exc:
        return [Check("database", "fail", str(exc), "see docs/operations.md (troubleshooting)")]
    try:
        on_disk = {
            str(r["date"])
            for r in report_from_transcripts(ReportQuery(), source_dirs, host=default_host())[
                "rows"
            ]
        }
    except ContextCleanerError:  # no transcript folder: nothing to compare the days with
        on_disk = None
    folders = ", ".join(source_dirs) if source_dirs else "the default folders"
    if on_disk is None:
        compared = "; no transcript folder found to compare its days with (see transcript_roots)."
    elif only := len(days - on_disk):
        compared = (
            f"; {only} day(s) exist only in the database (their transcripts are gone from "
            f"{folders})."
        )
    else:
        compared = f"; each of its days is in the transcripts of {folders} too."
    size = f", {_size(Path(target.path)) / 1e6:,.1f} MB" if target.is_embedded else ""
    version = max(applied) if applied else "none"
    message = (
        f"{where}{size}, schema {version}, {rows:,} usage rows"
        + (f" from {oldest} to {newest}" if rows else "")
        + compared
    )
    checks = [Check("database", "ok", message)]
    now = time.time() if now is None else now
    if not last:
        checks.append(Check("last_sync", "warn", "no completed migrate or sync run yet.", migrate))
    else:
        lag = now - last / 1000
        status = "ok" if lag <= STALE_SYNC_SECONDS else "warn"
        checks.append(
            Check(
                "last_sync",
                status,
                f"last completed sync {lag / 3600:,.1f} h ago (data lag).",
                "" if status == "ok" else "run `context-cleaner sync`, and schedule it hourly",
            )
        )
    return checks


def check_schedule(environ: Mapping[str, str]) -> Check:
    api = environ.get(API_ENV, "").strip()
    if api:
        return Check(
            "scheduled_sync",
            "ok",
            f"Prefect is configured ({api}); the hourly deployment runs `sync` there.",
        )
    return Check(
        "scheduled_sync",
        "warn",
        "no hourly sync found (PREFECT_API_URL is not set).",
        "run `context-cleaner serve` (hourly sync), or `context-cleaner sync --watch`, or cron "
        "`0 * * * * context-cleaner sync`",
    )


def run_checks(  # the surface adds its own checks (the dashboard token: cli_doctor)
    url: str | None = None,
    source_dirs: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    env = os.environ if environ is None else environ
    steps: list[Callable[[], list[Check]]] = [
        lambda: [check_roots(source_dirs)],
        lambda: [check_retention(env)],
        lambda: check_database(url, source_dirs),
        lambda: [check_schedule(env)],
    ]
    out: list[Check] = []
    for step in steps:
        out.extend(step())
    return out

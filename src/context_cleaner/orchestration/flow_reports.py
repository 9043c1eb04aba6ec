"""What the Prefect flows show as artifacts: result tables and the validation report.

Plain functions from the result types to rows and markdown (no Prefect), so the
same text can be tested without a server and reused by other surfaces.
"""

from __future__ import annotations

from typing import Any

from context_cleaner.migration.alerts import FAILING_ALERTS
from context_cleaner.migration.models import (
    HistoricalMigrationResult,
    IncrementalMigrationResult,
    RollbackResult,
    ValidationResult,
)

TOKEN_ROWS = (
    ("input tokens", "input_tokens"),
    ("output tokens", "output_tokens"),
    ("cache creation tokens", "cache_creation_tokens"),
    ("cache read tokens", "cache_read_tokens"),
    ("total tokens", "total_tokens"),
    ("cost (USD)", "cost_usd"),
)


def _rows(pairs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"field": name, "value": _cell(value)} for name, value in pairs]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, int | str | bool) or value is None:
        return value
    return str(value)


def migration_table(result: HistoricalMigrationResult, tasks: str = "") -> list[dict[str, Any]]:
    """The migration result as ``field``/``value`` rows (the database's totals included)."""
    pairs: list[tuple[str, Any]] = [
        ("migration id", result.migration_id),
        ("status", "dry run" if result.dry_run else _status(result)),
        ("files found", result.total_files_found),
        ("files processed", result.files_processed),
        ("files skipped (unchanged)", result.files_skipped),
        ("files failed", result.files_failed),
        ("files resumed", result.resumed_files),
        ("bytes read", result.bytes_processed),
        ("records inserted", result.total_records_inserted),
        ("tokens added", result.total_tokens_migrated),
        ("sessions created", result.total_sessions_created),
        ("lines skipped", result.skipped_lines),
        *_run_notes(result),
        ("seconds", result.processing_duration),
        ("tokens per second", result.average_processing_speed_tokens_per_second),
        ("peak memory (MB)", result.peak_memory_usage_mb),
        ("insert seconds", result.database_insertion_time),
        ("checkpoints", ", ".join(result.checkpoints)),
        ("validation", "passed" if result.validation_passed else "not passed"),
        ("integrity score", result.data_integrity_score),
    ]
    if tasks:
        pairs.append(("tasks", tasks))
    if result.projected_seconds is not None:
        pairs.append(("projected seconds", result.projected_seconds))
    totals = result.database_totals or {}
    pairs += [(f"database {label}", totals.get(key)) for label, key in TOKEN_ROWS if key in totals]
    pairs += [("error", e) for e in result.errors[:20]]
    return _rows(pairs)


def _status(result: HistoricalMigrationResult | IncrementalMigrationResult) -> str:
    """``ok``, ``FAILED``, or ``ALERTED`` when an alert that fails runs fired."""
    if not result.success:
        return "FAILED"
    if set(result.alerts_fired) & set(FAILING_ALERTS):
        return "ALERTED (" + ", ".join(a for a in result.alerts_fired if a in FAILING_ALERTS) + ")"
    return "ok"


def _run_notes(
    result: HistoricalMigrationResult | IncrementalMigrationResult,
) -> list[tuple[str, Any]]:
    """Skipped lines by reason (and a few of them), alerts fired, crashed runs closed."""
    pairs: list[tuple[str, Any]] = [
        (f"lines skipped: {reason}", count)
        for reason, count in sorted(result.skipped_lines_by_reason.items())
    ]
    pairs += [("skipped line", example) for example in result.skipped_line_examples[:5]]
    if result.alerts_fired:
        pairs.append(("alerts fired", ", ".join(result.alerts_fired)))
    pairs += [
        ("crashed run closed", f"{c['migration_id']}: {c['reason']}") for c in result.closed_runs
    ]
    return pairs


def sync_table(result: IncrementalMigrationResult, tasks: str = "") -> list[dict[str, Any]]:
    """The sync result as ``field``/``value`` rows."""
    pairs: list[tuple[str, Any]] = [
        ("sync id", result.migration_id),
        ("status", _status(result)),
        ("files checked", result.files_checked),
        ("files changed", result.files_changed),
        ("files new", result.files_new),
        ("files re-read from 0", result.files_reset),
        ("files deleted", result.files_deleted),
        ("bytes read", result.bytes_read),
        ("records inserted", result.records_inserted),
        ("tokens added", result.tokens_added),
        ("lines skipped", result.skipped_lines),
        *_run_notes(result),
        ("seconds", result.duration_seconds),
        ("data lag (s)", result.data_lag_seconds),
    ]
    if tasks:
        pairs.append(("tasks", tasks))
    pairs += [("error", e) for e in result.errors[:20]]
    return _rows(pairs)


def rollback_table(result: RollbackResult) -> list[dict[str, Any]]:
    """Each table's rows before and after the rollback, and what was done to it."""
    tables = sorted({*result.rows_before, *result.rows_after, *result.tables_dropped})
    return [
        {
            "table": t,
            "rows before": result.rows_before.get(t),
            "rows after": result.rows_after.get(t),
            "action": "restored"
            if t in result.tables_restored
            else ("dropped" if t in result.tables_dropped else ""),
        }
        for t in tables
    ]


def validation_markdown(report: ValidationResult) -> str:
    """The validation report as markdown: totals side by side, differing sessions, notes."""
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [
        f"# Validation {verdict}",
        "",
        f"Variance {report.token_variance:+,} tokens ({report.variance_ratio:.6%}; tolerance "
        f"{report.tolerance:.4%}); integrity score {report.integrity_score:.4f}; "
        f"{'full' if report.full_validation else 'sampled'} check in "
        f"{report.duration_seconds:.2f} s.",
        "",
        "| | transcripts | database |",
        "|---|---:|---:|",
    ]
    for label, key in TOKEN_ROWS:
        src, db = report.source_totals.get(key, 0), report.database_totals.get(key, 0)
        fmt = "{:,.2f}" if key == "cost_usd" else "{:,}"
        lines.append(f"| {label} | {fmt.format(src)} | {fmt.format(db)} |")
    lines += [
        f"| sessions | {report.source_sessions:,} | {report.database_sessions:,} |",
        f"| files | {report.source_files:,} | {report.tracked_files:,} |",
        "",
        f"{report.sessions_checked:,} session(s) compared, "
        f"{len(report.session_mismatches):,} differ.",
    ]
    retained = report.retained or {}
    if retained.get("records"):
        lines += [
            "",
            f"Retained history (kept on purpose, not a variance): "
            f"{retained['totals']['total_tokens']:,} tokens in {retained['records']:,} "
            f"record(s), {retained['files']:,} file(s), {retained['sessions']:,} session(s), "
            f"{retained['oldest_day']} to {retained['newest_day']}.",
        ]
    if report.session_mismatches:
        lines += ["", "| session | transcripts | database | difference |", "|---|---:|---:|---:|"]
        for m in report.session_mismatches[:20]:
            lines.append(
                f"| `{m.session_id}` | {m.source_tokens:,} | {m.database_tokens:,} | "
                f"{m.difference:+,} |"
            )
    if report.explanations:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.explanations]
    return "\n".join(lines) + "\n"

"""Terminal rendering with rich: tables and lines for people, never for machines (that is
``--json``). Imported when output is drawn, so ``--help`` and ``--json`` runs skip rich;
rich's tables are imported by what draws one (a sync with nothing new draws none)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from context_cleaner.cli.common import escape

if TYPE_CHECKING:  # rich's tables and pydantic (the report models) only where drawn
    from rich.console import Console
    from rich.table import Table

    from context_cleaner.analysis.report import AnalysisReport, TokenTotals
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge

TOKEN_COLUMNS = (
    ("Input", "input_tokens"),
    ("Output", "output_tokens"),
    ("Cache write", "cache_creation_tokens"),
    ("Cache read", "cache_read_tokens"),
    ("Total", "total_tokens"),
)


def token_table(title: str, first: str, rows: Sequence[tuple[str, TokenTotals]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_footer=False)
    table.add_column(first, overflow="fold")
    for label, _ in TOKEN_COLUMNS:
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("Cost (USD)", justify="right", no_wrap=True)
    for name, totals in rows:
        table.add_row(
            name,
            *(f"{getattr(totals, attr):,}" for _, attr in TOKEN_COLUMNS),
            f"{totals.cost_usd:,.2f}",
        )
    return table


def render_totals(console: Console, totals: TokenTotals, title: str = "Totals") -> None:
    console.print(token_table(title, "", [("all", totals)]))


def render_analysis(console: Console, report: AnalysisReport, top_sessions: int = 10) -> None:
    """The report as a person reads it: totals, days, models, top sessions, what was skipped."""
    console.print(f"[bold]Transcripts:[/] {', '.join(report.roots)}  (days in {report.timezone})")
    console.print(
        f"{len(report.files)} files, {report.bytes_read / 1e6:,.1f} MB read in "
        f"{report.elapsed_seconds:.2f} s; {report.totals.records:,} responses counted."
    )
    render_totals(console, report.totals)
    console.print(token_table("By day", "Date", [(d.date, d) for d in report.days]))
    console.print(
        token_table("By model", "Model", [(m.model or "(none)", m) for m in report.models])
    )
    top = sorted(report.sessions, key=lambda s: s.total_tokens, reverse=True)[:top_sessions]
    console.print(
        token_table(
            f"Top {len(top)} of {len(report.sessions)} sessions",
            "Session",
            [(f"{s.session_id}\n[dim]{s.project}[/]", s) for s in top],
        )
    )
    raw = report.raw_line_sum
    console.print(
        f"[bold]Summing every line[/] (the old count) gives {raw.total_tokens:,} tokens, "
        f"{raw.overcount_ratio:.2f}x the de-duplicated {report.totals.total_tokens:,}: "
        f"{report.duplicate_lines_removed:,} repeated lines of the same responses were "
        f"counted once"
        + (
            f", and {report.sidechain_replays_dropped:,} sidechain replays dropped."
            if report.sidechain_replays_dropped
            else "."
        )
    )
    if report.skipped_lines_total:
        reasons = ", ".join(f"{k}: {v}" for k, v in report.skipped_by_reason.items())
        console.print(
            f"[yellow]{report.skipped_lines_total} line(s) could not be counted[/] ({reasons})."
        )
        for s in report.skipped_lines[:10]:
            console.print(f"  {s.file}:{s.line} (byte {s.byte_offset}): {s.reason} {s.detail}")
        if report.skipped_lines_total > 10:
            console.print("  ... the full list is in `analyze --json` (skipped_lines).")
    for warning in report.warnings:
        if "could not be counted" not in warning:
            console.print(f"[yellow]warning:[/] {warning}")


# -- runs: migrate, sync, validate, rollback, status ------------------------------------


def render_migration(out: Console, result: Any) -> None:
    verb = "Would migrate" if result.dry_run else "Migrated"
    out.print(
        f"{verb} {result.files_processed} of {result.total_files_found} file(s) "
        f"({result.bytes_processed / 1e6:,.1f} MB, {result.total_records_inserted:,} records) in "
        f"{result.processing_duration:.2f} s; run {result.migration_id}."
    )
    if result.dry_run:
        out.print(f"Projected time for the real migration: {result.projected_seconds or 0:.1f} s.")
    else:
        if "source_totals" in result.consistency_check_results:  # validated against a new analysis
            verdict = "passed" if result.validation_passed else "FAILED"
            validation = f"Validation: {verdict} (integrity {result.data_integrity_score:.4f})."
        else:
            validation = "Validation: not run (`context-cleaner validate`)."
        out.print(
            f"Tokens added: {result.total_tokens_migrated:,}; database now holds "
            f"{result.database_totals.get('total_tokens', 0):,} tokens "
            f"(${result.database_totals.get('cost_usd', 0):,.2f}). {validation} Peak memory "
            f"{result.peak_memory_usage_mb:,.0f} MB private ("
            f"{result.peak_resident_memory_mb:,.0f} MB resident), working memory "
            f"{result.working_memory_mb:,.0f} MB."
        )
        if result.checkpoints:
            out.print(
                f"Checkpoints (rollback points): {', '.join(result.checkpoints)}; "
                f"`context-cleaner rollback --migration-id {result.migration_id} "
                "--to-checkpoint CP` returns to one."
            )
    for error in result.errors[:20]:
        out.print(f"[red]error:[/] {escape(error)}")
    for warning in result.warnings[:20]:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    render_run_notes(out, result)


def render_run_notes(out: Console, result: Any) -> None:
    """Examples of the skipped lines (their counts by reason are the first warning) and the
    alerts that fired: in every summary of a run."""
    for example in result.skipped_line_examples[:5]:
        out.print(f"  skipped: {escape(example)}")
    if result.alerts_fired:
        from context_cleaner.migration.alerts import FAILING_ALERTS

        failing = set(result.alerts_fired) & set(FAILING_ALERTS)
        out.print(
            f"[red]alerts fired:[/] {', '.join(result.alerts_fired)} ("
            + ("exit code 3: not a clean run; " if failing else "")
            + "see `context-cleaner status`)."
        )


def render_sync(out: Console, result: Any, *, notes: bool = True) -> None:
    """A sync's summary line and errors; with ``notes``, its warnings and the run's notes
    (a sync that found nothing new has none to show)."""
    from context_cleaner.migration.incremental import summary_line

    out.print(escape(summary_line(result)))
    for error in result.errors:
        out.print(f"[red]error:[/] {escape(error)}")
    if not notes:
        return
    for warning in result.warnings[:20]:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    render_run_notes(out, result)


def validation_lines(report: Any) -> list[str]:
    """The ``validate`` report for a terminal (rich markup; values escaped)."""
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    compared = report.compared.get("totals", {}).get("total_tokens", 0)
    retained = (report.retained or {}).get("totals", {}).get("total_tokens", 0)
    differing = sum(report.difference_counts.values())
    lines = [
        f"Validation {verdict}: database {report.database_totals['total_tokens']:,} tokens = "
        f"{compared:,} compared with the transcripts on disk + {retained:,} retained history"
        + (
            f" {'+' if report.token_variance >= 0 else '-'} {abs(report.token_variance):,} "
            "differing"
            if differing
            else ""
        )
        + f"; transcripts {report.source_totals['total_tokens']:,} tokens "
        f"({report.compared.get('bytes', 0):,} bytes of {report.source_files:,} file(s) "
        f"compared); {differing:,} record(s) differ; integrity {report.integrity_score:.4f}."
    ]
    r = report.retained
    if r and r.get("records"):
        origins = ", ".join(
            f"{name.replace('_', ' ')} {v['totals']['total_tokens']:,}"
            for name, v in r.get("by_origin", {}).items()
        )
        lines.append(
            f"  Retained history: {r['totals']['total_tokens']:,} tokens, {r['records']:,} "
            f"record(s), {r['files']:,} file(s), {r['sessions']:,} session(s), "
            f"{r['oldest_day']} to {r['newest_day']} ({escape(origins)}): kept on purpose, "
            "not a variance."
        )
    for d in report.differences[:10]:
        lines.append(
            f"  {d['kind']}: {escape(d['file_path'])} line {d['line_number']} "
            f"(message {escape(d['message_id'])}): transcripts {d['source_tokens']:,}, "
            f"database {d['database_tokens']:,} tokens; {escape(d['detail'])}"
        )
    for note in report.explanations:
        lines.append(f"  - {escape(note)}")
    return lines


_ROLLBACK_TABLES = {
    "enhanced_token_details": "usage rows",
    "enhanced_token_summaries": "summary rows",
    "enhanced_token_buckets": "15-minute rollup rows",
    "migration_file_tracking": "file tracking rows",
}


def rollback_summary(result: Any) -> str:
    """One human line about a finished rollback (a :class:`RollbackResult`)."""
    text = f"Rolled back ({result.mode}) {result.migration_id}"
    text += f" to snapshot {result.snapshot}" if result.snapshot else ""
    text += f" in {result.duration_seconds:.2f} s"
    if result.mode == "schema":
        return text + f": {len(result.tables_dropped)} table(s) and view(s) dropped."
    before, after = result.rows_before, result.rows_after
    changes = [
        f"{label} {before.get(table, 0):,} -> {after.get(table, 0):,}"
        for table, label in _ROLLBACK_TABLES.items()
    ]
    return text + ": " + ", ".join(changes) + "; the run(s) undone are shown rolled_back."


def totals(row: Mapping[str, Any]) -> TokenTotals:
    """A row of token columns (a database total) as :class:`TokenTotals`."""
    from context_cleaner.analysis.report import TokenTotals

    return TokenTotals(**{k: row[k] for k in TokenTotals.model_fields if k in row})


def render_database_summary(out: Console, bridge: EnhancedTokenDatabaseBridge) -> None:
    """Totals, the last days and the models, as the database now holds them."""

    render_totals(out, totals(bridge.get_migration_totals()), title="In the database")
    days = sorted(bridge.totals_by("day"), key=lambda d: d["day"])[-7:]
    out.print(token_table("Last days (UTC)", "Date", [(d["day"], totals(d)) for d in days]))
    models = [(m["model"] or "(none)", totals(m)) for m in bridge.totals_by("model")]
    out.print(token_table("By model", "Model", models))


def render_status(out: Console, payload: dict[str, Any]) -> None:
    """``context-cleaner status`` for a terminal (the payload of ``migration.status_report``)."""
    if not payload["initialised"]:
        out.print(f"No migration yet in {payload['database']}; run `context-cleaner migrate`.")
        return
    render_totals(out, totals(payload["totals"]), title=f"Database {payload['database']}")
    from rich.table import Table

    table = Table(title="Recent runs", title_justify="left")
    for col in ("Run", "Kind", "Status", "Started", "Files", "Records", "Skipped lines"):
        table.add_column(col)
    for r in payload["runs"]:
        table.add_row(
            r["migration_id"],
            r["run_kind"],
            r["status"],
            str(r["started_at"])[:19],
            str(r["files_processed"]),
            f"{r['records_inserted']:,}",
            str(r["lines_skipped"]),
        )
    out.print(table)
    counts = payload["file_counts"]
    lag = payload["data_lag_seconds"]
    out.print(
        f"{len(payload['files'])} file(s) tracked: "
        + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        + (f". Data lag: {lag:,.1f} s." if lag is not None else ".")
    )
    behind = [f for f in payload["files"] if f["state"] != "synced"]
    for f in behind[:20]:
        if f["state"] in ("replaced", "truncated"):  # what was committed is of another content
            where = (
                f"{f['committed_offset']:,} bytes committed of its earlier content, "
                f"{f['size']:,} on disk now"
            )
        else:
            size = "" if f["size"] is None else f" of {f['size']:,}"
            where = f"{f['committed_offset']:,}{size} bytes committed"
        out.print(f"  {escape(f['path'])}: {where}; {escape(f['message'])}")
    if doubled := payload.get("rows_of_another_folder"):
        out.print(
            f"  {doubled} file(s) also tracked under another folder (one inside the other, or "
            "a link to it): counted once, as the folder that read them furthest."
        )
    if counts["untracked"]:
        out.print(
            f"  {counts['untracked']} new file(s) not synced yet: run `context-cleaner sync`."
        )
    from context_cleaner.migration.status import status_lines

    for line in status_lines(payload["migration"]):
        out.print(escape(line))

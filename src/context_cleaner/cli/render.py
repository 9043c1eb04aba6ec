"""Terminal rendering with rich: tables for people, never for machines (that is ``--json``)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from context_cleaner.analysis.report import AnalysisReport, TokenTotals

TOKEN_COLUMNS = (
    ("Input", "input_tokens"),
    ("Output", "output_tokens"),
    ("Cache write", "cache_creation_tokens"),
    ("Cache read", "cache_read_tokens"),
    ("Total", "total_tokens"),
)


def token_table(title: str, first: str, rows: Sequence[tuple[str, TokenTotals]]) -> Table:
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

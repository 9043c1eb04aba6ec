"""``context-cleaner report daily|weekly|monthly|session|blocks``: usage by period.

Reads the database by default (every response ever synced, including those of
transcripts Claude Code has deleted); ``--source transcripts`` computes the same
report straight from the transcripts. Both go through the analysis layer's period
rules, so they give the same JSON for the same data.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import TYPE_CHECKING

from context_cleaner.cli.types import day, integer, timezone, token_limit, weekday

if TYPE_CHECKING:
    from rich.console import Console

KINDS = {
    "daily": "usage per day",
    "weekly": "usage per week (sums of days)",
    "monthly": "usage per month (sums of days)",
    "session": "usage per session (subagents count in their parent session)",
    "blocks": "usage per 5-hour billing block (ccusage's rules)",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` to the top-level command parsers."""
    report = sub.add_parser(
        "report",
        help="usage by day, week, month, session or 5-hour block (from the database)",
        description="Token usage and cost by period, from the database by default (all "
        "history, including deleted transcripts) or straight from the transcripts. Days "
        "equal ccusage's `daily` to the token; weeks and months are sums of days; every "
        "report over one filter adds up to the same totals.",
        epilog="Exit status: 0 on success, 1 on an error (no database yet, locked, "
        "unreachable), 2 on a bad flag.",
    )
    kinds = report.add_subparsers(
        dest="report",
        metavar="REPORT",
        required=True,
        help="daily, weekly, monthly, session or blocks (each has its own --help)",
    )
    for name, text in KINDS.items():
        p = kinds.add_parser(name, help=text, description=f"Claude Code {text}.")
        _add_options(p, name)
        p.set_defaults(handler=cmd_report)


def _add_options(p: argparse.ArgumentParser, name: str) -> None:
    from context_cleaner.cli.common import add_database_args, add_pricing_args, add_source_args

    p.add_argument(
        "--since", type=day, metavar="DATE", help="first day (YYYY-MM-DD or YYYYMMDD, inclusive)"
    )
    p.add_argument(
        "--until", type=day, metavar="DATE", help="last day (YYYY-MM-DD or YYYYMMDD, inclusive)"
    )
    p.add_argument(
        "--timezone",
        type=timezone,
        default="UTC",
        metavar="TZ",
        help="IANA timezone of days and of --since/--until (default UTC)",
    )
    p.add_argument(
        "--start-of-week",
        type=weekday,
        default=6,
        metavar="DAY",
        help="first day of a week: sunday (default, as ccusage), monday, ...",
    )
    p.add_argument("--project", metavar="P", help="only this project (its folder name)")
    p.add_argument("--model", metavar="M", help="only this model, e.g. claude-opus-4-6")
    p.add_argument("--host", metavar="H", help="only the usage synced from machine H")
    p.add_argument("--breakdown", action="store_true", help="per-model rows under each period")
    p.add_argument(
        "--order", choices=("asc", "desc"), default="asc", help="oldest first (asc, default)"
    )
    p.add_argument("--last", type=integer(1), metavar="N", help="only the N most recent rows")
    if name == "blocks":
        p.add_argument(
            "--token-limit",
            type=token_limit,
            metavar="N|max",
            help="flag blocks over N tokens (max: the largest finished block)",
        )
    p.add_argument(
        "--source",
        choices=("database", "transcripts"),
        default="database",
        help="database (default: all history) or transcripts (what is on disk now)",
    )
    add_source_args(p)
    add_pricing_args(p)
    add_database_args(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_report(args: argparse.Namespace) -> int:
    from context_cleaner.analysis.periods import ReportQuery
    from context_cleaner.bridge.host import default_host
    from context_cleaner.cli.common import EXIT_OK, command_settings, print_json, stdout_console

    asked = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(ReportQuery)}
    query = ReportQuery(**{**asked, "kind": args.report})
    settings = command_settings(args)
    if args.source == "transcripts":
        from context_cleaner.analysis.pricing import PriceTable
        from context_cleaner.analysis.transcript_report import report_from_transcripts

        payload = report_from_transcripts(
            query, settings.sources, host=default_host(), prices=PriceTable.load(settings.prices)
        )
    else:
        if getattr(args, "prices", None):
            from context_cleaner.errors import ConfigurationError

            raise ConfigurationError(
                "--prices applies to --source transcripts: the database holds each record's "
                "cost as it was priced when migrated (context-cleaner analyze --prices prices "
                "the transcripts on disk)."
            )
        from context_cleaner.bridge.from_settings import open_database
        from context_cleaner.bridge.reports import database_report

        payload = database_report(open_database(settings), query)
    if args.json:
        print_json(payload)
    else:
        render_report(stdout_console(), payload)
    return EXIT_OK


def _short(n: int) -> str:
    if n < 100_000:
        return f"{n:,}"
    if n < 100_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e9:.2f}B"


def _model(name: str) -> str:
    """``claude-sonnet-4-5-20250929`` -> ``sonnet-4-5`` (the exact name is in ``--json``)."""
    return re.sub(r"-\d{8}$", "", name.removeprefix("claude-"))


def _period(report: str, row: dict[str, object]) -> str:
    if report == "session":
        return f"{row['session_id']!s:.8}\n{str(row['last_timestamp'])[:10]}"
    if report == "blocks":
        start = str(row["start"])
        mark = " *" if row.get("is_active") else ""
        return f"{start[:10]}\n{start[11:16]}Z{mark}"
    return str(row.get("date") or row.get("week") or row.get("month"))


def render_report(console: Console, payload: dict[str, object]) -> None:
    """A table that fits 80 columns: exact numbers are in ``--json``."""
    from rich.table import Table

    from context_cleaner.analysis.fields import TOTAL_FIELDS
    from context_cleaner.cli.common import escape

    report = str(payload["report"])
    rows = payload["rows"]
    assert isinstance(rows, list)
    title = f"{report.capitalize()} usage ({payload['source']}, {payload['timezone']})"
    table = Table(title=title, title_justify="left", pad_edge=False, show_footer=True)
    totals = payload["totals"]
    assert isinstance(totals, dict)
    heads = {"daily": "Date", "weekly": "Week", "monthly": "Month", "session": "Session"}
    table.add_column(heads.get(report, "Block"), footer="Total")
    table.add_column("Models", overflow="fold", max_width=12)
    for label, key in (
        ("Input", "input_tokens"),
        ("Output", "output_tokens"),
        ("Cache W", "cache_creation_tokens"),
        ("Cache R", "cache_read_tokens"),
        ("Total", "total_tokens"),
    ):
        table.add_column(label, justify="right", footer=_short(int(totals[key])))
    table.add_column("Cost", justify="right", footer=f"${float(totals['cost_usd']):,.2f}")

    def line(first: str, models: list[str], item: dict[str, object], style: str = "") -> None:
        table.add_row(
            first,
            escape("\n".join(_model(m) for m in models)),
            *(
                _short(int(item[k]))  # type: ignore[call-overload]
                for k in TOTAL_FIELDS
            ),
            f"${float(item['cost_usd']):,.2f}",  # type: ignore[arg-type]
            style=style,
        )

    for row in rows:
        line(_period(report, row), list(row["models"]), row)
        for part in row.get("breakdown", []):
            line("", [str(part["model"])], part, style="dim")
    console.print(table)
    if not rows:
        console.print("No usage in this range.")
    if report == "blocks":
        for row in rows:
            if row.get("is_active") and isinstance(row.get("projection"), dict):
                p = row["projection"]
                console.print(
                    f"Active block: {_short(int(row['total_tokens']))} tokens so far; projected "
                    f"{_short(int(p['total_tokens']))} tokens, ${float(p['cost_usd']):,.2f} by "
                    f"{str(row['end'])[11:16]}Z ({p['remaining_minutes']} min left)."
                )

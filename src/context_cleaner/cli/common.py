"""What every command of ``context-cleaner`` shares: exit codes, output helpers and the
options several commands declare (declared once here)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from context_cleaner.cli.types import database_url

if TYPE_CHECKING:  # rich is imported when output is drawn (--json runs never draw)
    from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
"""The command failed (a run's errors, a failed validation, a database error)."""
EXIT_ALERTED = 3
"""migrate/sync: every batch committed, but the error-rate alert fired (many lines skipped)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C; run again to resume."""
DEBUG_ENV = "CONTEXT_CLEANER_DEBUG"

Handler = Callable[[argparse.Namespace], int]


def escape(text: str) -> str:
    """rich's markup escape for ``text`` (imports rich only when output is drawn)."""
    from rich.markup import escape as markup_escape

    return markup_escape(text)


def stdout_console() -> Console:
    """A console on stdout (wide when it is not a terminal: pipes and files get whole tables)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(payload: object) -> None:
    """Machine output: one JSON document on stdout (strict JSON: ``NaN`` or ``Infinity``
    anywhere is an error, never printed)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str, allow_nan=False) + "\n")


def add_source_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source-dir",
        action="append",
        metavar="DIR",
        help="folder of transcripts (a Claude config folder or its projects/); repeatable. "
        "Default: $CLAUDE_CONFIG_DIR, else ~/.config/claude/projects and ~/.claude/projects",
    )


def add_pricing_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help='JSON price overrides, {"models": {"<model>": {"input": 3, "output": 15}}} in USD '
        "per million tokens (default: $CONTEXT_CLEANER_PRICES, else the bundled table)",
    )


URL_ENV = "CONTEXT_CLEANER_CLICKHOUSE_URL"


def add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clickhouse-url",
        type=database_url,
        metavar="URL",
        help=f"chdb:///path (embedded, default ~/.context_cleaner/clickhouse) or "
        f"http(s)://user:pass@host:8123/db; default ${URL_ENV}",
    )

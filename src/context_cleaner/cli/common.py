"""What every command of ``context-cleaner`` shares: exit codes, output helpers, the
options several commands declare (declared once here), and the one way a command's flags
become its :class:`~context_cleaner.settings.Settings`.

The options that are settings default to None here: a flag not given leaves the value to
the environment and then to the defaults in :mod:`context_cleaner.settings`."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from context_cleaner.cli.types import database_url, integer, number
from context_cleaner.settings import (
    API_ENV,
    CONFIG_DIR_ENV,
    CREDENTIALS_ENV,
    DEFAULT_EMBEDDED_PATH,
    DEFAULTS,
    ENGINES,
    MAX_CHECKPOINTS,
    PRICES_ENV,
    URL_ENV,
    Settings,
)

if TYPE_CHECKING:  # rich is imported when output is drawn (--json runs never draw)
    from rich.console import Console

    from context_cleaner.migration.models import MigrationProgress

EXIT_OK = 0
EXIT_FAILED = 1
"""The command failed (a run's errors, a failed validation, a database error)."""
EXIT_ALERTED = 3
"""migrate/sync: every batch committed, but the error-rate alert fired (many lines skipped)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C; run again to resume."""

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


@contextmanager
def progress_display(enabled: bool) -> Iterator[Callable[[MigrationProgress], None] | None]:
    """A rich progress bar on a terminal (files, MB, tokens, rate, ETA); nothing otherwise.

    The bar is redrawn on each progress report (a committed unit, about every second)
    rather than by a refresh thread: a process with one thread can fork its reader
    processes, which saves their start-up (``pipeline.worker_start_method``).
    """
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]}"),
        TextColumn("{task.fields[mb]}"),
        TextColumn("{task.fields[tokens]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=False,
        auto_refresh=False,
    ) as bar:
        task = bar.add_task("migrating", total=None, files="", mb="", tokens="", rate="")

        def update(p: MigrationProgress) -> None:
            total_files = p.files_completed + p.files_remaining
            bar.update(
                task,
                total=p.bytes_total or None,
                completed=p.bytes_completed,
                files=f"{p.files_completed}/{total_files} files",
                mb=f"{p.bytes_completed / 1e6:,.0f}/{p.bytes_total / 1e6:,.0f} MB",
                tokens=f"{p.tokens_processed:,} tokens",
                rate=f"{p.current_processing_rate:,.0f} tok/s",
                refresh=True,
            )

        yield update


def add_command(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    handler: Handler,
    **fields: object,
) -> argparse.ArgumentParser:
    """The subcommand ``handler`` runs (``cmd_name`` -> ``name``). Its docstring is its
    text: the first paragraph the one-line help, the rest the description (``{field}``s
    filled from ``fields``)."""
    name = handler.__name__.removeprefix("cmd_").replace("_", "-")
    help, _, description = (inspect.getdoc(handler) or "").partition("\n\n")
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=" ".join(description.format(**fields).split())
    )
    parser.set_defaults(handler=handler)
    return parser


def add_value(
    parser: argparse.ArgumentParser, flag: str, kind: Callable[[str], Any], metavar: str, help: str
) -> None:
    """A flag taking one value, checked by ``kind``; not given, it is None (the setting's
    value then comes from the environment or the defaults)."""
    parser.add_argument(flag, type=kind, metavar=metavar, help=help)


def add_source_args(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--source-dir",
        dest="source_dirs",
        action="append",
        metavar="DIR",
        help=help
        or "folder of transcripts (a Claude config folder or its projects/); repeatable. "
        f"Default: ${CONFIG_DIR_ENV}, else ~/.config/claude/projects and ~/.claude/projects",
    )


def add_pricing_args(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help=help
        or 'JSON price overrides, {"models": {"<model>": {"input": 3, "output": 15}}} in USD '
        f"per million tokens (default: ${PRICES_ENV}, else the bundled table)",
    )


def add_database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clickhouse-url",
        type=database_url,
        metavar="URL",
        help=f"chdb:///path (embedded, default {DEFAULT_EMBEDDED_PATH}) or "
        f"http(s)://user:pass@host:8123/db; default ${URL_ENV}",
    )
    parser.add_argument(
        "--credentials-block",
        metavar="NAME",
        help="instead of --clickhouse-url: a ClickHouseCredentials Prefect block (URL, user, "
        f"secret password, TLS options); default ${CREDENTIALS_ENV}",
    )


def add_json_arg(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help=f"auto = Prefect when {API_ENV} is set, else local (default {DEFAULTS.engine})",
    )


def add_location_args(parser: argparse.ArgumentParser) -> None:
    """Where the transcripts, the database and the prices are."""
    add_source_args(parser)
    add_database_args(parser)
    add_pricing_args(parser)


def add_reading_args(parser: argparse.ArgumentParser) -> None:
    """:func:`add_location_args`, and how transcripts are read in batches."""
    add_location_args(parser)
    add_value(
        parser,
        "--batch-size",
        integer(1),
        "N",
        f"files per batch (default {DEFAULTS.batch_size}; batches are also capped at "
        f"{DEFAULTS.max_batch_bytes // 2**20} MB)",
    )
    add_value(
        parser,
        "--parallel-workers",
        integer(1, 64),
        "N",
        "processes reading transcripts (default: the number of cores)",
    )


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The options of migrate and sync."""
    add_reading_args(parser)
    add_value(
        parser,
        "--checkpoint-interval",
        integer(0),
        "N",
        "record a checkpoint (a rollback point: --to-checkpoint) every N files, at most "
        f"{MAX_CHECKPOINTS} a run (more would be made: a multiple of N, said in a warning) "
        f"(default {DEFAULTS.checkpoint_interval} = none; the snapshot before the run is "
        "always taken)",
    )
    add_value(
        parser,
        "--commit-every",
        number(0, 3600),
        "SECONDS",
        f"gather the batches read over this many seconds into one commit (default "
        f"{DEFAULTS.commit_every:g}; sooner when another process waits for the database; "
        "0 = commit every batch on its own)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="read and count everything, write nothing; project the time",
    )
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_const",
        const=False,
        help="migrate: skip the check, at the end, of the records this run read against the "
        "database rows (no transcript is read twice for it); `context-cleaner validate` "
        "checks everything later",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        default=None,
        help="migrate: read every file from its start again, whatever was committed (repairs "
        "rows changed outside context-cleaner; retained history is kept)",
    )
    add_engine_args(parser)
    add_json_arg(parser)


def command_settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Settings:
    """The command's settings: its flags (those it has and was given), then the
    environment, then the defaults.

    A credentials block is loaded here for a command that opens the database in this
    process; a run through Prefect (``--engine``) passes its name, and the flow run
    loads it."""
    settings = Settings.from_values(vars(args), environ)
    if not settings.credentials_block or "clickhouse_url" not in vars(args):
        return settings
    if "engine" in vars(args) and settings.use_prefect() and not getattr(args, "watch", False):
        return settings
    from context_cleaner.orchestration.blocks import with_credentials

    return with_credentials(settings)


def run_exit_code(ok: bool, result: Any) -> int:
    """0, 1, or 3 when the run succeeded but an alert that fails runs fired (high_error_rate)."""
    from context_cleaner.migration.alerts import FAILING_ALERTS

    if not ok:
        return EXIT_FAILED
    return EXIT_ALERTED if set(result.alerts_fired) & set(FAILING_ALERTS) else EXIT_OK

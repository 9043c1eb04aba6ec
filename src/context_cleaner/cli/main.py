"""``context-cleaner``: the command line (a thin surface over the core layers).

Each command parses its flags, calls one core function and turns the package's
errors into a one-line message on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence

from context_cleaner.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Handler,
    add_pricing_args,
    add_source_args,
    command_settings,
    escape,
    print_json,
    stderr_console,
    stdout_console,
)
from context_cleaner.cli.types import integer
from context_cleaner.errors import ContextCleanerError
from context_cleaner.settings import DEBUG_ENV
from context_cleaner.version import __version__


def cmd_analyze(args: argparse.Namespace) -> int:
    from context_cleaner.analysis.counter import EnhancedTokenCounter
    from context_cleaner.analysis.pricing import PriceTable
    from context_cleaner.cli.render import render_analysis

    settings = command_settings(args)
    counter = EnhancedTokenCounter(
        settings.sources,
        timezone=args.timezone,
        prices=PriceTable.load(settings.prices),
        workers=args.workers,
    )
    report = counter.analyze()
    if args.json:
        print_json(report.model_dump(mode="json"))
    else:
        render_analysis(stdout_console(), report, top_sessions=args.top)
    return EXIT_OK


#: The module under cli/ that registers each command. A run registers only its command's
#: group, so ``sync`` (run hourly, usually with nothing new) imports neither the
#: dashboard's settings nor the doctor's checks; ``--help`` and unknown words get all.
COMMAND_GROUPS = {
    "migrate": "migration",
    "sync": "migration",
    "run": "migration",
    "serve": "migration",
    "validate": "database",
    "rollback": "database",
    "status": "database",
    "dashboard": "dashboard",
    "report": "report",
    "doctor": "doctor",
}
GROUPS = ("migration", "database", "dashboard", "report", "doctor")


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``: its first word that is not a flag (the program's own
    flags take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given ``argv`` whose command is known, only that command's
    group is registered (the others are neither imported nor shown)."""
    parser = argparse.ArgumentParser(
        prog="context-cleaner",
        description="Exact Claude Code token and cost accounting from your transcripts, "
        "migrated into ClickHouse and kept in sync.",
        epilog="Exit status: 0 success; 1 failure; 2 bad flags; 3 migrate/sync committed "
        "everything but the error-rate alert fired (many lines skipped); 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error (also ${DEBUG_ENV}=1); give it before the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    analyze = sub.add_parser(
        "analyze",
        help="count tokens and cost straight from the transcripts (no database)",
        description="Read every transcript, de-duplicate usage the way Claude Code writes it "
        "(one line per content block, each repeating the response's usage), and report exact "
        "totals by session, day, model and project, beside the raw line sum.",
    )
    add_source_args(analyze)
    add_pricing_args(analyze)
    analyze.add_argument("--json", action="store_true", help="print the full report as JSON")
    analyze.add_argument(
        "--timezone", metavar="TZ", help="IANA timezone for days (default UTC), e.g. Europe/Berlin"
    )
    analyze.add_argument(
        "--workers",
        type=integer(1, 64),
        metavar="N",
        help="processes for large corpora (default: cores)",
    )
    analyze.add_argument(
        "--top",
        type=integer(0),
        default=10,
        metavar="N",
        help="sessions shown in the table (default 10)",
    )
    analyze.set_defaults(handler=cmd_analyze)

    command = command_of(argv) if argv is not None else None
    if command == "analyze":  # registered above
        groups: tuple[str, ...] = ()
    elif command in COMMAND_GROUPS:
        groups = (COMMAND_GROUPS[command],)
    else:
        groups = GROUPS
    for name in groups:
        importlib.import_module(f"context_cleaner.cli.{name}").register(sub)
    # ``python -m context_cleaner.migration.historical_migrator`` (and ``.validator``) run
    # one command under their own name, which they put in argv[0]: help and errors say it.
    program, _, module = sys.argv[0].partition("python -m ")
    entry = ENTRY_MODULES.get(module) if not program else None
    if entry in sub.choices:
        sub.choices[entry].prog = sys.argv[0]
    return parser


#: The spec's module entry points and the command each runs (see ``build_parser``).
ENTRY_MODULES = {
    "context_cleaner.migration.historical_migrator": "migrate",
    "context_cleaner.migration.validator": "validate",
}


def debugging(args: argparse.Namespace) -> bool:
    """True when tracebacks are wanted: ``--debug`` or ``$CONTEXT_CLEANER_DEBUG``."""
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def _debug_environment(on: bool) -> Iterator[None]:
    """``--debug`` as ``$CONTEXT_CLEANER_DEBUG=1`` while the command runs, for what reads
    it below the command line (the Prefect engine keeps tracebacks in its logs then)."""
    if not on or DEBUG_ENV in os.environ:
        yield
        return
    os.environ[DEBUG_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(DEBUG_ENV, None)


def quiet_driver_logs() -> None:
    """Keep the database driver's own log lines off the terminal: a refused connection made
    clickhouse-connect print a bare "Unexpected Http Driver Exception" before each retry,
    beside the command's own note and its one ``error:`` line, which say what happened.
    ``--debug`` keeps them."""
    driver = logging.getLogger("clickhouse_connect")
    driver.addHandler(logging.NullHandler())
    driver.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    if not debugging(args):
        quiet_driver_logs()
    try:
        with _debug_environment(getattr(args, "debug", False)):
            return handler(args)
    except ContextCleanerError as exc:
        if debugging(args):
            traceback.print_exc()
        stderr_console().print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        stderr_console().print("interrupted; run the command again to resume.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a defect: one line, the traceback on request
        if debugging(args):
            raise
        from context_cleaner.bridge.exceptions import redact_text

        message = redact_text(str(exc)).strip().splitlines()
        stderr_console().print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: "
            f"{escape(message[0] if message else '')} (run `context-cleaner --debug ...` or set "
            f"{DEBUG_ENV}=1 for the traceback, and report it)",
            soft_wrap=True,
        )
        return EXIT_FAILED


def run() -> None:
    """The ``context-cleaner`` program: :func:`main`, then an exit that skips the embedded
    engine's teardown.

    When a command ends, its work is committed and the engine closed; what is left of
    exiting normally is the interpreter's teardown and chDB's own (its global state
    and thread pools), ~0.05 s of every command. A process may die at any moment
    without harm (DESIGN §5), so once the output is flushed and every exit handler has
    run, the process ends there. A handler registered here, before the command runs,
    runs after the command's own (handlers run last-in first-out); non-daemon threads
    are joined before any of them.
    """
    outcome: list[int] = []

    def exit_now() -> None:
        if not outcome or "chdb" not in sys.modules:
            return  # an uncaught error, or no engine: the normal exit
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(outcome[0])

    atexit.register(exit_now)
    code = main()
    outcome.append(code)
    sys.exit(code)


if __name__ == "__main__":
    run()

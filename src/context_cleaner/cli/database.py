"""The database commands of ``context-cleaner``: validate, rollback, status.

Each opens the bridge straight from its settings (no migrator is built to reach it),
calls one core function and renders the answer.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from context_cleaner.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    add_database_args,
    add_engine_args,
    add_json_arg,
    add_location_args,
    add_value,
    command_settings,
    escape,
    print_json,
    stderr_console,
    stdout_console,
)
from context_cleaner.cli.types import integer, number
from context_cleaner.settings import API_ENV, DEFAULTS, Settings

if TYPE_CHECKING:
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge


def cmd_validate(args: argparse.Namespace) -> int:
    """compare the database with a fresh analysis of the transcripts

    Compare, record by record, the rows that came from the bytes still on disk (under
    --source-dir, else every root the database tracks) with a fresh analysis of the same
    bytes; report retained history (rows of deleted, replaced or truncated files, other roots
    and hosts) and explain any difference. Exits 1 when validation fails.
    """
    from context_cleaner.bridge.from_settings import open_bridge, open_database

    settings = command_settings(args)
    if settings.use_prefect():
        from context_cleaner.orchestration.engine import run_with_prefect

        report = run_with_prefect("validate", settings, open_database(settings))
    else:
        from context_cleaner.migration.run_record import validate_recorded

        report = validate_recorded(
            open_bridge(settings),
            settings.sources,
            sample_size=settings.sample_size,
            full_validation=settings.full_validation,
            tolerance=settings.tolerance,
        )
    if args.json:
        print_json(report.to_dict())
    else:
        from context_cleaner.cli.render import validation_lines

        out = stdout_console()
        for line in validation_lines(report):
            out.print(line)
    return EXIT_OK if report.passed else EXIT_FAILED


ROLLBACK_WHAT = {
    "complete": "undo migration {id} entirely",
    "partial": "return to checkpoint {checkpoint} of {id}",
    "data-only": "remove ALL migrated usage data (schema and history kept)",
    "schema": "DROP every context_cleaner table",
}


def _confirmed(args: argparse.Namespace, where: str) -> bool:
    """``--yes``, or a person typed yes on the terminal."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        stderr_console().print(
            "error: rollback changes the database; pass --yes to confirm when not on a terminal."
        )
        return False
    what = ROLLBACK_WHAT[args.mode].format(id=args.migration_id, checkpoint=args.to_checkpoint)
    answer = input(f"This will {what} in {where}. Type 'yes' to continue: ")
    if answer.strip().lower() != "yes":
        stderr_console().print("Rollback cancelled; nothing changed.")
        return False
    return True


def _warn_unrecoverable(args: argparse.Namespace, bridge: EnhancedTokenDatabaseBridge) -> None:
    """Say, before asking, what the rollback would remove that no migrate can bring back:
    records of transcripts deleted from disk since (Claude Code deletes old ones), or
    rewritten without them."""
    from context_cleaner.bridge import database_exists
    from context_cleaner.errors import ContextCleanerError
    from context_cleaner.migration.rollback_warning import unrecoverable

    try:
        if not database_exists(bridge):
            return
        lost = unrecoverable(bridge, args.migration_id, args.mode, args.to_checkpoint)
    except ContextCleanerError:  # the rollback itself says what is wrong
        return
    if lost is not None and lost.records:
        least = "" if lost.exact else "at least "
        stderr_console().print(
            f"Warning: this rollback removes {least}{lost.tokens:,} tokens ({lost.records:,} "
            f"records) of {lost.files:,} transcript(s) no longer on disk (deleted, or "
            "rewritten without them); the database is their only copy, and no later migrate "
            "can bring them back."
        )


def cmd_rollback(args: argparse.Namespace) -> int:
    """undo a migration from its snapshot

    Modes: complete (undo the migration: data as before it), partial (to one of its
    checkpoints, --to-checkpoint), data-only (remove all usage data, keep schema and history),
    schema (drop every table). Asks for confirmation unless --yes.
    """
    from context_cleaner.bridge.from_settings import open_bridge, open_database

    settings = command_settings(args)
    database = open_database(settings)
    if not database.exists():  # nothing to roll back: never create the database to say so
        stderr_console().print(
            f"error: there is no database at {escape(database.url.redacted())}; nothing to "
            "roll back, nothing was changed."
        )
        return EXIT_FAILED
    bridge = open_bridge(settings, database)
    _warn_unrecoverable(args, bridge)
    if not _confirmed(args, database.url.redacted()):
        return EXIT_FAILED
    target = {"migration_id": args.migration_id, "mode": args.mode}
    if settings.use_prefect():
        from context_cleaner.orchestration.engine import run_with_prefect

        result = run_with_prefect(
            "rollback", settings, database, **target, to_checkpoint=args.to_checkpoint
        )
    else:
        from context_cleaner.migration.rollback import rollback_migration

        result = rollback_migration(bridge, args.migration_id, args.mode, args.to_checkpoint)
    if args.json:
        print_json(result.to_dict())
    else:
        from context_cleaner.cli.render import rollback_summary

        stdout_console().print(escape(rollback_summary(result)))
    return EXIT_OK


def _end_crashed_flow_runs(settings: Settings) -> None:
    """A crashed run is shown: its Prefect flow run (if any) ends ``Crashed`` too, when the
    commands run through a Prefect API (never starting a temporary server for it)."""
    if not (settings.use_prefect() and os.environ.get(API_ENV)):
        return
    from context_cleaner.orchestration.crashed import end_crashed_flow_runs_now

    try:
        end_crashed_flow_runs_now()
    except Exception as exc:  # status still answers without Prefect
        stderr_console().print(
            f"note: Prefect did not answer, its crashed runs stay: {escape(str(exc))}"
        )


def cmd_status(args: argparse.Namespace) -> int:
    """database totals, recent runs, per-file sync state and data lag

    What the database holds and how fresh it is.
    """
    from context_cleaner.bridge.from_settings import open_bridge
    from context_cleaner.migration.status_report import status_payload

    settings = command_settings(args)
    payload = status_payload(open_bridge(settings), args.migration_id)
    if any(run.get("status") == "crashed" for run in payload["runs"]):
        _end_crashed_flow_runs(settings)
    if args.json:
        print_json(payload)
    else:
        from context_cleaner.cli.render import render_status

        render_status(stdout_console(), payload)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    validate = add_command(sub, cmd_validate)
    add_location_args(validate)
    validate.add_argument(
        "--full-validation",
        action="store_true",
        default=None,
        help="the spec's flag: every record is compared with or without it",
    )
    add_value(
        validate,
        "--sample-size",
        integer(1),
        "N",
        f"accepted for scripts (default {DEFAULTS.sample_size}); every record is compared "
        "whatever it says",
    )
    add_value(
        validate,
        "--tolerance",
        number(0, 1),
        "R",
        f"accepted token variance as a ratio (default {DEFAULTS.tolerance:g} = "
        f"{DEFAULTS.tolerance * 100:g}%%); a record that is missing or altered fails whatever "
        "the ratio",
    )
    add_engine_args(validate)
    add_json_arg(validate, "the report")

    rollback = add_command(sub, cmd_rollback)
    add_database_args(rollback)
    rollback.add_argument(
        "--migration-id", required=True, metavar="ID", help="the run to roll back (see `status`)"
    )
    rollback.add_argument("--to-checkpoint", metavar="C", help="checkpoint name, e.g. cp3")
    rollback.add_argument(
        "--mode",
        choices=tuple(ROLLBACK_WHAT),
        default="complete",
        help="what to roll back (default complete)",
    )
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_engine_args(rollback)
    add_json_arg(rollback)

    status = add_command(sub, cmd_status)
    add_database_args(status)
    status.add_argument(
        "--migration-id",
        metavar="ID",
        help="the run shown in detail: phase, progress, rates, ETA, memory, alerts "
        "(default: the latest migrate or sync run)",
    )
    add_json_arg(status, "the status")

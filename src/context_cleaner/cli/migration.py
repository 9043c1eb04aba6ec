"""The run commands of ``context-cleaner``: migrate, sync (and ``--watch``), run, serve.

Thin: flags become one :class:`~context_cleaner.settings.Settings`, the database is
opened once from it, one core call runs, the result is rendered. Heavy imports happen
inside the handlers so ``context-cleaner analyze`` and ``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from context_cleaner.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    add_location_args,
    add_reading_args,
    add_run_args,
    add_value,
    command_settings,
    print_json,
    progress_display,
    run_exit_code,
    stdout_console,
)
from context_cleaner.cli.types import number
from context_cleaner.errors import MigrationValidationError
from context_cleaner.settings import DEFAULTS, POLL_ENV

if TYPE_CHECKING:
    from context_cleaner.analysis.discovery import Discovery
    from context_cleaner.bridge.database import Database
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
    from context_cleaner.settings import Settings


def open_migrator(settings: Settings, database: Database | None = None) -> HistoricalDataMigrator:
    """The migrator of a command: its settings, over ``database`` (opened once)."""
    from context_cleaner.bridge.from_settings import open_bridge
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

    return HistoricalDataMigrator(bridge_service=open_bridge(settings, database), settings=settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    """migrate every transcript into ClickHouse (resumable; a re-run adds only what is new)

    Read every transcript and insert its usage into ClickHouse exactly once. Killed or failed
    runs resume from their last committed batch when run again. A snapshot is taken first so
    `rollback` can undo the run.
    """
    settings = command_settings(args)
    if settings.use_prefect():
        from context_cleaner.bridge.from_settings import open_database
        from context_cleaner.orchestration.engine import run_with_prefect

        result = run_with_prefect("migrate", settings, open_database(settings))
    else:
        migrator = open_migrator(settings)
        with progress_display(not args.json and sys.stderr.isatty()) as progress:
            try:
                result = migrator.run(
                    settings.sources,
                    settings.dry_run,
                    progress,
                    force=settings.force,
                    raise_invalid=True,
                )
            except MigrationValidationError as failed:  # committed; the report says why: exit 1
                result = failed.result
    if args.json:
        print_json(result.to_dict())
    else:
        from context_cleaner.cli.render import render_migration

        render_migration(stdout_console(), result)
    validated = settings.dry_run or not settings.validate or result.validation_passed
    return run_exit_code(result.success and validated, result)


def cmd_sync(args: argparse.Namespace) -> int:
    """add what was appended to the transcripts since the last run

    Read only the bytes after each file's committed offset (a line still being written waits
    for its newline); re-read files that were truncated or replaced.
    """
    from context_cleaner.bridge.from_settings import open_database

    settings = command_settings(args)
    database = open_database(settings)
    if getattr(args, "watch", False):
        from context_cleaner.migration.watch import watch_and_sync

        return watch_and_sync(open_migrator(settings, database), settings, as_json=args.json)
    prefect = settings.use_prefect()
    if prefect:
        from context_cleaner.orchestration.engine import run_with_prefect

        result = run_with_prefect("sync", settings, database)
    elif settings.dry_run:
        with progress_display(not args.json and sys.stderr.isatty()) as progress:
            result = open_migrator(settings, database).run(
                settings.sources, True, progress, kind="sync"
            )
    else:
        done, discovery = _fast_sync(args, settings, database)
        if done is not None:
            return done
        with progress_display(not args.json and sys.stderr.isatty()) as progress:
            result = open_migrator(settings, database).sync(
                settings.sources, progress_callback=progress, discovery=discovery
            )
    if args.json:
        print_json(result.to_dict())
    elif settings.dry_run:
        from context_cleaner.cli.render import render_migration

        render_migration(stdout_console(), result)
    else:
        from context_cleaner.cli.render import render_sync

        render_sync(stdout_console(), result)
    if settings.dry_run:
        return EXIT_OK if result.success else EXIT_FAILED
    return run_exit_code(result.success, result)


def _fast_sync(
    args: argparse.Namespace, settings: Settings, database: Database
) -> tuple[int | None, Discovery | None]:
    """``sync`` when nothing changed (stat calls only, before the heavy imports): its exit
    code, else None; and what discovery found, so the full sync does not walk again."""
    from context_cleaner.bridge.host import default_host
    from context_cleaner.migration.incremental import SyncRequest, fast_sync

    result, found = fast_sync(database, default_host(), SyncRequest(settings.sources))
    if result is None:
        return None, found
    if args.json:
        print_json(result.to_dict())
    elif not result.errors:  # one plain line (render_sync's, unstyled): rich is not loaded
        from context_cleaner.migration.incremental import summary_line

        sys.stdout.write(summary_line(result) + "\n")
    else:
        from context_cleaner.cli.render import render_sync

        render_sync(stdout_console(), result, notes=False)
    return (EXIT_OK if result.success else EXIT_FAILED), found


def cmd_run(args: argparse.Namespace) -> int:
    """migrate (or the bundled sample when there are no transcripts), validate, summarise

    What `make run` does: migrate your transcripts into the embedded ClickHouse (the bundled
    sample into a separate database when you have none), run a full validation and print a
    summary.
    """
    from context_cleaner.cli.render import escape, render_database_summary, render_migration
    from context_cleaner.migration.run_record import validate_recorded
    from context_cleaner.migration.sample_source import SAMPLE_DIR, has_transcripts, sample_settings

    out = stdout_console()
    settings = command_settings(args)
    if not has_transcripts(settings):
        out.print(
            f"No Claude Code transcripts found on this machine; using the bundled sample "
            f"({SAMPLE_DIR / 'projects'})."
        )
        settings = sample_settings(settings)
    migrator = open_migrator(settings)
    out.print(f"Database: {migrator.bridge.database.url.redacted()}")
    with progress_display(sys.stderr.isatty()) as progress:
        result = migrator.run(settings.sources, False, progress)
    render_migration(out, result)
    report = validate_recorded(
        migrator.bridge, settings.sources, full_validation=True, tolerance=0.0
    )
    render_database_summary(out, migrator.bridge)
    out.print(
        f"Full validation: {'passed' if report.passed else 'FAILED'}; "
        f"{report.sessions_checked} sessions compared. See `context-cleaner status` and "
        f"`context-cleaner dashboard`."
    )
    for note in report.explanations:
        out.print(f"  - {escape(note)}")
    return EXIT_OK if result.success and report.passed else EXIT_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    """run the hourly sync and a daily validation on a schedule (Prefect)

    Serve two Prefect deployments of this host from this process until interrupted:
    incremental-sync/hourly-sync@HOST and validation/daily-validation@HOST (HOST:
    CONTEXT_CLEANER_HOST or the hostname). Needs a running `prefect server start`
    (PREFECT_API_URL); runs show in its UI. deployments/prefect.yaml defines the same for a
    work pool, under names serve never changes or pauses; stopping serve pauses its own two.
    """
    from context_cleaner.bridge.from_settings import open_database
    from context_cleaner.orchestration.engine import serve_flows

    settings = command_settings(args)
    serve_flows(settings, open_database(settings))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = add_command(sub, cmd_migrate)
    add_run_args(migrate)

    sync = add_command(sub, cmd_sync)
    add_run_args(sync)
    add_value(
        sync,
        "--debounce",
        number(0.05, 3600),
        "S",
        "watch mode: group changes over at most S seconds and sync at most once every S "
        f"seconds (a sync starts 50 ms after writes pause; default {DEFAULTS.debounce:g})",
    )
    sync.add_argument(
        "--watch",
        action="store_true",
        help="keep running, syncing within about a second of each change (file events; "
        f"polling when they are unavailable or {POLL_ENV}=1)",
    )

    run = add_command(sub, cmd_run)
    add_location_args(run)
    run.set_defaults(validate=False)  # the run's own check: `run` validates fully right after

    serve = add_command(sub, cmd_serve)
    add_reading_args(serve)
    add_value(
        serve, "--sync-cron", str, "CRON", f"sync schedule (default {DEFAULTS.sync_cron!r}: hourly)"
    )
    add_value(
        serve,
        "--validation-cron",
        str,
        "CRON",
        f"validation schedule (default {DEFAULTS.validation_cron!r}: 03:30 daily)",
    )

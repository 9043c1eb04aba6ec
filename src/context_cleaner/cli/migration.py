"""The database commands of ``context-cleaner``: migrate, sync, validate, rollback, status, run.

Thin: parse flags, call the migrator, render. Heavy imports happen inside the
handlers so ``context-cleaner analyze`` and ``--help`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.cli.common import (
    EXIT_ALERTED,
    EXIT_FAILED,
    EXIT_OK,
    URL_ENV,
    add_database_args,
    add_pricing_args,
    add_source_args,
    escape,
    print_json,
    stderr_console,
    stdout_console,
)
from context_cleaner.cli.types import integer, number
from context_cleaner.migration.defaults import COMMIT_EVERY, MAX_BATCH_BYTES

if TYPE_CHECKING:
    from rich.console import Console

    from context_cleaner.analysis.discovery import Discovery
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
    from context_cleaner.migration.models import MigrationProgress

SAMPLE_DIR = Path(__file__).parent.parent / "sample"


def add_run_args(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    add_database_args(parser)
    add_pricing_args(parser)
    parser.add_argument(
        "--batch-size",
        type=integer(1),
        default=100,
        metavar="N",
        help="files per batch (default 100; batches are also capped at "
        f"{MAX_BATCH_BYTES // 2**20} MB)",
    )
    parser.add_argument(
        "--parallel-workers",
        type=integer(1, 64),
        default=None,
        metavar="N",
        help="processes reading transcripts (default: the number of cores)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=integer(0),
        default=0,
        metavar="N",
        help="record a checkpoint (a rollback point: --to-checkpoint) every N files "
        "(default 0 = none; the snapshot before the run is always taken)",
    )
    parser.add_argument(
        "--commit-every",
        type=number(0, 3600),
        default=COMMIT_EVERY,
        metavar="SECONDS",
        help=f"gather the batches read over this many seconds into one commit (default "
        f"{COMMIT_EVERY:g}; sooner when another process waits for the database; 0 = commit "
        "every batch on its own)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read and count everything, write nothing; project the time",
    )
    parser.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="migrate: skip the check, at the end, of the records this run read against the "
        "database rows (no transcript is read twice for it); `context-cleaner validate` "
        "checks everything later",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="migrate: read every file from its start again, whatever was committed (repairs "
        "rows changed outside context-cleaner; retained history is kept)",
    )
    add_engine_args(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("auto", "prefect", "local"),
        default="auto",
        help="auto = Prefect when PREFECT_API_URL is set, else local",
    )


def _migrator(args: argparse.Namespace) -> HistoricalDataMigrator:
    from context_cleaner.analysis.pricing import PriceTable
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

    bridge = EnhancedTokenDatabaseBridge(
        getattr(args, "clickhouse_url", None), prices=PriceTable.load(getattr(args, "prices", None))
    )
    return HistoricalDataMigrator(
        bridge_service=bridge,
        batch_size=getattr(args, "batch_size", 100),
        parallel_workers=getattr(args, "parallel_workers", None),  # type: ignore[arg-type]
        checkpoint_interval=getattr(args, "checkpoint_interval", 0),
        validation_enabled=getattr(args, "validate", True),
        commit_every=getattr(args, "commit_every", COMMIT_EVERY),
    )


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


def _use_prefect(engine: str) -> bool:
    if engine == "prefect":
        return True
    return engine == "auto" and bool(os.environ.get("PREFECT_API_URL"))


def cmd_migrate(args: argparse.Namespace) -> int:
    if _use_prefect(args.engine):
        from context_cleaner.orchestration.engine import run_with_prefect

        result = run_with_prefect("migrate", args)
    else:
        migrator = _migrator(args)
        with progress_display(not args.json and sys.stderr.isatty()) as progress:
            result = migrator.run(
                args.source_dir, args.dry_run, progress, force=getattr(args, "force", False)
            )
    if args.json:
        print_json(result.to_dict())
    else:
        render_migration(stdout_console(), result)
    validated = args.dry_run or not args.validate or result.validation_passed
    return run_exit_code(result.success and validated, result)


def run_exit_code(ok: bool, result: Any) -> int:
    """0, 1, or 3 when the run succeeded but an alert that fails runs fired (high_error_rate)."""
    from context_cleaner.migration.alerts import FAILING_ALERTS

    if not ok:
        return EXIT_FAILED
    return EXIT_ALERTED if set(result.alerts_fired) & set(FAILING_ALERTS) else EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    if getattr(args, "watch", False):
        from context_cleaner.migration.watch import watch_and_sync

        return watch_and_sync(_migrator(args), args)
    prefect = _use_prefect(args.engine)
    discovery = None
    if prefect:
        from context_cleaner.orchestration.engine import run_with_prefect
    elif not args.dry_run:
        done, discovery = _fast_sync(args)
        if done is not None:
            return done
    if args.dry_run:
        if prefect:
            planned = run_with_prefect("sync", args)
        else:
            with progress_display(not args.json and sys.stderr.isatty()) as progress:
                planned = _migrator(args).run(args.source_dir, True, progress, kind="sync")
        if args.json:
            print_json(planned.to_dict())
        else:
            render_migration(stdout_console(), planned)
        return EXIT_OK if planned.success else EXIT_FAILED
    from context_cleaner.migration.incremental import summary_line

    if prefect:
        result = run_with_prefect("sync", args)
    else:
        with progress_display(not args.json and sys.stderr.isatty()) as progress:
            result = _migrator(args).sync(
                args.source_dir, progress_callback=progress, discovery=discovery
            )
    if args.json:
        print_json(result.to_dict())
    else:
        out = stdout_console()
        out.print(escape(summary_line(result)))
        for error in result.errors:
            out.print(f"[red]error:[/] {escape(error)}")
        for warning in result.warnings[:20]:
            out.print(f"[yellow]warning:[/] {escape(warning)}")
        render_run_notes(out, result)
    return run_exit_code(result.success, result)


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


def _fast_sync(args: argparse.Namespace) -> tuple[int | None, Discovery]:
    """``sync`` when nothing changed (stat calls only, before the heavy imports): its exit
    code, else None; and what discovery found, so the full sync does not walk again."""
    from context_cleaner.bridge.database import Database
    from context_cleaner.bridge.details import default_host
    from context_cleaner.migration.incremental import SyncRequest, fast_sync, summary_line

    result, found = fast_sync(
        Database(args.clickhouse_url), default_host(), SyncRequest(args.source_dir)
    )
    if result is None:
        return None, found
    if args.json:
        print_json(result.to_dict())
    else:
        out = stdout_console()
        out.print(escape(summary_line(result)))
        for error in result.errors:
            out.print(f"[red]error:[/] {escape(error)}")
    return (EXIT_OK if result.success else EXIT_FAILED), found


def cmd_validate(args: argparse.Namespace) -> int:
    from context_cleaner.migration.run_record import validate_recorded

    if _use_prefect(args.engine):
        from context_cleaner.orchestration.engine import run_with_prefect

        report = run_with_prefect("validate", args)
    else:
        report = validate_recorded(
            _migrator(args).bridge,
            args.source_dir,
            sample_size=args.sample_size,
            full_validation=args.full_validation,
            tolerance=args.tolerance,
        )
    if args.json:
        print_json(report.to_dict())
    else:
        out = stdout_console()
        for line in validation_lines(report):
            out.print(line)
    return EXIT_OK if report.passed else EXIT_FAILED


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


def cmd_rollback(args: argparse.Namespace) -> int:
    from context_cleaner.migration.rollback import rollback_migration

    migrator = _migrator(args)
    if not args.yes:
        if not sys.stdin.isatty():
            stderr_console().print(
                "error: rollback changes the database; pass --yes to confirm "
                "when not on a terminal."
            )
            return EXIT_FAILED
        what = {
            "complete": f"undo migration {args.migration_id} entirely",
            "partial": f"return to checkpoint {args.to_checkpoint} of {args.migration_id}",
            "data-only": "remove ALL migrated usage data (schema and history kept)",
            "schema": "DROP every context_cleaner table",
        }[args.mode]
        answer = input(
            f"This will {what} in {migrator.bridge.database.url.redacted()}. "
            "Type 'yes' to continue: "
        )
        if answer.strip().lower() != "yes":
            stderr_console().print("Rollback cancelled; nothing changed.")
            return EXIT_FAILED
    if _use_prefect(args.engine):
        from context_cleaner.orchestration.engine import run_with_prefect

        result = run_with_prefect("rollback", args)
    else:
        result = rollback_migration(
            migrator.bridge, args.migration_id, args.mode, args.to_checkpoint
        )
    if args.json:
        print_json(result.to_dict())
    else:
        stdout_console().print(escape(rollback_summary(result)))
    return EXIT_OK


_ROLLBACK_TABLES = {
    "enhanced_token_details": "usage rows",
    "enhanced_token_summaries": "summary rows",
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


def status_payload(
    migrator: HistoricalDataMigrator, migration_id: str | None = None
) -> dict[str, Any]:
    """What ``status --json`` prints: totals, runs, per-file tracking against the disk, lag,
    and ``migration``: the :class:`MigrationStatus` of one run (default the latest) with its
    ``alerts``."""
    from context_cleaner.migration import file_state, freshness
    from context_cleaner.migration.status import get_migration_status

    bridge = migrator.bridge
    with bridge.reading():  # one hold of the database for every read
        if not bridge.is_initialised():
            return {
                "initialised": False,
                "database": bridge.database.url.redacted(),
                "totals": None,
                "runs": [],
                "files": [],
                "data_lag_seconds": None,
            }
        tracked = bridge.tracked_files()
        newest = bridge.newest_record_time()
        totals = bridge.get_migration_totals()
        sessions = bridge.count_sessions()
        runs = bridge.migration_runs(limit=10)
    run_status = get_migration_status(bridge, migration_id)
    files, on_disk = freshness.file_states(tracked)
    fresh = freshness.measure_freshness(on_disk, freshness.committed_offsets(tracked), newest)
    tracked_keys = {freshness.file_key(t.source_root, t.file_path) for t in tracked}
    states = [f["state"] for f in files]
    return {
        "initialised": True,
        "database": bridge.database.url.redacted(),
        "totals": totals,
        "sessions": sessions,
        "runs": runs,
        "files": files,
        "file_counts": {
            **{s: states.count(s) for s in file_state.STATES},
            "untracked": sum(
                1
                for f in on_disk
                if freshness.file_key(str(f.root), f.relative_path) not in tracked_keys
            ),
        },
        "newest_record_time": newest,
        "newest_source_time": fresh.newest_source_time,
        "data_lag_seconds": fresh.data_lag_seconds,
        "migration": run_status.to_dict() if run_status else None,
        "alerts": run_status.alerts if run_status else [],
    }


def cmd_status(args: argparse.Namespace) -> int:
    payload = status_payload(_migrator(args), getattr(args, "migration_id", None))
    if args.json:
        print_json(payload)
        return EXIT_OK
    out = stdout_console()
    if not payload["initialised"]:
        out.print(f"No migration yet in {payload['database']}; run `context-cleaner migrate`.")
        return EXIT_OK
    from context_cleaner.analysis.report import TokenTotals
    from context_cleaner.cli.render import render_totals

    render_totals(out, TokenTotals(**payload["totals"]), title=f"Database {payload['database']}")
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
        size = "" if f["size"] is None else f" of {f['size']:,}"
        out.print(
            f"  {escape(f['path'])}: {f['committed_offset']:,}{size} bytes committed; "
            f"{escape(f['message'])}"
        )
    if counts["untracked"]:
        out.print(
            f"  {counts['untracked']} new file(s) not synced yet: run `context-cleaner sync`."
        )
    from context_cleaner.migration.status import status_lines

    for line in status_lines(payload["migration"]):
        out.print(escape(line))
    return EXIT_OK


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
            f"{result.peak_memory_usage_mb:,.0f} MB, working memory "
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


def cmd_run(args: argparse.Namespace) -> int:
    """``make run``: migrate (the user's transcripts, else the sample), validate, summarise."""
    from context_cleaner.analysis.discovery import discover, resolve_roots
    from context_cleaner.errors import SourceNotFoundError

    out = stdout_console()
    try:
        roots = resolve_roots(args.source_dir or None)
        # Default folders that exist but hold no transcript (Claude Code installed, never
        # used) count as none; folders the user named are taken as they are.
        found = bool(args.source_dir) or bool(discover(roots).files)
    except SourceNotFoundError:
        found = False
    if not found:
        out.print(
            f"No Claude Code transcripts found on this machine; using the bundled sample "
            f"({SAMPLE_DIR / 'projects'})."
        )
        args.source_dir = [str(SAMPLE_DIR / "projects")]
        if not args.clickhouse_url and not os.environ.get(URL_ENV):
            args.clickhouse_url = f"chdb://{Path.home() / '.context_cleaner' / 'sample-clickhouse'}"
    migrator = _migrator(args)
    out.print(f"Database: {migrator.bridge.database.url.redacted()}")
    with progress_display(sys.stderr.isatty()) as progress:
        result = migrator.run(args.source_dir, False, progress)
    render_migration(out, result)
    from context_cleaner.migration.run_record import validate_recorded

    report = validate_recorded(
        migrator.bridge, args.source_dir, full_validation=True, tolerance=0.0
    )
    _render_database_summary(out, migrator)
    cmd = "context-cleaner status"
    out.print(
        f"Full validation: {'passed' if report.passed else 'FAILED'}; "
        f"{report.sessions_checked} sessions compared. See `{cmd}` and "
        f"`context-cleaner dashboard`."
    )
    for note in report.explanations:
        out.print(f"  - {escape(note)}")
    return EXIT_OK if result.success and report.passed else EXIT_FAILED


def _render_database_summary(out: Console, migrator: HistoricalDataMigrator) -> None:
    """Totals, the last days and the models, as the database now holds them."""
    from context_cleaner.analysis.report import TokenTotals
    from context_cleaner.cli.render import render_totals, token_table

    def totals(row: dict[str, Any]) -> TokenTotals:
        return TokenTotals(**{k: row[k] for k in TokenTotals.model_fields if k in row})

    bridge = migrator.bridge
    render_totals(out, totals(bridge.get_migration_totals()), title="In the database")
    days = sorted(bridge.totals_by("day"), key=lambda d: d["day"])[-7:]
    out.print(token_table("Last days (UTC)", "Date", [(d["day"], totals(d)) for d in days]))
    models = [(m["model"] or "(none)", totals(m)) for m in bridge.totals_by("model")]
    out.print(token_table("By model", "Model", models))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = sub.add_parser(
        "migrate",
        help="migrate every transcript into ClickHouse (resumable; a re-run adds only what is new)",
        description="Read every transcript and insert its usage into ClickHouse exactly once. "
        "Killed or failed runs resume from their last committed batch when run again. A "
        "snapshot is taken first so `rollback` can undo the run.",
    )
    add_run_args(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    sync = sub.add_parser(
        "sync",
        help="add what was appended to the transcripts since the last run",
        description="Read only the bytes after each file's committed offset (a line still being "
        "written waits for its newline); re-read files that were truncated or replaced.",
    )
    add_run_args(sync)
    sync.add_argument(
        "--watch",
        action="store_true",
        help="keep running, syncing within about a second of each change (file events; "
        "polling when they are unavailable or CONTEXT_CLEANER_WATCH_POLL=1)",
    )
    sync.add_argument(
        "--debounce",
        type=number(0.05, 3600),
        default=1.0,
        metavar="S",
        help="watch mode: group changes over at most S seconds and sync at most once every S "
        "seconds (a sync starts 50 ms after writes pause; default 1)",
    )
    sync.set_defaults(handler=cmd_sync)

    validate = sub.add_parser(
        "validate",
        help="compare the database with a fresh analysis of the transcripts",
        description="Compare, record by record, the rows that came from the bytes still on "
        "disk (under --source-dir, else every root the database tracks) with a fresh analysis "
        "of the same bytes; report retained history (rows of deleted, replaced or truncated "
        "files, other roots and hosts) and explain any difference. Exits 1 when validation "
        "fails.",
    )
    add_source_args(validate)
    add_database_args(validate)
    add_pricing_args(validate)
    validate.add_argument(
        "--full-validation",
        action="store_true",
        help="the spec's flag: every record is compared with or without it",
    )
    validate.add_argument(
        "--sample-size",
        type=integer(1),
        default=100,
        metavar="N",
        help="accepted for scripts (default 100); every record is compared whatever it says",
    )
    validate.add_argument(
        "--tolerance",
        type=number(0, 1),
        default=0.001,
        metavar="R",
        help="accepted token variance as a ratio (default 0.001 = 0.1%%); a record that "
        "is missing or altered fails whatever the ratio",
    )
    add_engine_args(validate)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.set_defaults(handler=cmd_validate)

    rollback = sub.add_parser(
        "rollback",
        help="undo a migration from its snapshot",
        description="Modes: complete (undo the migration: data as before it), partial (to one of "
        "its checkpoints, --to-checkpoint), data-only (remove all usage data, keep schema and "
        "history), schema (drop every table). Asks for confirmation unless --yes.",
    )
    add_database_args(rollback)
    rollback.add_argument(
        "--migration-id", required=True, metavar="ID", help="the run to roll back (see `status`)"
    )
    rollback.add_argument("--to-checkpoint", metavar="C", help="checkpoint name, e.g. cp3")
    rollback.add_argument(
        "--mode",
        choices=("complete", "partial", "data-only", "schema"),
        default="complete",
        help="what to roll back (default complete)",
    )
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_engine_args(rollback)
    rollback.add_argument("--json", action="store_true", help="print the result as JSON")
    rollback.set_defaults(handler=cmd_rollback)

    status = sub.add_parser(
        "status",
        help="database totals, recent runs, per-file sync state and data lag",
        description="What the database holds and how fresh it is.",
    )
    add_database_args(status)
    status.add_argument(
        "--migration-id",
        metavar="ID",
        help="the run shown in detail: phase, progress, rates, ETA, memory, alerts "
        "(default: the latest migrate or sync run)",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=cmd_status)

    run = sub.add_parser(
        "run",
        help="migrate (or the bundled sample when there are no transcripts), validate, summarise",
        description="What `make run` does: migrate your transcripts into the embedded ClickHouse "
        "(the bundled sample into a separate database when you have none), run a full "
        "validation and print a summary.",
    )
    add_source_args(run)
    add_database_args(run)
    add_pricing_args(run)
    # The migration's own validation is skipped: `run` validates fully right after.
    run.set_defaults(
        handler=cmd_run,
        batch_size=100,
        parallel_workers=None,
        checkpoint_interval=0,
        validate=False,
    )

    serve = sub.add_parser(
        "serve",
        help="run the hourly sync and a daily validation on a schedule (Prefect)",
        description="Serve two Prefect deployments from this process until interrupted: "
        "incremental-sync/hourly-sync and validation/daily-validation. Needs a running "
        "`prefect server start` (PREFECT_API_URL); runs show in its UI. "
        "deployments/prefect.yaml defines the same for a work pool.",
    )
    add_source_args(serve)
    add_database_args(serve)
    add_pricing_args(serve)
    serve.add_argument(
        "--batch-size",
        type=integer(1),
        default=100,
        metavar="N",
        help="files per batch (default 100)",
    )
    serve.add_argument(
        "--parallel-workers",
        type=integer(1, 64),
        default=None,
        metavar="N",
        help="processes reading transcripts (default: the number of cores)",
    )
    serve.add_argument(
        "--sync-cron", default="0 * * * *", metavar="CRON", help="sync schedule (default hourly)"
    )
    serve.add_argument(
        "--validation-cron",
        default="30 3 * * *",
        metavar="CRON",
        help="validation schedule (default 03:30 daily)",
    )
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from context_cleaner.orchestration.engine import serve_flows

    serve_flows(args)
    return EXIT_OK

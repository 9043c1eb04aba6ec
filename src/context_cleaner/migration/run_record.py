"""One way to record a run: migrate, sync, validate and rollback.

Every run gets its id from :func:`new_run_id` and has one row in the runs table
(``enhanced_analysis_metadata``; a rewrite replaces the row), beside its log rows in
``migration_execution_log``. :func:`write_run` is the one place both are written;
:class:`RunRecorder` builds a run's row from its counts (:class:`RunCounts`):

- a migration writes its row ``running`` when it begins and at each checkpoint, then
  ``completed`` or ``failed`` (with the error) when it ends;
- a sync writes its row once per sync, with the running totals of its run (one run for a
  whole ``sync --watch``), and only when it read something;
- a validation and a rollback write their row when they finish (a refused rollback,
  which changes nothing, writes none; neither does a ``schema`` rollback, which drops
  the table).

A ``running`` row names the process writing it, so a run whose process died is told
apart by every reader (:mod:`context_cleaner.bridge.runs`) and closed ``crashed`` by the
next run of the host (:mod:`context_cleaner.migration.crashed_runs`). When the database
refuses a failing run's last row (a full disk), the row is kept beside the database
instead (:func:`~context_cleaner.bridge.runs.stash_run`) and recorded by the next run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from context_cleaner.bridge import CHANGE_KEYS
from context_cleaner.bridge.runs import stash_run
from context_cleaner.errors import MigrationError

if TYPE_CHECKING:
    from context_cleaner.bridge import BridgeWriter, EnhancedTokenDatabaseBridge
    from context_cleaner.migration.models import RollbackResult, ValidationResult

#: The run row's columns that hold the net change the run made (tokens by kind, cost).
NET_COLUMNS = CHANGE_KEYS[:6]


def new_run_id(prefix: str) -> str:
    """``<prefix>-YYYYmmdd-HHMMSS-<6 hex>``: the id of every run (``migr``, ``sync``,
    ``dry``, ``watch``, ``vali``, ``roll`` ...)."""
    # os.urandom(3).hex() is secrets.token_hex(3), without importing secrets
    return f"{prefix}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"


class LogEntry(NamedTuple):
    """One row of the run's log (``migration_execution_log``)."""

    phase: str
    operation: str
    status: str
    details: dict[str, Any]
    processing_ms: float = 0.0


@dataclass
class RunCounts:
    """What a run row says of the files and records a run handled so far."""

    source_roots: list[str] = field(default_factory=list)
    files_found: int = 0
    files_processed: int = 0
    files_failed: int = 0
    records_inserted: int = 0
    lines_skipped: int = 0
    files_skipped: int | None = None
    """Left out of the row when None (a sync does not count its unchanged files)."""
    net: dict[str, float] = field(default_factory=dict)
    """The net change of the database's counted totals the run made (``NET_COLUMNS``)."""


def write_run(
    w: BridgeWriter, row: dict[str, Any], log: tuple[str, LogEntry] | None = None
) -> None:
    """Write a run's row, and a row of its log (``(run id, entry)``), in the writer ``w``:
    the one place run rows are written."""
    w.save_run(row)
    if log is not None:
        run_id, entry = log
        w.log(run_id, *entry)


class RunRecorder:
    """Writes the row of one run (and its log rows) as the run goes."""

    def __init__(
        self,
        bridge: EnhancedTokenDatabaseBridge,
        kind: str,
        run_id: str | None = None,
        *,
        started: float | None = None,
    ) -> None:
        self.bridge = bridge
        self.kind = kind
        self.run_id = run_id or new_run_id(kind[:4])
        self.started = time.time() if started is None else started
        self.wrote_running = False
        """A ``running`` row is in the database (a refused last row is then stashed)."""

    def row(
        self,
        status: str,
        counts: RunCounts,
        details: dict[str, Any] | None = None,
        *,
        finished: float | None = None,
    ) -> dict[str, Any]:
        """The run's row; tokens, cost and records are the net change the run made."""
        net = {k: counts.net.get(k, 0) for k in NET_COLUMNS}
        row: dict[str, Any] = {
            **{k: max(0, int(v)) for k, v in net.items() if k != "cost_usd"},
            "cost_usd": max(0.0, float(net["cost_usd"])),
            "migration_id": self.run_id,
            "run_kind": self.kind,
            "status": status,
            "started_at": self.started,
            "source_roots": list(counts.source_roots),
            "files_found": counts.files_found,
            "files_processed": counts.files_processed,
            "files_failed": counts.files_failed,
            "records_inserted": max(0, counts.records_inserted),
            "lines_skipped": counts.lines_skipped,
        }
        if counts.files_skipped is not None:
            row["files_skipped"] = counts.files_skipped
        if finished is not None:
            row["finished_at"] = finished
        if details is not None:
            row["details"] = details
        return row

    def running(
        self,
        counts: RunCounts,
        log: LogEntry,
        *,
        first: Callable[[BridgeWriter], None] | None = None,
    ) -> None:
        """Write the row ``running`` (``first`` runs in the same unit, e.g. a snapshot)."""
        with self.bridge.writer() as w:
            if first is not None:
                first(w)
            write_run(w, self.row("running", counts), (self.run_id, log))
        self.wrote_running = True

    def finished(
        self,
        status: str,
        counts: RunCounts,
        details: dict[str, Any],
        log: LogEntry | None,
        *,
        quiet: bool = False,
        stash: bool = False,
    ) -> None:
        """Write the row finished with ``status``.

        ``quiet``: a refused row is not raised (the run is failing with an error of its
        own, or has a result that matters more); it is kept beside the database when a
        ``running`` row of the run is in it, and the next run records it. ``stash``: keep
        it there without trying the database (the next run must close the run itself).
        """
        row = self.row(status, counts, details, finished=time.time())
        if stash and self.wrote_running:
            stash_run(self.bridge.database, row)
            return
        try:
            with self.bridge.writer() as w:
                write_run(w, row, None if log is None else (self.run_id, log))
        except MigrationError:
            if not quiet:
                raise
            if self.wrote_running:
                stash_run(self.bridge.database, row)

    def elapsed_ms(self, since: float | None = None) -> float:
        return (time.time() - (self.started if since is None else since)) * 1000


def record_validation(
    bridge: EnhancedTokenDatabaseBridge, report: ValidationResult, started: float
) -> ValidationResult:
    """Write the row of a finished validation (``completed`` when it passed, else
    ``failed``); sets ``report.run_id``. Returns ``report``."""
    from context_cleaner.migration.file_state import DELETED, STATES

    recorder = RunRecorder(bridge, "validate", report.run_id or None, started=started)
    report.run_id = recorder.run_id
    status = "completed" if report.passed else "failed"
    details = {
        "passed": report.passed,
        "mode": report.mode,
        "integrity_score": report.integrity_score,
        "variance_ratio": report.variance_ratio,
        "token_variance": report.token_variance,
        "sessions_checked": report.sessions_checked,
        "explanations": report.explanations[:5],
    }
    states = report.file_states
    deleted = states.get(DELETED, 0)
    if deleted:
        details["files_deleted"] = deleted
    found = sum(states.get(s, 0) for s in STATES) - deleted
    counts = RunCounts(
        source_roots=list(report.roots),
        # The files on disk, and of those the ones whose committed range was compared (a
        # tracked file deleted from disk is retained history, not one found; a file
        # tracked under two folders is compared under both, found once).
        files_found=found,
        files_processed=min(report.source_files, found),
    )
    log = LogEntry("validate", "finish", status, details, recorder.elapsed_ms())
    recorder.finished(status, counts, details, log, quiet=True)  # the report matters more
    return report


def validate_recorded(
    bridge: EnhancedTokenDatabaseBridge, source_dirs: Sequence[str] | None, **options: Any
) -> ValidationResult:
    """``validator.validate_migration_integrity`` (same ``options``), recorded as a
    ``validate`` run when the database exists (a validation never creates it)."""
    from context_cleaner.bridge import database_exists
    from context_cleaner.migration.validator import validate_migration_integrity

    started = time.time()
    report = validate_migration_integrity(bridge, source_dirs, **options)
    if database_exists(bridge):
        record_validation(bridge, report, started)
    return report


def record_rollback(
    bridge: EnhancedTokenDatabaseBridge, result: RollbackResult, started: float, runs: list[str]
) -> RollbackResult:
    """Write the row of a finished rollback of ``result.migration_id`` (its log row is
    written with the rollback itself); sets ``result.run_id``. Returns ``result``."""
    recorder = RunRecorder(bridge, "rollback", result.run_id or None, started=started)
    result.run_id = recorder.run_id
    details = {
        "rolled_back": result.migration_id,
        "mode": result.mode,
        "snapshot": result.snapshot,
        "restored": result.tables_restored,
        "runs_rolled_back": runs,
    }
    recorder.finished("completed", RunCounts(), details, None, quiet=True)  # it is done
    return result

"""The migration's result and progress types (the spec's "Migration Data Models").

Plain dataclasses: built on the hot path cheaply, turned into JSON by
``to_dict`` at the edges (CLI ``--json``, flows' artifacts, the dashboard).
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from context_cleaner.migration.counts import BatchCounts
from context_cleaner.migration.run_results import (
    IncrementalMigrationResult,
    Jsonable,
    RunMessages,
    RunOutcome,
    RunResult,
    TranscriptRunResult,
    to_jsonable,
)

__all__ = [
    "BatchProcessingResult",
    "CheckpointResult",
    "CompletenessCheck",
    "CompletenessResult",
    "FileDiscoveryResult",
    "HistoricalMigrationResult",
    "IncrementalMigrationResult",
    "JSONLFileInfo",
    "MigrationProgress",
    "RollbackResult",
    "RunMessages",
    "RunOutcome",
    "RunResult",
    "SessionVariance",
    "SetupResult",
    "SyncSetupResult",
    "TranscriptRunResult",
    "ValidationResult",
    "to_jsonable",
]

if TYPE_CHECKING:
    from context_cleaner.analysis.discovery import Discovery


@dataclass
class JSONLFileInfo(Jsonable):
    """One discovered transcript file (the spec's catalogue entry)."""

    path: str
    relative_path: str
    size_bytes: int
    modified_at: datetime
    session_id: str
    project: str
    committed_offset: int = 0
    """Bytes already in the database (0 for a file never migrated)."""
    estimated_sessions: int = 1
    """1 for the first file of its session, 0 for the session's other files (subagents)."""

    @property
    def pending_bytes(self) -> int:
        return max(0, self.size_bytes - self.committed_offset)


@dataclass
class FileDiscoveryResult(Jsonable):
    source_directories: list[str]
    files: list[JSONLFileInfo]
    total_bytes: int
    pending_bytes: int
    problems: list[str] = field(default_factory=list)

    @property
    def total_files(self) -> int:
        return len(self.files)

    @property
    def estimated_sessions(self) -> int:
        """Sessions the files hold (a session's file and its subagents' files make one)."""
        return sum(f.estimated_sessions for f in self.files)

    @classmethod
    def catalogue(
        cls, found: Discovery, committed: dict[str, int], file_pattern: str
    ) -> FileDiscoveryResult:
        """The files of ``found`` whose path below their root matches ``file_pattern``
        (``committed``: the committed offset of each path with bytes pending; a path
        missing from it is committed to its end). ``estimated_sessions`` is 1 for the first
        file of each session, else 0 (DESIGN §3 rule 6)."""
        seen: set[tuple[str, str]] = set()
        files = []
        for f in found.files:
            if not PurePosixPath(f.relative_path).match(file_pattern):
                continue
            session = (f.project, f.session_id)
            files.append(
                JSONLFileInfo(
                    path=str(f.path),
                    relative_path=f.relative_path,
                    size_bytes=f.size,
                    modified_at=datetime.fromtimestamp(f.mtime_ns / 1e9, UTC),
                    session_id=f.session_id,
                    project=f.project,
                    committed_offset=committed.get(str(f.path), f.size),
                    estimated_sessions=0 if session in seen else 1,
                )
            )
            seen.add(session)
        return cls(
            source_directories=[str(r) for r in found.roots],
            files=files,
            total_bytes=sum(f.size_bytes for f in files),
            pending_bytes=sum(f.pending_bytes for f in files),
            problems=[f"{p.path}: {p.reason}" for p in found.problems],
        )


@dataclass
class BatchProcessingResult(BatchCounts, Jsonable):
    """What one batch of files did: its counts (:class:`BatchCounts`) and these."""

    batch_id: str
    files: list[str]
    _: KW_ONLY
    files_processed: int = 0
    usage_lines: int = 0
    sessions_touched: int = 0

    @classmethod
    def merged(
        cls, batch_id: str, files: list[str], parts: list[BatchProcessingResult]
    ) -> BatchProcessingResult:
        """One result for ``parts`` (the batches a request was read in): counts summed."""
        out = cls(batch_id=batch_id, files=files)
        for part in parts:
            for f in dataclasses.fields(cls):
                mine, theirs = getattr(out, f.name), getattr(part, f.name)
                if isinstance(mine, int | float) and f.name not in ("batch_id",):
                    setattr(out, f.name, mine + theirs)
            out.errors += part.errors
        return out


@dataclass
class MigrationProgress(Jsonable):
    """Real-time progress (the spec's ``MigrationProgress``), passed to progress callbacks."""

    migration_id: str
    current_phase: str
    files_completed: int
    files_remaining: int
    tokens_processed: int
    estimated_completion_time: datetime | None
    current_processing_rate: float
    """Tokens per second so far."""
    errors_encountered: int
    warnings_count: int
    bytes_completed: int = 0
    bytes_total: int = 0
    records_inserted: int = 0


@dataclass
class HistoricalMigrationResult(TranscriptRunResult):
    """Comprehensive result of a historical migration (every field measured).

    The spec's fields come first, in the spec's order (positional construction as the
    spec reads works); ``errors`` are messages (str), not exception objects, so results
    turn into JSON and cross process boundaries. Extras follow, all defaulted.
    """

    migration_id: str
    start_time: datetime
    end_time: datetime
    success: bool

    total_files_found: int
    files_processed: int
    files_skipped: int
    files_failed: int

    total_tokens_migrated: int
    """Net: what this run added to the database's counted total (a dry run: what it read)."""
    total_sessions_created: int
    total_records_inserted: int

    processing_duration: float
    average_processing_speed_tokens_per_second: float
    peak_memory_usage_mb: float
    database_insertion_time: float

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)

    data_integrity_score: float = 0.0
    validation_passed: bool = False
    consistency_check_results: dict[str, Any] = field(default_factory=dict)

    dry_run: bool = False
    bytes_processed: int = 0
    skipped_lines: int = 0
    checkpoints: list[str] = field(default_factory=list)
    resumed_files: int = 0
    """Files that continued from an earlier (interrupted) run's committed offset."""
    database_totals: dict[str, Any] = field(default_factory=dict)
    working_memory_mb: float = 0.0
    """Peak resident memory minus the memory after connecting (process and workers)."""
    projected_seconds: float | None = None
    """Dry runs: the projected wall time of the real migration."""
    peak_resident_memory_mb: float = 0.0
    """Peak resident memory (RSS) of the process tree, the pages of mapped files included
    (``peak_memory_usage_mb`` is its private memory: ``migration.memory``)."""

    run_kind: ClassVar[str] = "migrate"

    def outcome(self) -> RunOutcome:
        return RunOutcome(
            success=self.success,
            tokens_added=self.total_tokens_migrated,
            files_processed=self.files_processed,
            files_failed=self.files_failed,
            records_inserted=self.total_records_inserted,
            dry_run=self.dry_run,
        )


@dataclass
class SessionVariance(Jsonable):
    session_id: str
    source_tokens: int
    database_tokens: int

    @property
    def difference(self) -> int:
        return self.database_tokens - self.source_tokens


@dataclass
class ValidationResult(RunMessages):
    """Analyser (source) against database: tokens, sessions, files, a per-session sample."""

    passed: bool
    tolerance: float
    full_validation: bool
    source_totals: dict[str, Any]
    database_totals: dict[str, Any]
    token_variance: int
    variance_ratio: float
    source_sessions: int
    database_sessions: int
    source_files: int
    tracked_files: int
    sessions_checked: int
    session_mismatches: list[SessionVariance] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)
    integrity_score: float = 1.0
    duration_seconds: float = 0.0
    mode: str = "sampled"
    """``full`` or ``sampled`` (``validate``: the committed ranges read again), ``this_run``
    (a migration's own check of what it read)."""
    roots: list[str] = field(default_factory=list)
    """The transcript roots compared."""
    compared: dict[str, Any] = field(default_factory=dict)
    """Records on disk whose rows are the same records: ``totals``, ``records``, ``files``,
    ``sessions``, ``ranges`` and ``bytes`` compared."""
    retained: dict[str, Any] | None = None
    """Retained history (rows not backed by the bytes compared: deleted files, earlier
    generations, other roots, other hosts): ``totals``, ``records``, ``files``,
    ``sessions``, ``oldest_day``, ``newest_day`` and ``by_origin``; never a variance.
    None when not measured (a migration's own check)."""
    superseded: dict[str, Any] = field(default_factory=dict)
    """Records on disk stored from another copy rule 3 prefers (kept from retained history)."""
    pending: dict[str, int] = field(default_factory=dict)
    """Bytes on disk not in the database yet (behind, new, replaced), unfinished last lines."""
    file_states: dict[str, int] = field(default_factory=dict)
    """Files per state of the file classifier (``migration/file_state.py``)."""
    differences: list[dict[str, Any]] = field(default_factory=list)
    """The first records that differ: kind (missing, stale, altered), key, file, line."""
    difference_counts: dict[str, int] = field(default_factory=dict)
    summaries_agree: bool = True
    summary_totals: dict[str, Any] = field(default_factory=dict)

    run_kind: ClassVar[str] = "validate"

    def outcome(self) -> RunOutcome:
        return RunOutcome(success=self.passed)


@dataclass
class SetupResult(Jsonable):
    database: str
    applied_migrations: list[str]
    tables: list[str]
    duration_seconds: float


@dataclass
class RollbackResult(RunMessages):
    """A rollback of the run ``migration_id`` (its own run is ``run_id``)."""

    migration_id: str
    mode: str
    snapshot: str | None
    tables_restored: list[str]
    tables_dropped: list[str]
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    duration_seconds: float
    success: bool = True

    run_kind: ClassVar[str] = "rollback"

    def outcome(self) -> RunOutcome:
        return RunOutcome(success=self.success)


@dataclass
class CheckpointResult(Jsonable):
    """A checkpoint made on request: a snapshot of the data tables and a log row.

    ``checkpoint`` is what ``rollback_migration(migration_id, rollback_to_checkpoint=...)``
    takes to return the data to this moment."""

    migration_id: str
    checkpoint: str
    snapshot_id: str
    created_at: datetime
    completed_files: int
    tokens_processed: int
    row_counts: dict[str, int] = field(default_factory=dict)
    success: bool = True


@dataclass
class CompletenessCheck(Jsonable):
    name: str
    passed: bool
    detail: str = ""


@dataclass
class CompletenessResult(Jsonable):
    """The spec's five completeness checks: token count reconciliation (the token
    counter's analysis against the database), session counts, files processed,
    consistency across tables, referential integrity."""

    complete: bool
    checks: list[CompletenessCheck]
    source_total_tokens: int
    database_total_tokens: int
    """The database's counted tokens backed by bytes on disk (retained history apart)."""
    variance_percentage: float
    tolerance_percentage: float
    retained_total_tokens: int = 0
    """Tokens the database keeps from files no longer on disk (never a variance)."""
    duration_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.complete


@dataclass
class SyncSetupResult(Jsonable):
    """What ``setup_incremental_sync`` set up (the spec names the type, not its fields).

    ``scheduled``: a Prefect deployment now runs the sync every ``sync_interval_minutes``
    (``scheduler`` ``"prefect"``); else (``"local"``) nothing was started and
    ``next_steps`` says exactly how to start the sync."""

    scheduled: bool
    scheduler: str
    sync_interval_minutes: int
    real_time_enabled: bool
    deployment_name: str | None = None
    """``flow/deployment``, e.g. ``incremental-sync/api-sync``."""
    deployment_id: str | None = None
    work_pool: str | None = None
    schedule: str = ""
    """The schedule as Prefect holds it, e.g. ``every 60 minutes``."""
    api_url: str | None = None
    next_steps: list[str] = field(default_factory=list)
    """Commands to run, in order (a worker to start, the watch for real-time sync)."""
    message: str = ""

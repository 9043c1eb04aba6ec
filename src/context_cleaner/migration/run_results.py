"""What every recorded run returns (migrate, sync, validate, rollback), and a sync's result.

Apart from the other result and progress types (:mod:`.models`, which re-exports these): a
sync with nothing new, which answers from stat calls alone, builds its result without
making every other type (a dataclass costs its generated methods' compilation: ~0.3 ms
each, ~20 ms for the module holding them all, docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar


def to_jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and exceptions as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


class Jsonable:
    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a finished run changed, as the run monitor records it on its span and metrics."""

    success: bool
    tokens_added: int = 0
    """The net change of the database's token total this run made."""
    files_processed: int = 0
    files_failed: int = 0
    records_inserted: int = 0
    dry_run: bool = False


@dataclass(kw_only=True)
class RunResult(Jsonable):
    """What every recorded run returns: migrate, sync, validate and rollback.

    Each run has one row in the runs table, named ``run_id``
    (:func:`~context_cleaner.migration.run_record.new_run_id`) and written by the run
    recorder (:mod:`~context_cleaner.migration.run_record`); the run monitor reads
    :meth:`outcome`. Every kind has ``errors`` and ``warnings`` (lists of messages), each
    declared where its own field order puts them (the spec's migration result has them
    among its positional fields).
    """

    run_kind: ClassVar[str] = ""
    """``migrate``, ``sync``, ``validate`` or ``rollback``: the row's ``run_kind``."""

    run_id: str = ""
    """The id of the run's row (for migrate and sync the same as ``migration_id``)."""
    alerts_fired: list[str] = field(default_factory=list)
    """Alerts that fired during the run (``high_error_rate`` makes it no clean success)."""

    if TYPE_CHECKING:  # fields of every subclass (see above)
        errors: list[str]
        warnings: list[str]

    def outcome(self) -> RunOutcome:
        """What the run changed (nothing, unless the kind reads transcripts)."""
        return RunOutcome(success=not self.errors)


@dataclass(kw_only=True)
class RunMessages(RunResult):
    """``errors`` and ``warnings`` as keyword fields, for the kinds the spec leaves open."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class TranscriptRunResult(RunResult):
    """The part of a migration's and a sync's result about the lines they read."""

    skipped_lines_by_reason: dict[str, int] = field(default_factory=dict)
    """Lines that could carry usage but were not counted, by reason (counts are complete)."""
    skipped_line_examples: list[str] = field(default_factory=list)
    """Up to 20 of them: ``file:line (byte offset): reason detail``."""
    closed_runs: list[dict[str, Any]] = field(default_factory=list)
    """Crashed runs of this host this run found and closed (see ``bridge.runs``)."""

    if TYPE_CHECKING:
        migration_id: str  # each kind's own field

    def __post_init__(self) -> None:
        self.run_id = self.run_id or self.migration_id  # a migration's row is named by its id


@dataclass
class IncrementalMigrationResult(TranscriptRunResult, RunMessages):
    """What an incremental sync did (``tokens_added``, ``records_inserted``: the database's
    growth, net of responses it already held)."""

    migration_id: str
    start_time: datetime
    end_time: datetime
    success: bool
    files_checked: int
    files_changed: int
    files_new: int
    files_reset: int
    """Files whose identity changed (truncated, replaced, rotated) and were re-read from 0."""
    files_deleted: int
    bytes_read: int
    records_inserted: int
    tokens_added: int
    skipped_lines: int
    duration_seconds: float
    data_lag_seconds: float | None = None

    run_kind: ClassVar[str] = "sync"

    def outcome(self) -> RunOutcome:
        failed = len(self.errors)
        return RunOutcome(
            success=self.success,
            tokens_added=self.tokens_added,
            files_processed=max(0, self.files_changed - failed),
            files_failed=failed,
            records_inserted=self.records_inserted,
        )

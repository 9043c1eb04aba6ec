"""Committing what the readers read: one unit of work per group of read batches.

Each unit, in one hold of the database: insert the usage rows, recompute the touched
sessions' summaries, then commit the files' offsets (rows first, so a crash in between
only replays the range, which the table's key makes harmless). Read batches are
gathered into units (``pipeline.Gatherer``) as each unit costs fixed database work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from context_cleaner.analysis.discovery import storable
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.scan import FileStats, ScanResult
from context_cleaner.bridge import CHANGE_KEYS, EnhancedTokenDatabaseBridge, FileCommit
from context_cleaner.errors import TransientError
from context_cleaner.migration import ledger
from context_cleaner.migration.counts import SKIPPED_EXAMPLES, add_net
from context_cleaner.migration.models import BatchProcessingResult
from context_cleaner.migration.planning import HEAD_BYTES, WorkItem, head_hash
from context_cleaner.observability import telemetry

#: Retries of a batch's database work on transient errors (then the run fails, resumable).
BATCH_RETRIES = 3

ROLLUPS_DEFERRED: ContextVar[bool] = ContextVar("rollups_deferred", default=False)
"""Set by a migration into a database that held no usage rows: its units insert rows and
commit offsets only, and the run rebuilds both rollups whole at each checkpoint and at
its end (``BridgeWriter.rebuild_rollups``; ``migration.migrate``). A unit that does not
see it (another thread's context) refreshes its sessions as usual: harmless either way."""


@dataclass(slots=True)
class RecordSums:
    """A batch's records summed in one pass: by file, in all, and the sessions touched."""

    tokens: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, records: Sequence[UsageRecord]) -> RecordSums:
        sums = cls()
        tokens, counts, sessions = sums.tokens, sums.records, sums.sessions
        for r in records:
            path = r.file_path
            tokens[path] = tokens.get(path, 0) + r.total_tokens
            counts[path] = counts.get(path, 0) + 1
            sessions.add(r.session_id)
        return sums


def file_commits(batch: Sequence[WorkItem], scan: ScanResult, sums: RecordSums) -> list[FileCommit]:
    """Tracking rows for a batch: where each file's committed range now ends."""
    tokens, counts = sums.tokens, sums.records
    files = scan.files
    # The readers give each file's stats in the batch's order (found by path otherwise).
    if len(files) == len(batch) and all(
        s.relative_path == i.file.relative_path for s, i in zip(files, batch, strict=True)
    ):
        pairs: Iterable[tuple[WorkItem, FileStats | None]] = zip(batch, files, strict=True)
    else:
        by_rel = {(s.path, s.relative_path): s for s in files}
        pairs = ((i, by_rel.get((storable(i.file.path_str), i.file.relative_path))) for i in batch)
    commits = []
    for item, stats in pairs:
        if stats is None:
            continue
        f = item.file
        failed = bool(stats.error)
        end = stats.end_offset if not failed else item.start_offset
        head_len = min(HEAD_BYTES, end)
        # The readers hashed the head through the descriptor they read (a failed read:
        # hashed here, up to where the file's committed range ends).
        head = (
            stats.head_hash if not failed and stats.head_hash else head_hash(f.path_str, head_len)
        )
        rel = f.relative_path
        commits.append(
            FileCommit(  # positional, in the fields' order: a third cheaper than by keyword
                str(f.root),
                rel,
                f.device,
                f.inode,
                head,
                head_len,
                stats.size,
                f.mtime_ns,
                item.start_offset,
                end,
                item.start_line + (stats.lines if not failed else 0),
                tokens.get(rel, 0),
                counts.get(rel, 0),
                stats.skipped_lines,
                "failed" if failed else "completed",
                stats.error,
            )
        )
    return commits


def write_batch(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    records: Sequence[UsageRecord],
    commits: Sequence[FileCommit],
    *,
    sessions: set[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    net: dict[str, float] | None = None,
) -> float:
    """Insert, refresh summaries, commit offsets: one unit of work, retried when transient.

    ``sessions`` are the records' sessions (found here when not given). Returns the
    seconds spent. Raises the last error when retries run out. ``net``, when given, gets
    the net change of the database's counted totals this unit made (:data:`NET_KEYS`):
    measured by the summary refresh inside the unit, under the database's hold, so
    another process's units are never counted in it. With :data:`ROLLUPS_DEFERRED` set
    there is no refresh: the run measures its net change when it rebuilds the rollups.
    """
    rollups = not ROLLUPS_DEFERRED.get()
    if sessions is None:
        sessions = {r.session_id for r in records}
    delay = 0.5
    for attempt in range(1, BATCH_RETRIES + 1):
        started = time.perf_counter()
        change: dict[str, float] = {}
        try:
            with bridge.writer() as w:
                if records:
                    w.insert_records(records, migration_id, rollups=rollups)
                    if rollups:
                        w.refresh_summaries(sessions, migration_id, change)
                w.commit_files(commits, migration_id)
                w.release_memory()
            if net is not None:
                add_net(net, change)
            return time.perf_counter() - started
        except TransientError:
            if attempt == BATCH_RETRIES:
                raise
            telemetry.metrics().retry_attempts_counter.add(1, {"operation": "write_batch"})
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


NET_KEYS = CHANGE_KEYS
"""The counted totals whose net change a run measures (token kinds, cost, records)."""


def net_tokens(net: dict[str, float]) -> int:
    """The total tokens of a net change."""
    return int(sum(net.get(k, 0) for k in NET_KEYS[:5]))


@telemetry.traced(
    "migration.batch",
    arguments=("migration_id", "batch_id", "batch", "seconds", "dry_run"),
    outcome=("files_processed", "files_failed", "records_inserted", "tokens_in_records"),
)
def commit_scan(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    batch_id: str,
    batch: Sequence[WorkItem],
    scan: ScanResult,
    seconds: float,
    *,
    dry_run: bool = False,
) -> BatchProcessingResult:
    """Count one read batch and (unless a dry run) commit it: rows, summaries, then offsets."""
    records = list(scan.collector.candidates())
    result = BatchProcessingResult(
        batch_id=batch_id,
        files=[i.file.relative_path for i in batch],
        analysis_seconds=seconds,
    )
    for s in scan.files:
        result.bytes_read += s.end_offset - s.start_offset
        result.lines_read += s.lines
        result.usage_lines += s.usage_lines
        result.skipped_lines += s.skipped_lines
        if s.error:
            result.files_failed += 1
            result.errors.append(f"{s.path}: {s.error}")
        else:
            result.files_processed += 1
    sums = RecordSums.of(records)
    result.records_inserted = len(records)
    result.tokens_in_records = sum(sums.tokens.values())
    result.sessions_touched = len(sums.sessions)
    for reason, count in scan.skips.by_reason.items():
        result.skipped_by_reason[reason] = result.skipped_by_reason.get(reason, 0) + count
    result.skipped_examples = [
        f"{s.file_path}:{s.line_number} (byte {s.byte_offset}): {s.reason}"
        + (f" {s.detail}" if s.detail else "")
        for s in scan.skips.details[:SKIPPED_EXAMPLES]
    ]
    if not dry_run:
        commits = file_commits(batch, scan, sums)
        result.insert_seconds = write_batch(
            bridge, migration_id, records, commits, sessions=sums.sessions, net=result.net
        )
        ledger.note_committed(scan)  # what the run's own validation compares
    return result

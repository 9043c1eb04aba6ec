"""Validation: the database against a fresh analysis of the bytes still on disk (spec Phase 3).

The database is the durable record; the transcripts are a window (DESIGN §5).
So validation compares, record by record, the rows that came from the files and
byte ranges still on disk (each tracked file's committed range, under the roots
asked for: ``--source-dir``, else every root this database tracks) with a fresh
analysis of the same bytes. Rows of deleted files, of earlier generations of
replaced or truncated files, of other roots and of other hosts are *retained
history*: counted and reported, never a variance. What fails: a record on disk
whose row is missing, older or altered in the database, and summaries that
disagree with the rows.

De-duplication (rules 3-4) crosses files, so a response on disk may be stored
from another copy: one in a deleted file, say, that rule 3 prefers. Then:

- the stored copy has the same token counts and is counted on both sides: the
  record is compared as on disk (its provenance does not matter);
- otherwise the stored copy is retained history and the copy on disk is
  ``superseded``: reported beside the retained history, not a variance. This is
  only allowed when the stored copy is *preferred* by rule 3 (a larger ``ver``)
  and does not claim the disk copy's place (same file and offset): a row that
  rule 3 would have replaced by the disk copy is a difference.

``migrate`` validates what it read itself (:func:`validate_run`, no file read
twice); ``validate`` reads the committed ranges again (:func:`validate_migration_integrity`).
The parts: :mod:`.stored_rows` (the database side), :mod:`.retained_history` (the roots
compared and why other rows are kept), :mod:`.comparison` (key by key),
:mod:`.validation_result` (the verdict and its explanations).

``python -m context_cleaner.migration.validator --full-validation --tolerance 0.001``
exits non-zero when validation fails.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from context_cleaner.analysis.fields import STORED_TOKEN_FIELDS
from context_cleaner.bridge import DETAILS_TABLE, EnhancedTokenDatabaseBridge, query_rows
from context_cleaner.bridge.queries import BoundRows, StringSet, bound_rows
from context_cleaner.bridge.writes import release_engine_memory
from context_cleaner.migration.comparison import (
    U64,
    Comparison,
    ReadSums,
    RowsOf,
    Sums,
    compare,
    read_sums,
)
from context_cleaner.migration.ledger import Ledger, LedgerRecord, scan_committed
from context_cleaner.migration.models import ValidationResult
from context_cleaner.migration.retained_history import Scope, scope_of
from context_cleaner.migration.stored_rows import (
    ALL_ROWS,
    ROWS_OF_FILES,
    ROWS_OF_IDS,
    Key,
    StoredRow,
    query_stored,
)
from context_cleaner.migration.validation_result import build_result, summaries_match
from context_cleaner.settings import SAMPLE_SIZE, TOLERANCE

__all__ = ["validate_migration_integrity", "validate_run"]


def validate_migration_integrity(
    bridge: EnhancedTokenDatabaseBridge,
    source_dirs: Sequence[str] | None = None,
    *,
    sample_size: int = SAMPLE_SIZE,
    full_validation: bool = False,
    tolerance: float = TOLERANCE,
    seed: int | None = None,
    workers: int | None = None,
) -> ValidationResult:
    """Compare the rows of the bytes on disk with a fresh analysis of the same bytes.

    Every record of the committed ranges is compared, with or without ``full_validation``
    (``sample_size`` and ``seed`` are accepted for compatibility: comparing every record
    costs little once the bytes are read).
    """
    started = time.perf_counter()
    scope = scope_of(bridge, source_dirs)
    prefixes = [
        (f.file, f.compared_bytes) for f in scope.files if f.file is not None and f.compared_bytes
    ]
    disk = scan_committed(prefixes, workers=workers or min(2, os.cpu_count() or 1))
    with bridge.reading():
        stored = query_stored(bridge, ALL_ROWS, {}) if bridge.is_initialised() else {}
        db_totals = bridge.get_migration_totals() if stored else _empty_totals()
        summary_totals = _rollup_totals(bridge, db_totals) if stored else _empty_totals()
    comparison = compare(disk, lambda part: stored, scope.origin_function(), every_row=stored)
    db_sessions = {row.session_id for row in stored.values() if row.counted}
    return build_result(
        comparison,
        scope,
        disk,
        db_totals,
        summary_totals,
        db_sessions=len(db_sessions),
        mode="full" if full_validation else "sampled",
        full_validation=full_validation,
        sample_size=sample_size,
        tolerance=tolerance,
        seed=seed,
        started=started,
    )


def _rollup_totals(
    bridge: EnhancedTokenDatabaseBridge, db_totals: dict[str, Any]
) -> dict[str, Any]:
    """The rollups' totals for the summaries check: the session summaries' when they differ
    from the usage rows' (``db_totals``), else the 15-minute rollup's when it differs from
    them, so that either rollup drifting from the usage rows fails the check."""
    summaries = bridge.summary_totals()
    if not summaries_match(db_totals, summaries):
        return summaries
    buckets = bridge.bucket_totals()
    if summaries_match(summaries, buckets) and buckets["records"] == summaries["records"]:
        return summaries
    return buckets


def validate_run(
    bridge: EnhancedTokenDatabaseBridge,
    read: Ledger,
    source_dirs: Sequence[str] | None = None,
    *,
    tolerance: float = TOLERANCE,
    database_totals: dict[str, Any] | None = None,
    started_empty: bool = False,
    summed: Future[ReadSums] | None = None,
) -> ValidationResult:
    """A migration's built-in validation: the records its readers read (``read``) against the
    rows of the database; no transcript is read again.

    First one aggregate query: the rows stored at the places the run read (under
    ``FINAL``) must be the run's records: same count, token sums per field, sum of byte
    offsets, of times and number of sidechain rows (measured on 500 MB: ~0.03 s against
    ~0.2 s for comparing 26k rows key by key). When any differs (a preferred copy kept
    from elsewhere, or a real difference) every record is compared key by key, which
    says which and why: a part of the records at a time with the stored rows of their
    keys (:data:`~.comparison.PART_RECORDS`), so that the rows held at once do not grow
    with the run. Only the ranges the run read are compared (earlier runs' ranges
    were checked when they were read); retained history is not measured (``validate``
    measures it). ``database_totals``: the run's own reading of them, when it has one;
    ``started_empty``: the database held no row when the run began; ``summed``: the
    records' sums being made on another thread (:func:`~.comparison.read_sums`, else
    made here).
    """
    started = time.perf_counter()
    with bridge.reading():
        with bridge.database.session() as client:
            release_engine_memory(
                bridge.database, client
            )  # what the run's last commit left with the engine
        if database_totals is None:
            database_totals = bridge.get_migration_totals()
        summary_totals = _rollup_totals(bridge, database_totals)
        comparison = (
            _same_sums(bridge, read, started_empty, _summed(read, summed))
            if read.has_ranges
            else Comparison()
        )
        if comparison is None:  # the checksums differ: compare key by key to say why
            comparison = compare(read, _rows_of(bridge), lambda row: "unknown")
    scope = Scope(roots=list(source_dirs or []), files=[], tracked=[], host=bridge.host)
    return build_result(
        comparison,
        scope,
        read,
        database_totals,
        summary_totals,
        db_sessions=None,
        mode="this_run",
        full_validation=False,
        sample_size=0,
        tolerance=tolerance,
        seed=None,
        started=started,
    )


_SUMS = (
    "SELECT count(), "
    + ", ".join(f"sum({name})" for name in STORED_TOKEN_FIELDS)
    + ", sum(byte_offset), sum(toUInt64(toUnixTimestamp64Milli(timestamp))), "
    f"countIf(is_sidechain) FROM {DETAILS_TABLE} FINAL"
)
_PLACES = bound_rows("places", "path String, start UInt64, end UInt64")
_SUMS_AT_PLACES = (
    f"WITH (SELECT (groupArray(path), groupArray(start), groupArray(end)) FROM {_PLACES}) "
    f"AS places {_SUMS} WHERE file_path IN (SELECT path FROM {_PLACES}) "
    "AND byte_offset >= transform(file_path, places.1, places.2, toUInt64(0)) "
    "AND byte_offset < transform(file_path, places.1, places.3, toUInt64(0))"
)
"""Checksums of the rows stored at the places (file, byte range) a run read (the filter
applies after FINAL: a key whose preferred copy is elsewhere is not counted here)."""

PLACES_AT_ONCE = 2_000
"""Places bound in one statement. The engine's memory for a statement grows with the
text bound (20,000 small files' 15,000 places at once: +50 MiB of private memory for
that statement; 2,000 at a time, the memory released after each: ~+25 MiB)."""


def _same_sums(
    bridge: EnhancedTokenDatabaseBridge,
    read: Ledger,
    whole_table: bool,
    summed: Callable[[], ReadSums],
) -> Comparison | None:
    """The run's records summed as :data:`_SUMS_AT_PLACES` sums the rows at their places
    (``whole_table``: the database was empty before the run, so every row should be the
    run's: the same sums over the table, without binding every path, ~0.1 s on 500 MB);
    a :class:`Comparison` of them all when every sum is equal, else None.

    ``summed()``: the records' :class:`~.comparison.ReadSums`, asked for once the
    database's sums are in (a migration has them made on another thread meanwhile)."""
    groups: list[list[str] | None] = [None]  # the whole table, nothing bound
    by_path: dict[str, tuple[int, int]] = {}
    if not whole_table:
        for (_, rel), (start, end) in read.ranges.items():
            if rel in by_path:  # the same relative path under two roots: compare key by key
                return None
            by_path[rel] = (start, end)
        paths = sorted(by_path)
        groups = [paths[i : i + PLACES_AT_ONCE] for i in range(0, len(paths), PLACES_AT_ONCE)]
        del paths
    sums = [0] * 9
    with bridge.database.session() as client:
        for group in groups:
            if group is None:
                [row] = query_rows(client, _SUMS)
            else:
                places = BoundRows((p, *by_path[p]) for p in group)
                [row] = query_rows(client, _SUMS_AT_PLACES, {"places": places})
            sums = [a + int(b) for a, b in zip(sums, row, strict=True)]
            release_engine_memory(bridge.database, client)
    del by_path, groups
    sums[6] %= U64  # the byte offsets and times, summed by the engine modulo 2**64
    sums[7] %= U64
    mine = summed()
    if not read.paths_unique or tuple(sums) != mine.checksums:
        return None
    out = Comparison()
    out.source = out.compared = mine.counted
    return out


def _summed(read: Ledger, made: Future[ReadSums] | None) -> Callable[[], ReadSums]:
    """``read``'s :class:`~.comparison.ReadSums`: ``made`` elsewhere when given, summed
    here when not or when that failed (the ledger is unchanged by it)."""

    def summed() -> ReadSums:
        if made is not None:
            try:
                return made.result()
            except Exception:  # summing failed there: sum here
                pass
        return read_sums(read)

    return summed


def _rows_of(bridge: EnhancedTokenDatabaseBridge) -> RowsOf:
    """The stored rows of some records' keys: the rows of the keys with a copy in their
    files, then of their message ids not found there (stored from elsewhere or missing)."""

    def rows_of(part: Sequence[LedgerRecord]) -> dict[Key, StoredRow]:
        paths = sorted({r.file_path for r in part})
        stored = query_stored(bridge, ROWS_OF_FILES, {"paths": StringSet(paths)})
        keys = (r.stored_key for r in part)
        left = sorted({mid for mid, rid in keys if (mid, rid) not in stored})
        for i in range(0, len(left), 10_000):
            chunk = left[i : i + 10_000]
            stored.update(query_stored(bridge, ROWS_OF_IDS, {"ids": StringSet(chunk)}))
        with bridge.database.session() as client:
            release_engine_memory(bridge.database, client)
        return stored

    return rows_of


def _empty_totals() -> dict[str, Any]:
    return Sums().totals()


if __name__ == "__main__":
    # The spec's ``python -m context_cleaner.migration.validator`` form of
    # ``context-cleaner validate``: run the program by name (an entry point, not an import,
    # so this layer never depends on the command line above it).
    import runpy

    sys.argv[0] = "python -m context_cleaner.migration.validator"  # its help's name
    sys.argv[1:1] = ["validate"]
    runpy.run_module("context_cleaner", run_name="__main__")

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

``python -m context_cleaner.migration.validator --full-validation --tolerance 0.001``
exits non-zero when validation fails.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.analysis.records import UsageRecord, path_hash, record_version
from context_cleaner.bridge.buckets import TOTALS_SQL as BUCKET_TOTALS
from context_cleaner.bridge.buckets import checked_totals
from context_cleaner.bridge.details import (
    DETAILS_TABLE,
    storage_message_id,
    synthetic_message_id,
)
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge, query_rows
from context_cleaner.bridge.tracking import TRACKING, TrackedFile
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.migration import file_state
from context_cleaner.migration.ledger import Ledger, scan_committed
from context_cleaner.migration.models import SessionVariance, ValidationResult
from context_cleaner.settings import SAMPLE_SIZE, TOLERANCE

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
_FIVE = (
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
)
#: How many differences are listed in a result (all are counted).
MAX_LISTED = 100

Key = tuple[str, str]


class StoredRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One row of ``enhanced_token_details`` under ``FINAL``, and whether rule 4 counts it."""

    ver: int
    file_path: str
    byte_offset: int
    session_id: str
    host: str
    timestamp_ms: int
    tokens: tuple[int, int, int, int, int]
    cost_usd: float
    is_sidechain: bool
    counted: bool

    @property
    def total(self) -> int:
        return sum(self.tokens)


_ROW_COLUMNS = (
    "message_id, request_id, ver, file_path, byte_offset, session_id, host, "
    "toUnixTimestamp64Milli(timestamp), input_tokens, output_tokens, cache_creation_5m_tokens, "
    "cache_creation_1h_tokens, cache_read_tokens, cost_usd, is_sidechain"
)
_REPLAY_IDS = (
    f"(SELECT message_id FROM {DETAILS_TABLE} WHERE NOT is_sidechain AND message_id IN "
    f"(SELECT message_id FROM {DETAILS_TABLE} WHERE is_sidechain))"
)
#: Every stored row (FINAL) and whether rule 4 counts it.
_ALL_ROWS = (
    f"SELECT {_ROW_COLUMNS}, NOT (is_sidechain AND message_id IN {_REPLAY_IDS}) "
    f"FROM {DETAILS_TABLE} FINAL"
)
#: The rows whose keys have a copy in some files (selected by the sorting key, so that
#: FINAL sees every version of a key before it picks one; see bridge/summaries.py).
_ROWS_OF_FILES = (
    f"SELECT {_ROW_COLUMNS}, NOT (is_sidechain AND message_id IN {_REPLAY_IDS}) "
    f"FROM {DETAILS_TABLE} FINAL WHERE message_id IN (SELECT message_id FROM {DETAILS_TABLE} "
    "WHERE file_path IN {paths:Array(String)})"
)
_ROWS_OF_IDS = (
    f"SELECT {_ROW_COLUMNS}, NOT (is_sidechain AND message_id IN {_REPLAY_IDS}) "
    f"FROM {DETAILS_TABLE} FINAL WHERE message_id IN {{ids:Array(String)}}"
)


def _stored(rows: Iterable[Sequence[Any]]) -> dict[Key, StoredRow]:
    return {
        (r[0], r[1]): StoredRow(
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            (r[8], r[9], r[10], r[11], r[12]),
            r[13],
            bool(r[14]),
            bool(r[15]),
        )
        for r in rows
    }


# -- the comparison -----------------------------------------------------------------------


@dataclass(slots=True)
class Sums:
    """Token sums of a set of records, with what they span."""

    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    cost_usd: float = 0.0
    records: int = 0
    files: set[tuple[str, str]] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    oldest_ms: int | None = None
    newest_ms: int | None = None

    @classmethod
    def of_records(cls, records: Sequence[UsageRecord]) -> Sums:
        out = cls()
        out.tokens = [
            sum(r.input_tokens for r in records),
            sum(r.output_tokens for r in records),
            sum(r.cache_creation_5m_tokens for r in records),
            sum(r.cache_creation_1h_tokens for r in records),
            sum(r.cache_read_tokens for r in records),
        ]
        out.records = len(records)
        out.files = {("", r.file_path) for r in records}
        out.sessions = {r.session_id for r in records}
        if records:
            out.oldest_ms = min(r.timestamp_ms for r in records)
            out.newest_ms = max(r.timestamp_ms for r in records)
        return out

    @classmethod
    def of_rows(cls, rows: Sequence[StoredRow]) -> Sums:
        out = cls()
        out.tokens = [sum(r.tokens[i] for r in rows) for i in range(5)]
        out.cost_usd = sum(r.cost_usd for r in rows)
        out.records = len(rows)
        out.files = {(r.host, r.file_path) for r in rows}
        out.sessions = {r.session_id for r in rows}
        if rows:
            out.oldest_ms = min(r.timestamp_ms for r in rows)
            out.newest_ms = max(r.timestamp_ms for r in rows)
        return out

    @property
    def total(self) -> int:
        return sum(self.tokens)

    def totals(self) -> dict[str, Any]:
        inp, out, c5, c1, read = self.tokens
        return {
            "input_tokens": inp,
            "output_tokens": out,
            "cache_creation_tokens": c5 + c1,
            "cache_read_tokens": read,
            "total_tokens": inp + out + c5 + c1 + read,
            "cost_usd": round(self.cost_usd, 10),
            "cache_creation_5m_tokens": c5,
            "cache_creation_1h_tokens": c1,
            "records": self.records,
        }

    def report(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "records": self.records,
            "files": len(self.files),
            "sessions": len(self.sessions),
            "oldest_day": _day(self.oldest_ms),
            "newest_day": _day(self.newest_ms),
        }


def _day(ms: int | None) -> str | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(slots=True)
class Comparison:
    """The outcome of comparing disk records with stored rows, key by key."""

    compared: Sums = field(default_factory=Sums)
    """Records on disk whose stored row is the same record (same tokens, counted alike)."""
    superseded: Sums = field(default_factory=Sums)
    """Records on disk stored from another, preferred copy kept from retained history."""
    retained: dict[str, Sums] = field(default_factory=dict)
    """Stored rows not backed by the bytes compared, by why (``Scope.origin_function``)."""
    source: Sums = field(default_factory=Sums)
    """Every counted record on disk (the fresh analysis' totals)."""
    retained_rows: dict[str, list[StoredRow]] = field(default_factory=dict)
    differences: list[dict[str, Any]] = field(default_factory=list)
    difference_counts: dict[str, int] = field(default_factory=dict)
    variance_tokens: int = 0
    """Sum of |database - disk| tokens over the differing records."""
    signed_variance: int = 0
    unaccounted_tokens: int = 0
    source_sessions: dict[str, list[int]] = field(default_factory=dict)
    """Per session with a difference: [disk tokens, database tokens] of the differing records."""

    def differ(
        self,
        kind: str,
        key: Key,
        record: UsageRecord,
        stored: StoredRow | None,
        disk_counted: bool,
        why: str,
    ) -> None:
        src = record.total_tokens if disk_counted else 0
        dbv = stored.total if stored is not None and stored.counted else 0
        self.difference_counts[kind] = self.difference_counts.get(kind, 0) + 1
        self.variance_tokens += abs(dbv - src)
        self.signed_variance += dbv - src
        session = self.source_sessions.setdefault(record.session_id, [0, 0])
        session[0] += src
        session[1] += dbv
        if len(self.differences) < MAX_LISTED:
            self.differences.append(
                {
                    "kind": kind,
                    "message_id": key[0],
                    "request_id": key[1],
                    "file_path": record.file_path,
                    "line_number": record.line_number,
                    "byte_offset": record.byte_offset,
                    "session_id": record.session_id,
                    "source_tokens": src,
                    "database_tokens": dbv,
                    "detail": why,
                }
            )

    def unaccounted(self, key: Key, row: StoredRow) -> None:
        """A stored row no file tracking accounts for: not retained history, a difference."""
        kind = "unaccounted"
        self.difference_counts[kind] = self.difference_counts.get(kind, 0) + 1
        self.variance_tokens += row.total
        self.signed_variance += row.total
        self.unaccounted_tokens += row.total
        session = self.source_sessions.setdefault(row.session_id, [0, 0])
        session[1] += row.total
        if len(self.differences) < MAX_LISTED:
            self.differences.append(
                {
                    "kind": kind,
                    "message_id": key[0],
                    "request_id": key[1],
                    "file_path": row.file_path,
                    "line_number": None,
                    "byte_offset": row.byte_offset,
                    "session_id": row.session_id,
                    "source_tokens": 0,
                    "database_tokens": row.total,
                    "detail": f"no file tracking of host {row.host!r} lists {row.file_path}: "
                    "the row was written outside context-cleaner, or a run stopped between "
                    "its rows and its commit (then `context-cleaner sync` replays it)",
                }
            )

    def retain(self, origin: str, row: StoredRow) -> None:
        self.retained_rows.setdefault(origin, []).append(row)

    def retained_total(self) -> Sums:
        out = Sums()
        for sums in self.retained.values():
            for i in range(5):
                out.tokens[i] += sums.tokens[i]
            out.cost_usd += sums.cost_usd
            out.records += sums.records
            out.files |= sums.files
            out.sessions |= sums.sessions
            for ms in (sums.oldest_ms, sums.newest_ms):
                if ms is not None:
                    out.oldest_ms = ms if out.oldest_ms is None else min(out.oldest_ms, ms)
                    out.newest_ms = ms if out.newest_ms is None else max(out.newest_ms, ms)
        return out


OriginOf = Any  # Callable[[StoredRow], str]


def compare(
    disk: Ledger,
    stored: dict[Key, StoredRow],
    origin_of: OriginOf,
    *,
    all_rows: bool,
) -> Comparison:
    """Compare ``disk``'s records with the ``stored`` rows, key by key.

    With ``all_rows``, ``stored`` is the whole table and every row not backed by the
    compared bytes is counted as retained (by ``origin_of(row)``); otherwise only the
    disk's keys are looked at.
    """
    out = Comparison()
    records = list(disk.collector.candidates())
    main_ids = {r.message_id for r in records if r.message_id and not r.is_sidechain}
    seen: set[Key] = set()
    source: list[UsageRecord] = []
    compared: list[UsageRecord] = []
    superseded: list[UsageRecord] = []
    for r in records:
        mid = r.message_id or synthetic_message_id(r.file_path, r.byte_offset)
        key = (mid, r.request_id)
        seen.add(key)
        disk_counted = not (r.is_sidechain and r.message_id in main_ids)
        if disk_counted:
            source.append(r)
        row = stored.get(key)
        if row is None:
            out.differ(
                "missing", key, r, None, disk_counted, "no row in the database for this record"
            )
            continue
        tokens = (
            r.input_tokens,
            r.output_tokens,
            r.cache_creation_5m_tokens,
            r.cache_creation_1h_tokens,
            r.cache_read_tokens,
        )
        same_place = row.byte_offset == r.byte_offset and row.file_path == r.file_path
        if same_place and (
            row.tokens != tokens
            or row.is_sidechain != r.is_sidechain
            or row.timestamp_ms != r.timestamp_ms
        ):
            # Another line at the same place: an earlier generation of a rewritten file,
            # when rule 3 prefers it; else the row was changed.
            same_place = _version(r) == row.ver
        if same_place:
            # The stored row is this line's copy: it must say what the line says.
            if (
                row.tokens != tokens
                or row.is_sidechain != r.is_sidechain
                or row.timestamp_ms != r.timestamp_ms
            ):
                out.differ(
                    "altered",
                    key,
                    r,
                    row,
                    disk_counted,
                    f"the row's tokens {list(row.tokens)} differ from the line's {list(tokens)}"
                    if row.tokens != tokens
                    else "the row's time or sidechain flag differs from the line's",
                )
            elif row.counted and not disk_counted:
                out.differ(
                    "altered",
                    key,
                    r,
                    row,
                    disk_counted,
                    "counted in the database, but the transcripts hold its main-chain copy "
                    "(rule 4)",
                )
            elif row.counted == disk_counted:
                if disk_counted:
                    compared.append(r)
            else:  # dropped by rule 4 for a main-chain copy kept from retained history
                superseded.append(r)
            continue
        if row.ver <= _version(r):
            out.differ(
                "stale",
                key,
                r,
                row,
                disk_counted,
                "the database keeps a copy rule 3 ranks below this line (stored from "
                f"{row.file_path} at byte {row.byte_offset})",
            )
            continue
        # Stored from another copy rule 3 prefers (kept from retained history).
        if row.tokens == tokens and row.counted == disk_counted:
            if disk_counted:
                compared.append(r)  # the same numbers: the response is on disk
            continue
        if disk_counted:
            superseded.append(r)
        if row.counted and all_rows:
            _keep(out, key, row, origin_of(row))
    if all_rows:
        for key, row in stored.items():
            if key not in seen and row.counted:
                _keep(out, key, row, origin_of(row))
    out.source = Sums.of_records(source)
    out.compared = Sums.of_records(compared)
    out.superseded = Sums.of_records(superseded)
    out.retained = {k: Sums.of_rows(v) for k, v in out.retained_rows.items()}
    out.retained_rows = {}
    return out


def _version(r: UsageRecord) -> int:
    """Rule 3's rank of a record, as the database stores it (``ver``)."""
    return record_version(
        r.is_sidechain,
        r.total_tokens,
        bool(r.speed),
        r.timestamp_ms,
        path_hash(r.file_path),
        r.byte_offset,
    )


def _keep(out: Comparison, key: Key, row: StoredRow, origin: str) -> None:
    if origin == "unaccounted":
        out.unaccounted(key, row)
    else:
        out.retain(origin, row)


# -- scope: roots, files, origins of rows ----------------------------------------------------


@dataclass(slots=True)
class Scope:
    """The roots compared and the state of each of their files."""

    roots: list[str]
    files: list[file_state.ClassifiedFile]
    tracked: list[TrackedFile]
    host: str
    tracked_anywhere: set[tuple[str, str]] = field(default_factory=set)
    """(host, file path) of every file any host's tracking lists."""

    def origin_function(self) -> OriginOf:
        """Why a stored row is not backed by compared bytes: ``deleted`` (its file is gone),
        ``earlier_generation`` (its file was replaced, truncated or rewritten: an earlier
        content of a path still on disk), ``unreadable`` (its file cannot be read now),
        ``other_root``, ``other_host``; ``unaccounted``
        when no tracking of its host lists its file (not history: a difference)."""
        in_scope = {f.file_path: f.state for f in self.files if f.tracked is not None}
        elsewhere = {t.file_path for t in self.tracked if t.source_root not in self.roots}
        host = self.host

        anywhere = self.tracked_anywhere

        def origin(row: StoredRow) -> str:
            if (row.host, row.file_path) not in anywhere:
                return "unaccounted"
            if row.host != host:
                return "other_host"
            state = in_scope.get(row.file_path)
            if state == file_state.DELETED:
                return "deleted"
            if state == file_state.ERROR:
                return "unreadable"
            if state is not None:
                return "earlier_generation"
            if row.file_path in elsewhere:
                return "other_root"
            return "unaccounted"

        return origin


def scope_of(bridge: EnhancedTokenDatabaseBridge, source_dirs: Sequence[str] | None) -> Scope:
    """The roots asked for (``source_dirs``, else every root this host's tracking names)
    and each of their tracked and new files, classified."""
    tracked = bridge.tracked_files() if bridge.is_initialised() else []
    if source_dirs:
        try:
            roots = [str(r) for r in resolve_roots(source_dirs)]
        except SourceNotFoundError:
            roots = [os.path.abspath(os.path.expanduser(d)) for d in source_dirs]
    else:
        roots = sorted({t.source_root for t in tracked})
        if not roots:
            try:
                roots = [str(r) for r in resolve_roots(None)]
            except SourceNotFoundError:
                roots = []
    present = [Path(r) for r in roots if os.path.isdir(r)]
    found = discover(present) if present else discover([])
    found.roots = [Path(r) for r in roots]
    files = file_state.classify_all(tracked, found)
    anywhere: set[tuple[str, str]] = set()
    if tracked or bridge.is_initialised():
        with bridge.database.session() as client:
            rows = query_rows(client, f"SELECT DISTINCT host, file_path FROM {TRACKING}")
        anywhere = {(h, p) for h, p in rows}
    return Scope(
        roots=roots, files=files, tracked=tracked, host=bridge.host, tracked_anywhere=anywhere
    )


# -- the two validations ---------------------------------------------------------------------


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
        stored = _query_stored(bridge, _ALL_ROWS, {}) if bridge.is_initialised() else {}
        db_totals = bridge.get_migration_totals() if stored else _empty_totals()
        summary_totals = _rollup_totals(bridge) if stored else _empty_totals()
    comparison = compare(disk, stored, scope.origin_function(), all_rows=True)
    db_sessions = {row.session_id for row in stored.values() if row.counted}
    return _result(
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


def _rollup_totals(bridge: EnhancedTokenDatabaseBridge) -> dict[str, Any]:
    """Both rollups' totals: the first that differs from the other fails the summaries check."""
    return checked_totals(bridge.summary_totals(), bridge._query(BUCKET_TOTALS))


def validate_run(
    bridge: EnhancedTokenDatabaseBridge,
    read: Ledger,
    source_dirs: Sequence[str] | None = None,
    *,
    tolerance: float = TOLERANCE,
    database_totals: dict[str, Any] | None = None,
    started_empty: bool = False,
) -> ValidationResult:
    """A migration's built-in validation: the records its readers read (``read``) against the
    rows of the database; no transcript is read again.

    First one aggregate query: the rows stored at the places the run read (under
    ``FINAL``) must be the run's records: same count, token sums per field, sum of byte
    offsets, of times and number of sidechain rows (measured on 500 MB: ~0.03 s against
    ~0.2 s for comparing 26k rows key by key). When any differs (a preferred copy kept
    from elsewhere, or a real difference) every record is compared key by key, which
    says which and why. Only the ranges the run read are compared (earlier runs' ranges
    were checked when they were read); retained history is not measured (``validate``
    measures it). ``database_totals``: the run's own reading of them, when it has one;
    ``started_empty``: the database held no row when the run began.
    """
    started = time.perf_counter()
    paths = sorted({rel for _, rel in read.ranges})
    with bridge.reading():
        if database_totals is None:
            database_totals = bridge.get_migration_totals()
        summary_totals = _rollup_totals(bridge)
        comparison = _same_sums(bridge, read, started_empty) if paths else Comparison()
        if comparison is None:  # the checksums differ: compare key by key to say why
            stored = _query_stored(bridge, _ROWS_OF_FILES, {"paths": paths})
            left = sorted({mid for mid, rid in _keys(read) if (mid, rid) not in stored})
            for i in range(0, len(left), 10_000):
                chunk = left[i : i + 10_000]
                stored.update(_query_stored(bridge, _ROWS_OF_IDS, {"ids": chunk}))
            comparison = compare(read, stored, lambda row: "unknown", all_rows=False)
    scope = Scope(roots=list(source_dirs or []), files=[], tracked=[], host=bridge.host)
    return _result(
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
    "SELECT count(), sum(input_tokens), sum(output_tokens), sum(cache_creation_5m_tokens), "
    "sum(cache_creation_1h_tokens), sum(cache_read_tokens), sum(byte_offset), "
    "sum(toUInt64(toUnixTimestamp64Milli(timestamp))), countIf(is_sidechain) "
    f"FROM {DETAILS_TABLE} FINAL"
)
_SUMS_AT_PLACES = (
    f"{_SUMS} WHERE file_path IN {{paths:Array(String)}} AND byte_offset >= transform(file_path, "
    "{paths:Array(String)}, {starts:Array(UInt64)}, toUInt64(0)) AND byte_offset < "
    "transform(file_path, {paths:Array(String)}, {ends:Array(UInt64)}, toUInt64(0))"
)
"""Checksums of the rows stored at the places (file, byte range) a run read (the filter
applies after FINAL: a key whose preferred copy is elsewhere is not counted here)."""

_U64 = 1 << 64


def _same_sums(
    bridge: EnhancedTokenDatabaseBridge, read: Ledger, whole_table: bool
) -> Comparison | None:
    """The run's records summed as :data:`_SUMS_AT_PLACES` sums the rows at their places
    (``whole_table``: the database was empty before the run, so every row should be the
    run's: the same sums over the table, without binding every path, ~0.1 s on 500 MB);
    a :class:`Comparison` of them all when every sum is equal, else None."""
    by_path: dict[str, tuple[int, int]] = {}
    for (_, rel), (start, end) in read.ranges.items():
        if rel in by_path:  # the same relative path under two roots: compare key by key
            return None
        by_path[rel] = (start, end)
    paths = sorted(by_path)
    params = {
        "paths": paths,
        "starts": [by_path[p][0] for p in paths],
        "ends": [by_path[p][1] for p in paths],
    }
    with bridge.database.session() as client:
        [row] = (
            query_rows(client, _SUMS)
            if whole_table
            else query_rows(client, _SUMS_AT_PLACES, params)
        )
    records = list(read.collector.candidates())
    mine = (
        len(records),
        sum(r.input_tokens for r in records),
        sum(r.output_tokens for r in records),
        sum(r.cache_creation_5m_tokens for r in records),
        sum(r.cache_creation_1h_tokens for r in records),
        sum(r.cache_read_tokens for r in records),
        sum(r.byte_offset for r in records) % _U64,
        sum(r.timestamp_ms % _U64 for r in records) % _U64,
        sum(1 for r in records if r.is_sidechain),
    )
    if tuple(int(v) for v in row) != mine:
        return None
    main_ids = {r.message_id for r in records if r.message_id and not r.is_sidechain}
    counted = [r for r in records if not (r.is_sidechain and r.message_id in main_ids)]
    out = Comparison()
    out.source = out.compared = Sums.of_records(counted)
    return out


def _keys(ledger: Ledger) -> Iterable[Key]:
    for r in ledger.collector.candidates():
        yield (storage_message_id(r), r.request_id)


def _query_stored(
    bridge: EnhancedTokenDatabaseBridge, sql: str, params: dict[str, Any]
) -> dict[Key, StoredRow]:
    with bridge.database.session() as client:
        return _stored(query_rows(client, sql, params))


def _empty_totals() -> dict[str, Any]:
    return Sums().totals()


# -- the result --------------------------------------------------------------------------------


def _result(
    c: Comparison,
    scope: Scope,
    disk: Ledger,
    db_totals: dict[str, Any],
    summary_totals: dict[str, Any],
    *,
    db_sessions: int | None,
    mode: str,
    full_validation: bool,
    sample_size: int,
    tolerance: float,
    seed: int | None,
    started: float,
) -> ValidationResult:
    src_total = c.source.total
    ratio = c.variance_tokens / src_total if src_total else (0.0 if not c.variance_tokens else 1.0)
    summaries_agree = all(db_totals[f] == summary_totals[f] for f in TOKEN_FIELDS)
    n_differences = sum(c.difference_counts.values())
    sessions = c.source.sessions
    mismatched = {d["session_id"] for d in c.differences} | {
        s for s, (a, b) in c.source_sessions.items() if a != b
    }
    mismatches = [
        SessionVariance(s, c.source_sessions[s][0], c.source_sessions[s][1])
        for s in sorted(mismatched)
        if s in c.source_sessions
    ]
    passed = n_differences == 0 and ratio <= tolerance and summaries_agree
    retained_sums = c.retained_total()
    retained = None
    if mode != "this_run":
        retained = {
            **retained_sums.report(),
            "by_origin": {k: v.report() for k, v in sorted(c.retained.items())},
        }
    pending = _pending(scope.files)
    compared = {
        **c.compared.report(),
        "ranges": len(disk.ranges),
        "bytes": disk.bytes,
    }
    superseded = c.superseded.report()
    checked = max(len(sessions), 1)
    score = max(0.0, 1.0 - ratio) * (1.0 - len(mismatches) / max(checked, len(mismatches), 1))
    if n_differences and score == 1.0:
        score = max(0.0, 1.0 - n_differences / max(c.source.records, 1))
    explanations = _explain(
        c, scope, disk, pending, retained, superseded, summaries_agree, mode, n_differences
    )
    return ValidationResult(
        passed=bool(passed),
        tolerance=tolerance,
        full_validation=full_validation,
        source_totals=c.source.totals(),
        database_totals=db_totals,
        token_variance=c.signed_variance,
        variance_ratio=ratio,
        source_sessions=len(c.source.sessions),
        database_sessions=db_sessions if db_sessions is not None else len(c.source.sessions),
        source_files=len(disk.ranges),
        tracked_files=sum(1 for f in scope.files if f.tracked is not None),
        sessions_checked=len(sessions),
        session_mismatches=mismatches[:MAX_LISTED],
        explanations=explanations,
        integrity_score=round(score, 6),
        duration_seconds=time.perf_counter() - started,
        mode=mode,
        roots=list(scope.roots),
        compared=compared,
        retained=retained,
        superseded=superseded,
        pending=pending,
        file_states={k: v for k, v in file_state.counts(scope.files).items() if v},
        differences=c.differences,
        difference_counts=dict(c.difference_counts),
        summaries_agree=summaries_agree,
        summary_totals=summary_totals,
    )


def _pending(files: Sequence[file_state.ClassifiedFile]) -> dict[str, int]:
    out = {
        "files_behind": 0,
        "bytes_behind": 0,
        "files_new": 0,
        "files_unfinished": 0,
        "bytes_unfinished": 0,
        "files_replaced": 0,
        "files_error": 0,
        "files_deleted": 0,
    }
    for f in files:
        if f.state == file_state.BEHIND:
            out["files_behind"] += 1
            out["files_new"] += f.is_new
            out["bytes_behind"] += f.pending_bytes
        elif f.state in (file_state.REPLACED, file_state.TRUNCATED):
            out["files_replaced"] += 1
            out["bytes_behind"] += f.pending_bytes
        elif f.state == file_state.ERROR:
            out["files_error"] += 1
        elif f.state == file_state.DELETED:
            out["files_deleted"] += 1
        if f.unfinished_bytes:
            out["files_unfinished"] += 1
            out["bytes_unfinished"] += f.unfinished_bytes
    return out


_ORIGIN_TEXT = {
    "deleted": "deleted files",
    "earlier_generation": "earlier contents of replaced, truncated or rewritten files",
    "other_root": "folders not validated now",
    "other_host": "other hosts",
    "unreadable": "files that cannot be read now (see `context-cleaner status`)",
}


def _explain(
    c: Comparison,
    scope: Scope,
    disk: Ledger,
    pending: dict[str, int],
    retained: dict[str, Any] | None,
    superseded: dict[str, Any],
    summaries_agree: bool,
    mode: str,
    n_differences: int,
) -> list[str]:
    notes: list[str] = []
    what = "read by this run" if mode == "this_run" else "on disk"
    if not n_differences:
        notes.append(
            f"The {c.compared.records + c.superseded.records:,} record(s) of the "
            f"{len(disk.ranges):,} file range(s) {what} ({disk.bytes:,} bytes) equal a fresh "
            "analysis of the same bytes, to the token."
        )
    on_disk = [d for d in c.differences if d["kind"] != "unaccounted"]
    n_unaccounted = c.difference_counts.get("unaccounted", 0)
    if n_differences - n_unaccounted:
        kinds = ", ".join(
            f"{n:,} {k}" for k, n in sorted(c.difference_counts.items()) if k != "unaccounted"
        )
        first = on_disk[0] if on_disk else c.differences[0]
        notes.append(
            f"{n_differences - n_unaccounted:,} record(s) {what} differ from the database "
            f"({kinds}): first {first['file_path']} line {first['line_number']} (byte "
            f"{first['byte_offset']}, message {first['message_id']}): {first['detail']}. The "
            "database was changed outside context-cleaner or a write was lost. Repair: "
            f"`context-cleaner migrate --force{_source_args(scope.roots)}` reads every file on "
            "disk again and restores their rows (retained history is kept); `validate --json` "
            "lists the records."
        )
    if n_unaccounted:
        rows = [d for d in c.differences if d["kind"] == "unaccounted"]
        sessions = sorted({d["session_id"] for d in rows})
        notes.append(
            f"Unexplained difference of {c.unaccounted_tokens:+,} tokens: {n_unaccounted:,} "
            f"row(s) (sessions {', '.join(sessions[:5])}) come from files no host's "
            f"tracking lists (first {rows[0]['file_path']}, message {rows[0]['message_id']}): "
            "written outside context-cleaner, or a run stopped between its rows and its commit. "
            "Run `context-cleaner sync` (it replays an interrupted commit); if they remain, roll "
            "back to the run before them (`context-cleaner rollback`) or report it with "
            "`validate --json`."
        )
    if retained and retained["records"]:
        parts = ", ".join(
            f"{_ORIGIN_TEXT.get(k, k)}: {v['totals']['total_tokens']:,} tokens in "
            f"{v['files']:,} file(s)"
            for k, v in retained["by_origin"].items()
        )
        notes.append(
            f"Retained history: {retained['totals']['total_tokens']:,} tokens in "
            f"{retained['records']:,} record(s) from {retained['files']:,} file(s) "
            f"({retained['sessions']:,} session(s), {retained['oldest_day']} to "
            f"{retained['newest_day']}) that are not on disk as they were ({parts}). The "
            "database keeps them on purpose; they are not a variance."
        )
    if superseded["records"]:
        notes.append(
            f"{superseded['records']:,} record(s) on disk ({superseded['totals']['total_tokens']:,}"
            " tokens) are stored from another copy of the same response that rule 3 prefers "
            "(kept from retained history): each response is counted once."
        )
    if pending["files_behind"]:
        notes.append(
            f"{pending['files_behind']:,} file(s) ({pending['files_new']:,} new) have "
            f"{pending['bytes_behind']:,} byte(s) of complete lines not yet in the database; "
            "run `context-cleaner sync`."
        )
    if pending["files_replaced"]:
        notes.append(
            f"{pending['files_replaced']:,} file(s) were replaced, truncated or rewritten since "
            "their last sync: their earlier rows are retained history; `context-cleaner sync` "
            "reads the new content."
        )
    if pending["files_unfinished"]:
        notes.append(
            f"{pending['files_unfinished']:,} file(s) end with a last line not finished yet "
            f"({pending['bytes_unfinished']:,} bytes); counted once it ends."
        )
    if pending["files_error"]:
        notes.append(
            f"{pending['files_error']:,} file(s) could not be read or failed their last sync "
            "(`context-cleaner status` says why); `context-cleaner sync` retries them."
        )
    if disk.skipped_lines:
        notes.append(f"{disk.skipped_lines} line(s) could not be counted on either side.")
    if not summaries_agree:
        notes.append(
            "The summary table disagrees with the usage rows (a write or rollback was "
            "interrupted between the two); the usage rows are the record."
        )
    if mode == "this_run" and disk.errors:
        notes.append(f"{len(disk.errors)} file(s) could not be read by this run.")
    return notes


def _source_args(roots: Sequence[str]) -> str:
    import shlex

    return "".join(f" --source-dir {shlex.quote(r)}" for r in roots)


if __name__ == "__main__":
    # The spec's ``python -m context_cleaner.migration.validator`` form of
    # ``context-cleaner validate``: run the program by name (an entry point, not an import,
    # so this layer never depends on the command line above it).
    import runpy

    sys.argv[1:1] = ["validate"]
    runpy.run_module("context_cleaner", run_name="__main__", alter_sys=True)

"""The comparison at the heart of validation: disk records against stored rows, key by key.

Each record of the bytes compared is looked up by its key (rule 2) among the stored
rows and lands in one of these (see :mod:`.validator` for why):

- ``compared``: the stored row is this record, or another copy with the same numbers;
- ``superseded``: stored from another copy that rule 3 prefers, kept from retained
  history (counted once: not a variance);
- a difference: ``missing`` (no row), ``altered`` (the row at the record's place says
  something else), ``stale`` (the stored copy is one rule 3 ranks below the record).

With every stored row given, the rows that no compared byte backs are retained history,
summed by why (their origin, :mod:`.retained_history`), or ``unaccounted`` when no file
tracking explains them (a difference). :class:`Sums` are the token sums reported for
each part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import compress, repeat
from typing import Any, NamedTuple

from context_cleaner.analysis.fields import totals
from context_cleaner.migration.ledger import FIELD, Ledger, LedgerRecord
from context_cleaner.migration.stored_rows import Key, StoredRow

#: How many differences are listed in a result (all are counted).
MAX_LISTED = 100

OriginOf = Callable[[StoredRow], str]
"""Why a stored row not backed by compared bytes is kept (``Scope.origin_function``)."""


def add_counts(tokens: list[int], r: LedgerRecord) -> None:
    """Add ``r``'s five token counts to ``tokens`` (in ``STORED_TOKEN_FIELDS`` order)."""
    tokens[0] += r.input_tokens
    tokens[1] += r.output_tokens
    tokens[2] += r.cache_creation_5m_tokens
    tokens[3] += r.cache_creation_1h_tokens
    tokens[4] += r.cache_read_tokens


_COUNTS_AT = tuple(
    FIELD[name]
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_creation_5m_tokens",
        "cache_creation_1h_tokens",
        "cache_read_tokens",
    )
)
_PATH_AT, _SESSION_AT, _MESSAGE_AT = FIELD["file_path"], FIELD["session_id"], FIELD["message_id"]
_OFFSET_AT, _TIME_AT, _SIDECHAIN_AT = (
    FIELD["byte_offset"],
    FIELD["timestamp_ms"],
    FIELD["is_sidechain"],
)
U64 = 1 << 64
"""The engine sums the byte offsets and times of the rows modulo 2**64 (``UInt64``)."""

Columns = Sequence[Sequence[Any]]
"""Records as columns, :class:`LedgerRecord`'s fields in order (:meth:`Ledger.columns`)."""


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

    def add_record(self, r: LedgerRecord) -> None:
        """Count ``r`` in (a ledger's records are summed as they are decoded)."""
        add_counts(self.tokens, r)
        self.records += 1
        self.files.add(("", r.file_path))
        self.sessions.add(r.session_id)
        ms = r.timestamp_ms
        self.oldest_ms = ms if self.oldest_ms is None else min(self.oldest_ms, ms)
        self.newest_ms = ms if self.newest_ms is None else max(self.newest_ms, ms)

    def add_columns(self, columns: Columns) -> None:
        """:meth:`add_record` of each record of ``columns``, summed a column at a time (a
        third of the time of a loop over record objects)."""
        times = columns[_TIME_AT]
        if not times:
            return
        for i, at in enumerate(_COUNTS_AT):
            self.tokens[i] += sum(columns[at])
        self.records += len(times)
        self.files.update(zip(repeat(""), columns[_PATH_AT]))
        self.sessions.update(columns[_SESSION_AT])
        oldest, newest = min(times), max(times)
        self.oldest_ms = oldest if self.oldest_ms is None else min(self.oldest_ms, oldest)
        self.newest_ms = newest if self.newest_ms is None else max(self.newest_ms, newest)

    @classmethod
    def of_rows(cls, rows: Sequence[StoredRow]) -> Sums:
        tokens = [sum(r.tokens[i] for r in rows) for i in range(5)]
        times = [r.timestamp_ms for r in rows]
        return cls(
            tokens,
            sum(r.cost_usd for r in rows),
            len(rows),
            {(r.host, r.file_path) for r in rows},
            {r.session_id for r in rows},
            min(times, default=None),
            max(times, default=None),
        )

    @property
    def total(self) -> int:
        return sum(self.tokens)

    def totals(self) -> dict[str, Any]:
        return totals(self.tokens, self.cost_usd, self.records)

    def report(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "records": self.records,
            "files": len(self.files),
            "sessions": len(self.sessions),
            "oldest_day": _day(self.oldest_ms),
            "newest_day": _day(self.newest_ms),
        }

    def add(self, other: Sums) -> None:
        """Fold ``other`` in."""
        for i in range(5):
            self.tokens[i] += other.tokens[i]
        self.cost_usd += other.cost_usd
        self.records += other.records
        self.files |= other.files
        self.sessions |= other.sessions
        for ms in (other.oldest_ms, other.newest_ms):
            if ms is not None:
                self.oldest_ms = ms if self.oldest_ms is None else min(self.oldest_ms, ms)
                self.newest_ms = ms if self.newest_ms is None else max(self.newest_ms, ms)


class ReadSums(NamedTuple):
    """A ledger's records summed as the database sums its rows (``validator._SUMS``), and
    their counted part's :class:`Sums` (rules 3 and 4 applied)."""

    checksums: tuple[int, ...]
    """Records, the five token counts, byte offsets and times (both modulo 2**64, as the
    engine sums them), sidechain records."""
    counted: Sums


def read_sums(read: Ledger) -> ReadSums:
    """:class:`ReadSums` of ``read``: each blob of records decoded once as rows (and once
    more when rule 3 looks into it), summed a column at a time; the ledger's ranges are
    summarised first (:meth:`Ledger.summarise`), before the records are decoded.

    It only reads the ledger: a migration has it made on a thread while it rebuilds the
    rollups (``MigrationRun.execute``); the ledger's cached answers (its ranges' summary,
    rule 3's losers, rule 4's replays) are made whole before they are kept, so another
    thread reading it meanwhile at most makes them twice."""
    read.summarise()  # made and kept here, off the run's thread
    replayed = read.replayed()
    counted = Sums()
    n = offsets = times = sidechains = 0
    tokens = [0, 0, 0, 0, 0]
    for columns in read.columns():
        n += len(columns[0])
        for i, at in enumerate(_COUNTS_AT):
            tokens[i] += sum(columns[at])
        offsets += sum(columns[_OFFSET_AT])
        times += sum(columns[_TIME_AT])
        side = sum(columns[_SIDECHAIN_AT])
        sidechains += side
        if side and replayed:  # rule 4: a replayed sidechain copy is not counted
            keep = [
                not (sidechain and message in replayed)
                for sidechain, message in zip(
                    columns[_SIDECHAIN_AT], columns[_MESSAGE_AT], strict=True
                )
            ]
            columns = [list(compress(column, keep)) for column in columns]
        counted.add_columns(columns)
    checksums = (n, *tokens, offsets % U64, times % U64, sidechains)
    return ReadSums(checksums, counted)


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
        record: LedgerRecord,
        stored: StoredRow | None,
        disk_counted: bool,
        why: str,
    ) -> None:
        src = record.total_tokens if disk_counted else 0
        dbv = stored.total if stored is not None and stored.counted else 0
        at = (record.file_path, record.line_number, record.byte_offset, record.session_id)
        self._count(kind, key, at, src, dbv, why)

    def unaccounted(self, key: Key, row: StoredRow) -> None:
        """A stored row no file tracking accounts for: not retained history, a difference."""
        self.unaccounted_tokens += row.total
        why = (
            f"no file tracking of host {row.host!r} lists {row.file_path}: the row was "
            "written outside context-cleaner, or a run stopped between its rows and its "
            "commit (then `context-cleaner sync` replays it)"
        )
        at = (row.file_path, None, row.byte_offset, row.session_id)
        self._count("unaccounted", key, at, 0, row.total, why)

    def _count(
        self,
        kind: str,
        key: Key,
        at: tuple[str, int | None, int, str],
        src: int,
        dbv: int,
        why: str,
    ) -> None:
        """Count a difference of ``src`` disk and ``dbv`` database tokens; list the first
        :data:`MAX_LISTED` (``at``: file path, line number, byte offset, session)."""
        file_path, line_number, byte_offset, session_id = at
        self.difference_counts[kind] = self.difference_counts.get(kind, 0) + 1
        self.variance_tokens += abs(dbv - src)
        self.signed_variance += dbv - src
        session = self.source_sessions.setdefault(session_id, [0, 0])
        session[0] += src
        session[1] += dbv
        if len(self.differences) < MAX_LISTED:
            self.differences.append(
                {
                    "kind": kind,
                    "message_id": key[0],
                    "request_id": key[1],
                    "file_path": file_path,
                    "line_number": line_number,
                    "byte_offset": byte_offset,
                    "session_id": session_id,
                    "source_tokens": src,
                    "database_tokens": dbv,
                    "detail": why,
                }
            )

    def retain(self, origin: str, row: StoredRow) -> None:
        self.retained_rows.setdefault(origin, []).append(row)

    def retained_total(self) -> Sums:
        out = Sums()
        for sums in self.retained.values():
            out.add(sums)
        return out


PART_RECORDS = 2_000
"""How many records are compared at once, with the stored rows of their keys: what a
key-by-key comparison holds does not grow with the run. Each part's statement costs the
engine ~25 MiB for a moment whatever its size (released after it); the rows ~0.7 KiB
each."""

RowsOf = Callable[[Sequence[LedgerRecord]], Mapping[Key, StoredRow]]
"""The stored rows of (at least) the keys of some records."""


def compare(
    disk: Ledger,
    rows_of: RowsOf,
    origin_of: OriginOf,
    *,
    every_row: Mapping[Key, StoredRow] | None = None,
) -> Comparison:
    """Compare ``disk``'s records with the stored rows, key by key, :data:`PART_RECORDS`
    records at a time (``rows_of(part)``: the stored rows of the part's keys).

    With ``every_row`` (the whole table), every row not backed by the compared bytes is
    counted as retained (by ``origin_of(row)``); otherwise only the disk's keys are
    looked at.
    """
    out = Comparison()
    replayed = disk.replayed()
    seen: set[Key] = set()
    source, compared, superseded = Sums(), Sums(), Sums()
    for part in disk.parts(PART_RECORDS):
        stored = rows_of(part)
        for r in part:
            key = r.stored_key
            if every_row is not None:
                seen.add(key)
            disk_counted = not (r.is_sidechain and r.message_id in replayed)
            if disk_counted:
                source.add_record(r)
            row = stored.get(key)
            if row is None:
                out.differ(
                    "missing", key, r, None, disk_counted, "no row in the database for this record"
                )
                continue
            tokens = r.tokens
            same_line = (
                row.tokens == tokens
                and row.is_sidechain == r.is_sidechain
                and row.timestamp_ms == r.timestamp_ms
            )
            same_place = row.byte_offset == r.byte_offset and row.file_path == r.file_path
            if same_place and not same_line:
                # Another line at the same place: an earlier generation of a rewritten file,
                # when rule 3 prefers it; else the row was changed.
                same_place = r.version == row.ver
            if same_place:
                # The stored row is this line's copy: it must say what the line says.
                if not same_line:
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
                        compared.add_record(r)
                else:  # dropped by rule 4 for a main-chain copy kept from retained history
                    superseded.add_record(r)
                continue
            if row.ver <= r.version:
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
                    compared.add_record(r)  # the same numbers: the response is on disk
                continue
            if disk_counted:
                superseded.add_record(r)
            if row.counted and every_row is not None:
                _keep(out, key, row, origin_of(row))
    if every_row is not None:
        for key, row in every_row.items():
            if key not in seen and row.counted:
                _keep(out, key, row, origin_of(row))
    out.source, out.compared, out.superseded = source, compared, superseded
    out.retained = {k: Sums.of_rows(v) for k, v in out.retained_rows.items()}
    out.retained_rows = {}
    return out


def _keep(out: Comparison, key: Key, row: StoredRow, origin: str) -> None:
    if origin == "unaccounted":
        out.unaccounted(key, row)
    else:
        out.retain(origin, row)

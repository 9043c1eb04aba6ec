"""What validation compares the database with: the records of byte ranges on disk.

Two ways to get them (both end in a :class:`Ledger`: the preferred record per key,
rule 3, of the ranges read, and which ranges those were):

- :func:`scan_committed` reads the committed part ``[0, committed offset)`` of
  each file again (``validate``): a fresh analysis of exactly the bytes the
  database says it holds;
- a migration keeps what its own readers already read (:data:`RUN_LEDGER`, filled
  by the pipeline as it commits each unit), so its built-in validation reads no
  file a second time.

Memory: a ledger keeps of each record only what validation compares or names
(:class:`LedgerRecord`: key, file, session, line, byte offset, time, sidechain flag,
speed, the five token counts; no model, project or cost), packed: LZ4-compressed
msgpack, 2,000 records a blob, with each unit's file ranges, and an 8-byte hash of each
record's key. On 20,000 small files (60,000 records) that is ~5.8 MiB (~100 bytes a
record) where full records held ~45 MiB. Rule 3 across units (a response copied into
files read by different units) is applied when the records are read back
(:meth:`Ledger.parts`), which decodes one unit at a time: what validation holds at
once is one unit's records, not the run's.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from itertools import groupby, islice
from operator import attrgetter
from typing import Any, NamedTuple

import lz4.block
import msgspec

from context_cleaner.analysis.dedup import UsageCollector
from context_cleaner.analysis.discovery import TranscriptFile
from context_cleaner.analysis.processes import worker_pool
from context_cleaner.analysis.records import TokenCounts, UsageRecord
from context_cleaner.analysis.scan import (
    PARALLEL_MIN_BYTES,
    FileStats,
    ScanResult,
    SkipLog,
    decode_scan,
    encode_scan,
    scan_file,
    split_by_size,
)
from context_cleaner.bridge import synthetic_message_id

#: A file and where its compared range ends (it starts at 0).
Prefix = tuple[TranscriptFile, int]

#: (root, relative path, first byte, end) of a range read.
Range = tuple[str, str, int, int]


class LedgerRecord(msgspec.Struct, TokenCounts, array_like=True, frozen=True, gc=False):
    """What validation compares of a record, and what names it in a difference."""

    message_id: str
    request_id: str
    session_id: str
    file_path: str
    line_number: int
    byte_offset: int
    timestamp_ms: int
    is_sidechain: bool
    speed: str
    input_tokens: int
    output_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    cache_read_tokens: int

    @classmethod
    def of(cls, r: UsageRecord) -> LedgerRecord:
        return cls(*_FIELDS(r))

    @property
    def tokens(self) -> tuple[int, int, int, int, int]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_5m_tokens,
            self.cache_creation_1h_tokens,
            self.cache_read_tokens,
        )

    @property
    def stored_key(self) -> tuple[str, str]:
        """Rule 2's key as the database stores it (a synthetic id when it has no message id)."""
        mid = self.message_id or synthetic_message_id(self.file_path, self.byte_offset)
        return (mid, self.request_id)

    # Rule 3 as a number (the larger version is kept), from the same fields as a
    # UsageRecord's: its own properties.
    has_speed = UsageRecord.has_speed
    version = UsageRecord.version


#: A :class:`UsageRecord`'s fields that make its :class:`LedgerRecord` (read in C).
_FIELDS = attrgetter(*LedgerRecord.__struct_fields__)

#: The position of each of :class:`LedgerRecord`'s fields in its row (:meth:`Ledger.columns`).
FIELD = {name: i for i, name in enumerate(LedgerRecord.__struct_fields__)}

_ENCODER = msgspec.msgpack.Encoder()
_RECORDS = msgspec.msgpack.Decoder(list[LedgerRecord])
_ROWS = msgspec.msgpack.Decoder(list[tuple])
_RANGES = msgspec.msgpack.Decoder(list[tuple[str, str, int, int]])
_CHUNK = 2_000
"""Records packed in one blob."""
_SORTED_AT_ONCE = 250_000
"""Key hashes sorted at once to find those repeated across units."""
_UNKEYED = -1
"""The key hash of a record without message id (never de-duplicated); ``hash()`` never
returns -1."""


def _pack(value: object) -> bytes:
    """``value`` as compressed msgpack (LZ4: ~1 ms for 6,000 records, 2.2x smaller; zlib
    was 2.7x smaller but took 16 ms: a quarter of a second of a 60,000-record run)."""
    return lz4.block.compress(_ENCODER.encode(value))


class _Unit(NamedTuple):
    """One :meth:`Ledger.add` as kept: compressed msgpack of its ranges and records."""

    ranges: bytes
    records: tuple[bytes, ...]
    """Its records, :data:`_CHUNK` a blob."""
    first: int
    """The position of its first record's key hash in ``Ledger._hashes``."""
    sidechains: bool
    """It holds sidechain records (what rule 4 looks at)."""
    chunk: int
    """Records a blob (:data:`_CHUNK` when it was packed; the last blob may hold fewer)."""

    def blob(self, index: int) -> list[LedgerRecord]:
        return _RECORDS.decode(lz4.block.decompress(self.records[index]))

    def decode(self) -> list[LedgerRecord]:
        out: list[LedgerRecord] = []
        for blob in self.records:
            out.extend(_RECORDS.decode(lz4.block.decompress(blob)))
        return out


class Ledger:
    """Records read from byte ranges (rule 3 applied when read back), and the ranges."""

    __slots__ = (
        "_hashes",
        "_lock",
        "_losers",
        "_ranged",
        "_replayed",
        "_summary",
        "_units",
        "errors",
        "skipped_lines",
    )

    def __init__(self) -> None:
        self._units: list[_Unit] = []
        self._hashes = array("q")
        """Each record's hash of its key (:data:`_UNKEYED` without one), in order."""
        self.skipped_lines = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._losers: set[int] | None = None
        self._replayed: set[str] | None = None
        self._summary: tuple[int, int, bool] | None = None
        self._ranged = False

    def add(self, scan: ScanResult) -> None:
        """Fold in a scan (thread-safe: batch tasks may commit from several threads)."""
        ranges: list[Range] = []
        errors: list[str] = []
        for s in scan.files:
            if s.error:
                errors.append(f"{s.path}: {s.error}")
            elif s.end_offset > s.start_offset:
                ranges.append((_root_of(s), s.relative_path, s.start_offset, s.end_offset))
        records = list(scan.collector.candidates())
        keyed = (hash((r.message_id, r.request_id)) if r.message_id else _UNKEYED for r in records)
        hashes = array("q", keyed)
        # Packed a chunk at a time: what this holds for a moment stays small beside the
        # unit being committed.
        chunks = tuple(
            _pack(list(map(_FIELDS, records[i : i + _CHUNK])))
            for i in range(0, len(records), _CHUNK)
        )
        packed = _pack(ranges)
        sidechains = any(r.is_sidechain for r in records)
        with self._lock:
            if ranges or records:
                unit = _Unit(packed, chunks, len(self._hashes), sidechains, _CHUNK)
                self._units.append(unit)
                self._hashes.extend(hashes)
            self._ranged = self._ranged or bool(ranges)
            self.skipped_lines += scan.skips.total
            self.errors.extend(errors)
            self._losers = self._replayed = self._summary = None

    @property
    def held_bytes(self) -> int:
        """The size of what the ledger keeps (packed units and key hashes)."""
        packed = sum(len(u.ranges) + sum(map(len, u.records)) for u in self._units)
        return packed + self._hashes.itemsize * len(self._hashes)

    # -- the ranges ----------------------------------------------------------------------------

    @property
    def ranges(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(root, relative path) -> (first, end) byte read, a union of the ranges (built
        on each call)."""
        out: dict[tuple[str, str], tuple[int, int]] = {}
        roots: dict[str, str] = {}
        for unit in self._units:
            for root, rel, start, end in _RANGES.decode(lz4.block.decompress(unit.ranges)):
                key = (roots.setdefault(root, root), rel)
                old = out.get(key)
                if old is not None:
                    start, end = min(start, old[0]), max(end, old[1])
                out[key] = (start, end)
        return out

    def summarise(self) -> tuple[int, int, bool]:
        """Files read, the bytes they span, and whether no relative path was read under two
        roots: from one decoding of the ranges, kept (another thread may ask first:
        ``comparison.read_sums``)."""
        if self._summary is None:
            ranges = self.ranges
            spanned = sum(end - start for start, end in ranges.values())
            unique = len({rel for _, rel in ranges}) == len(ranges)
            self._summary = (len(ranges), spanned, unique)
        return self._summary

    @property
    def has_ranges(self) -> bool:
        """Whether any range was read (``range_count`` > 0, without decoding them)."""
        return self._ranged

    @property
    def paths_unique(self) -> bool:
        """No relative path was read under two roots."""
        return self.summarise()[2]

    @property
    def range_count(self) -> int:
        """How many files' ranges (a file read in several units counts once)."""
        return self.summarise()[0]

    @property
    def bytes(self) -> int:
        return self.summarise()[1]

    # -- the records ---------------------------------------------------------------------------

    def parts(self, size: int = 0) -> Iterator[list[LedgerRecord]]:
        """The records, rule 3 applied across units: lists of ``size`` records (the last may
        hold fewer), or one a unit when ``size`` is 0. One unit is decoded at a time."""
        losers = self._losing()
        for unit in self._units:
            records = unit.decode()
            if losers:
                first = unit.first
                records = [r for i, r in enumerate(records, first) if i not in losers]
            if not size:
                yield records
                continue
            for i in range(0, len(records), size):
                yield records[i : i + size]

    def _rows(self, units: Sequence[_Unit] | None = None) -> Iterator[tuple[int, list[Any]]]:
        """Each blob of ``units`` (default: all) as rows in :data:`FIELD` order, with its
        first record's position: one blob decoded at a time, no object per record."""
        for unit in self._units if units is None else units:
            first = unit.first
            for blob in unit.records:
                rows = _ROWS.decode(lz4.block.decompress(blob))
                yield first, rows
                first += len(rows)

    def columns(self) -> Iterator[tuple[tuple[Any, ...], ...]]:
        """The records as columns (:data:`FIELD` gives each field's), a blob of
        :data:`_CHUNK` records at a time, rule 3 applied across units: what summing them
        needs, without an object per record."""
        losers = self._losing()
        for first, rows in self._rows():
            if losers:
                rows = [r for i, r in enumerate(rows, first) if i not in losers]
            if rows:
                yield tuple(zip(*rows, strict=True))

    def records(self) -> Iterator[LedgerRecord]:
        """The records, rule 3 applied across units (the preferred copy of each key)."""
        for part in self.parts():
            yield from part

    def replayed(self) -> set[str]:
        """The message ids rule 4 drops the sidechain copies of: those with a main-chain
        record (looked for only when there are sidechain records; a blob at a time)."""
        if self._replayed is None:
            losers = self._losing()
            mid, sidechain = FIELD["message_id"], FIELD["is_sidechain"]
            with_sidechains = [u for u in self._units if u.sidechains]
            side = {
                r[mid]
                for first, rows in self._rows(with_sidechains)
                for i, r in enumerate(rows, first)
                if r[sidechain] and r[mid] and i not in losers
            }
            replayed: set[str] = set()
            for first, rows in self._rows() if side else ():
                replayed.update(
                    r[mid]
                    for i, r in enumerate(rows, first)
                    if not r[sidechain] and r[mid] in side and i not in losers
                )
            self._replayed = replayed
        return self._replayed

    def _losing(self) -> set[int]:
        """The positions of the records another unit holds a preferred copy of (rule 3).

        Keys repeated across units are found by their hashes, sorted for a moment (at most
        :data:`_SORTED_AT_ONCE` of them: ~40 bytes each); only the units holding those
        hashes are decoded, and their records compared by key."""
        if self._losers is not None:
            return self._losers
        hashes = self._hashes
        groups = max(1, len(hashes) // _SORTED_AT_ONCE)
        if groups == 1:  # no key repeated (the usual case): said by a set, no sort
            unkeyed = hashes.count(_UNKEYED)
            if len(set(hashes)) == len(hashes) - max(unkeyed - 1, 0):
                self._losers = set()
                return self._losers
        repeated: set[int] = set()
        for group in range(groups):
            some = (h for h in hashes if h % groups == group)
            ordered = sorted(hashes if groups == 1 else some)
            pairs = zip(ordered, islice(ordered, 1, None), strict=False)
            repeated.update(a for a, b in pairs if a == b and a != _UNKEYED)
            del ordered, pairs
        losers: set[int] = set()
        best: dict[tuple[str, str], tuple[int, int]] = {}
        firsts = [u.first for u in self._units]
        units = self._units

        def blob_of(i: int) -> tuple[int, int]:
            # The unit holding position i is the last whose first position is at most i (a
            # unit without records shares its first position with the next one).
            held_by = bisect_right(firsts, i) - 1
            unit = units[held_by]
            return held_by, (i - unit.first) // unit.chunk

        at = [i for i, h in enumerate(hashes) if h in repeated]  # ascending
        for (held_by, index), positions in groupby(at, key=blob_of):
            unit = units[held_by]  # one blob decoded at a time: what this holds stays small
            records = unit.blob(index)
            start = unit.first + index * unit.chunk
            for i in positions:
                r = records[i - start]
                key = (r.message_id, r.request_id)
                version, held = r.version, best.get(key)
                if held is None or version > held[0]:  # the first of equals stays
                    if held is not None:
                        losers.add(held[1])
                    best[key] = (version, i)
                else:
                    losers.add(i)
        self._losers = losers
        return losers


def _root_of(s: FileStats) -> str:
    rel = s.relative_path
    if s.path.endswith("/" + rel):  # (a stored name may hold a backslash: \\xNN)
        return s.path[: -len(rel) - 1]
    path = s.path.replace("\\", "/")
    return s.path[: -len(rel) - 1] if path.endswith("/" + rel) else s.path


RUN_LEDGER: ContextVar[Ledger | None] = ContextVar("run_ledger", default=None)
"""Set by a migration for its validation: every unit it commits is added (pipeline)."""


def note_committed(scan: ScanResult) -> None:
    """Called by the pipeline for each committed unit: adds it to the run's ledger, if any."""
    ledger = RUN_LEDGER.get()
    if ledger is not None:
        ledger.add(scan)


# -- reading the committed ranges again ------------------------------------------------------


def _scan_prefixes(prefixes: Sequence[Prefix]) -> ScanResult:
    collector = UsageCollector()
    skips = SkipLog()
    stats = [
        scan_file(f, collector.add, skips, start_offset=0, start_line=1, stop_at=stop)
        for f, stop in prefixes
    ]
    return ScanResult(collector, stats, skips)


def _scan_prefixes_encoded(prefixes: Sequence[Prefix]) -> bytes:
    """Worker entry point (spawned processes import this module only)."""
    return encode_scan(_scan_prefixes(prefixes))


def scan_committed(prefixes: Sequence[Prefix], *, workers: int = 2) -> Ledger:
    """A fresh analysis of ``[0, stop)`` of each file (several processes when large).

    Workers are spawned, never forked: the caller may hold the embedded engine.
    """
    prefixes = [(f, stop) for f, stop in prefixes if stop > 0]
    total = sum(stop for _, stop in prefixes)
    ledger = Ledger()
    if workers <= 1 or total < PARALLEL_MIN_BYTES or len(prefixes) < 2:
        ledger.add(_scan_prefixes(prefixes))
        return ledger
    stops = {id(f): stop for f, stop in prefixes}
    groups = split_by_size([f for f, _ in prefixes], min(len(prefixes), workers * 4))
    with worker_pool(workers, "spawn") as pool:
        futures = [
            pool.submit(_scan_prefixes_encoded, [(f, stops[id(f)]) for f in g]) for g in groups
        ]
        for future in futures:  # each group a unit: rule 3 across them applies when read
            ledger.add(decode_scan(future.result()))
    return ledger

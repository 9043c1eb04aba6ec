"""De-duplication (DESIGN §3 rules 2-4): one record per response, whatever the order.

Claude Code writes one line per content block of a response, each repeating
the response's usage; early lines carry a partial ``output_tokens``. The
collector keeps, per key ``(message.id, requestId)``, the record rule 3 prefers,
so feeding it lines in any order, in any number of batches or processes, ends
in the same set of records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from context_cleaner.analysis.records import UsageRecord, path_hash
from context_cleaner.analysis.sums import RunningSum


def preferred(a: UsageRecord, b: UsageRecord) -> UsageRecord:
    """Rule 3: of two records with one key, the one to keep.

    Non-sidechain over sidechain, then the larger token total, then the one
    that has ``speed``, then the earliest (timestamp, file path hash, byte offset).
    Equivalent to comparing ``UsageRecord.version`` but cheaper on the hot path.
    """
    if a.is_sidechain != b.is_sidechain:
        return b if a.is_sidechain else a
    ta, tb = a.total_tokens, b.total_tokens
    if ta != tb:
        return a if ta > tb else b
    if a.has_speed != b.has_speed:
        return a if a.has_speed else b
    if a.timestamp_ms != b.timestamp_ms:
        return a if a.timestamp_ms < b.timestamp_ms else b
    if a.file_path != b.file_path:
        return a if path_hash(a.file_path) < path_hash(b.file_path) else b
    return a if a.byte_offset <= b.byte_offset else b


class UsageCollector:
    """Keeps the preferred record per key; memory grows with distinct responses only."""

    __slots__ = ("_best", "_unkeyed", "raw")

    def __init__(self) -> None:
        self._best: dict[tuple[str, str], UsageRecord] = {}
        self._unkeyed: list[UsageRecord] = []
        self.raw = RunningSum()
        """Every usage line summed without de-duplication: the count the original tool showed."""

    def add(self, record: UsageRecord) -> None:
        """Count ``record`` in the every-line sum (:attr:`raw`) and :meth:`keep` it."""
        self.raw.add_record(record)
        self.keep(record)

    def keep(self, record: UsageRecord) -> None:
        """Keep ``record`` if rule 3 prefers it, without adding it to :attr:`raw`: what a
        migration's readers do (only the analysis reports the every-line sum; with the
        SHA-256 head hash, leaving it out took ~3% off the readers' CPU on many small
        files, docs/benchmarks.md)."""
        if not record.message_id:
            self._unkeyed.append(record)  # rule 2: never de-duplicated
            return
        key = (record.message_id, record.request_id)
        current = self._best.get(key)
        if current is None:
            self._best[key] = record
        elif current is not record:
            self._best[key] = preferred(current, record)

    def add_all(self, records: Iterable[UsageRecord]) -> None:
        for record in records:
            self.add(record)

    def merge(self, other: UsageCollector) -> None:
        """Fold another collector in (raw sums add; kept records compete by rule 3)."""
        self.raw.add_sum(other.raw)
        self._unkeyed.extend(other._unkeyed)
        best = self._best
        for key, record in other._best.items():
            current = best.get(key)
            best[key] = record if current is None else preferred(current, record)

    def candidates(self) -> Iterator[UsageRecord]:
        """Every kept record before rule 4 (what a partial batch hands on)."""
        yield from self._best.values()
        yield from self._unkeyed

    def __len__(self) -> int:
        return len(self._best) + len(self._unkeyed)

    def records(self) -> list[UsageRecord]:
        """The counted records: rule 3 applied, then rule 4 (sidechain replays dropped)."""
        main_ids = {r.message_id for r in self._best.values() if not r.is_sidechain}
        kept = [r for r in self._best.values() if not (r.is_sidechain and r.message_id in main_ids)]
        kept.extend(self._unkeyed)
        return kept

    def replays_dropped(self) -> int:
        """How many kept sidechain records rule 4 removes."""
        main_ids = {r.message_id for r in self._best.values() if not r.is_sidechain}
        return sum(1 for r in self._best.values() if r.is_sidechain and r.message_id in main_ids)

    # -- passing a collector between processes --------------------------------------

    def to_bytes(self) -> bytes:
        """The collector as msgpack; strings shared by many records are sent once."""
        table: dict[str, int] = {}
        # dict.setdefault (a C call) is each string's index: the one it has, or the next.
        ref = table.setdefault

        def rows(records: Iterable[UsageRecord]) -> list[tuple[object, ...]]:
            return [
                (
                    r.message_id,
                    r.request_id,
                    ref(r.session_id, len(table)),
                    ref(r.line_session_id, len(table)),
                    ref(r.project, len(table)),
                    ref(r.file_path, len(table)),
                    r.line_number,
                    r.byte_offset,
                    r.timestamp_ms,
                    ref(r.model, len(table)),
                    r.is_sidechain,
                    ref(r.speed, len(table)),
                    r.from_progress,
                    r.input_tokens,
                    r.output_tokens,
                    r.cache_creation_5m_tokens,
                    r.cache_creation_1h_tokens,
                    r.cache_read_tokens,
                    r.cost_usd,
                )
                for r in records
            ]

        best, unkeyed = rows(self._best.values()), rows(self._unkeyed)
        return _ENCODER.encode((list(table), best, unkeyed, self.raw))

    @classmethod
    def from_bytes(cls, data: bytes) -> UsageCollector:
        s, best, unkeyed, raw = _DECODER.decode(data)  # s: the string table

        def build(rows: list[list[Any]]) -> Iterator[UsageRecord]:
            # One generator, each row unpacked and its string fields looked up inline (in
            # to_bytes' order): ~20% cheaper than a loop over the string fields per row.
            return (
                UsageRecord(
                    m,
                    q,
                    s[se],
                    s[ls],
                    s[pr],
                    s[fp],
                    n,
                    o,
                    t,
                    s[mo],
                    sc,
                    s[sp],
                    g,
                    i,
                    x,
                    c5,
                    c1,
                    cr,
                    c,
                )
                for m, q, se, ls, pr, fp, n, o, t, mo, sc, sp, g, i, x, c5, c1, cr, c in rows
            )

        collector = cls()
        collector._best = {(r.message_id, r.request_id): r for r in build(best)}
        collector._unkeyed = list(build(unkeyed))
        collector.raw = raw
        return collector


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(tuple[list[str], list[list[Any]], list[list[Any]], RunningSum])

"""The ledger a migration keeps for its validation: records packed a unit at a time and read
back as the records a single collector of every unit would keep (rule 3 across units,
rule 4's replays), with the union of the ranges read. Properties on generated records; no
database."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.dedup import UsageCollector
from context_cleaner.analysis.extract import MAX_TOKENS
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.scan import FileStats, ScanResult, SkipLog
from context_cleaner.migration import ledger as ledger_module
from context_cleaner.migration.comparison import ReadSums, Sums, read_sums
from context_cleaner.migration.ledger import FIELD, Ledger, LedgerRecord

PATHS = ["p/a.jsonl", "p/b.jsonl", "q/c.jsonl", "q/agent-1/subagents/agent-x.jsonl"]

records_st = st.builds(
    UsageRecord,
    message_id=st.sampled_from(["", "msg_1", "msg_2", "msg_3", "m\u00e9\t\n"]),
    request_id=st.sampled_from(["", "req_1", "req_2"]),
    session_id=st.sampled_from(["s1", "s2"]),
    line_session_id=st.just("s1"),
    project=st.just("p"),
    file_path=st.sampled_from(PATHS),
    line_number=st.integers(1, 2**31),
    byte_offset=st.integers(0, 2**61 - 1),
    timestamp_ms=st.integers(0, 2**50),  # rule 3 compares times from 1970 on (records.py)
    model=st.just("claude-sonnet-4-5"),
    is_sidechain=st.booleans(),
    speed=st.sampled_from(["", "standard", "fast"]),
    from_progress=st.booleans(),
    input_tokens=st.integers(0, MAX_TOKENS),
    output_tokens=st.integers(0, 50),
    cache_creation_5m_tokens=st.integers(0, 3),
    cache_creation_1h_tokens=st.integers(0, MAX_TOKENS),
    cache_read_tokens=st.integers(0, 3),
    cost_usd=st.none() | st.floats(0, 10),
)

range_st = st.tuples(st.sampled_from(PATHS), st.integers(0, 1000), st.integers(0, 1000))
units_st = st.lists(
    st.tuples(st.lists(records_st, max_size=12), st.lists(range_st, max_size=4)),
    max_size=6,
)


def _scan(records: list[UsageRecord], ranges: list[tuple[str, int, int]]) -> ScanResult:
    collector = UsageCollector()
    collector.add_all(records)
    files = [
        FileStats(f"/root/{rel}", rel, "s", "p", end, start_offset=start, end_offset=end)
        for rel, start, end in ranges
    ]
    return ScanResult(collector, files, SkipLog())


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(units=units_st, chunk=st.sampled_from([1, 3, 2_000]), size=st.sampled_from([0, 1, 4]))
def test_packed_units_read_back_as_one_collector_of_them_all(
    units: list[tuple[list[UsageRecord], list[tuple[str, int, int]]]],
    chunk: int,
    size: int,
) -> None:
    kept = ledger_module._CHUNK, ledger_module._SORTED_AT_ONCE
    ledger_module._CHUNK = chunk  # several blobs a unit, or one
    ledger_module._SORTED_AT_ONCE = chunk  # the key hashes sorted in groups, or at once
    try:
        ledger = Ledger()
        whole = UsageCollector()
        for records, ranges in units:
            scan = _scan(records, ranges)
            ledger.add(scan)
            whole.merge(scan.collector)
        expected = Counter(LedgerRecord.of(r) for r in whole.candidates())
        assert Counter(ledger.records()) == expected  # rule 3 across units applied here
    finally:
        ledger_module._CHUNK, ledger_module._SORTED_AT_ONCE = kept
    parts = list(ledger.parts(size))
    assert Counter(r for part in parts for r in part) == expected
    if size:
        assert all(len(part) <= size for part in parts)
    main = {r.message_id for r in whole.candidates() if r.message_id and not r.is_sidechain}
    side = {r.message_id for r in whole.candidates() if r.is_sidechain}
    assert ledger.replayed() == main & side
    union: dict[tuple[str, str], tuple[int, int]] = {}
    for _, ranges in units:
        for rel, start, end in ranges:
            if end > start:
                old = union.get(("/root", rel), (start, end))
                union[("/root", rel)] = (min(start, old[0]), max(end, old[1]))
    assert ledger.ranges == union
    assert ledger.range_count == len(union)
    assert ledger.bytes == sum(end - start for start, end in union.values())


@settings(max_examples=200, deadline=None)
@given(record=records_st)
def test_a_record_packed_and_read_back_keeps_what_validation_compares(
    record: UsageRecord,
) -> None:
    ledger = Ledger()
    ledger.add(_scan([record], []))
    [back] = ledger.records()
    assert back == LedgerRecord.of(record)
    assert back.version == record.version
    assert back.total_tokens == record.total_tokens
    assert (back.file_path, back.byte_offset, back.line_number) == (
        record.file_path,
        record.byte_offset,
        record.line_number,
    )


def test_an_unreadable_file_is_named_and_its_records_kept() -> None:
    record = UsageRecord(
        "msg_1", "req_1", "s", "s", "p", "p/a.jsonl", 1, 0, 0, "m", False, "", False,
        1, 2, 3, 4, 5, None,
    )  # fmt: skip
    scan = _scan([record], [])
    scan.files.append(FileStats("/root/p/b.jsonl", "p/b.jsonl", "s", "p", 9, error="gone"))
    ledger = Ledger()
    ledger.add(scan)
    assert ledger.errors == ["/root/p/b.jsonl: gone"]
    assert list(ledger.records()) == [LedgerRecord.of(record)]
    assert ledger.range_count == 0 and ledger.held_bytes > 0


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.lists(records_st, max_size=12), max_size=4))
def test_records_summed_a_column_at_a_time_sum_as_one_by_one(
    parts: list[list[UsageRecord]],
) -> None:
    """``Sums.add_columns`` (validation sums the ledger's records a column at a time) gives
    the sums, counts, files, sessions and times ``add_record`` one by one gives."""
    one_by_one, at_once = Sums(), Sums()
    for part in parts:
        records = [LedgerRecord.of(r) for r in part]
        for r in records:
            one_by_one.add_record(r)
        columns = list(zip(*(msgspec.structs.astuple(r) for r in records), strict=True))
        at_once.add_columns(columns or [[] for _ in FIELD])
    assert at_once == one_by_one


@settings(max_examples=150, deadline=None)
@given(units=units_st, chunk=st.sampled_from([1, 3, 2_000]))
def test_the_ledgers_sums_are_its_records_summed_one_by_one(
    units: list[tuple[list[UsageRecord], list[tuple[str, int, int]]]],
    chunk: int,
) -> None:
    """``read_sums``: the checksums the database's rows are compared with, and the counted
    records' sums, equal the records read back one by one (rule 3 across units, rule 4 for
    replayed sidechain copies), with the ledger's blobs decoded a blob at a time."""
    kept = ledger_module._CHUNK
    ledger_module._CHUNK = chunk
    try:
        ledger = Ledger()
        for records, ranges in units:
            ledger.add(_scan(records, ranges))
    finally:
        ledger_module._CHUNK = kept
    got = read_sums(ledger)
    records = list(ledger.records())
    replayed = ledger.replayed()
    counted = Sums()
    for r in records:
        if not (r.is_sidechain and r.message_id in replayed):
            counted.add_record(r)
    u64 = 1 << 64
    checksums = (
        len(records),
        *(sum(r.tokens[i] for r in records) for i in range(5)),
        sum(r.byte_offset for r in records) % u64,
        sum(r.timestamp_ms for r in records) % u64,
        sum(r.is_sidechain for r in records),
    )
    assert got == ReadSums(checksums, counted)
    assert ledger.paths_unique
    chunks = list(ledger.columns())  # the same records, a blob's columns at a time
    joined = [[v for chunk in chunks for v in chunk[i]] for i in range(len(FIELD))]
    assert joined == [[getattr(r, name) for r in records] for name in FIELD]


def test_a_relative_path_read_under_two_roots_is_not_summed_as_one() -> None:
    ledger = Ledger()
    scan = _scan([], [("p/a.jsonl", 0, 10)])
    scan.files.append(FileStats("/other/p/a.jsonl", "p/a.jsonl", "s", "p", 10, end_offset=10))
    ledger.add(scan)
    read_sums(ledger)  # the ranges' summary made there, kept by the ledger
    assert ledger.summarise() == (2, 20, False)
    assert not ledger.paths_unique
    assert (ledger.range_count, ledger.bytes) == (2, 20)
    assert ledger.has_ranges and not Ledger().has_ranges

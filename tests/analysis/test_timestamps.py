"""Timestamps the database cannot put on a day are skipped, one way on every path.

The rollups' ``Date`` holds 1970-01-01 .. 2149-06-06; ``toDate`` of a time outside it wraps
around (1969 lands on 2149-06-06, 9999 on 2105-01-05). A usage line timed outside that range
is reported as ``timestamp_out_of_range`` (file, line, offset) by the analyser, the migration,
the sync and the data-lag probe alike (docs/counting.md). Expected instants here are computed
with integer date arithmetic, never with the code under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.dedup import UsageCollector
from context_cleaner.analysis.extract import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    Source,
    _extract_slow,
    extract_line,
)
from context_cleaner.analysis.records import SkippedLine, UsageRecord
from context_cleaner.analysis.scan import SkipLog, scan_file
from context_cleaner.testing.transcripts.lines import (
    BASE_MS,
    Corpus,
    Line,
    assistant,
    dumps,
    expected_counts,
    progress,
    session_of,
    tokens_of,
    transcript,
    usage,
)
from context_cleaner.testing.transcripts.strategies import corpora

SOURCE = Source("-home-u-alpha/11111111-aaaa.jsonl", "-home-u-alpha", "11111111-aaaa")
EPOCH = datetime(1970, 1, 1)
FIRST_DAY_MS = 0  # 1970-01-01T00:00:00.000Z
LAST_DAY_END_MS = (datetime(2149, 6, 7) - EPOCH) // timedelta(milliseconds=1) - 1


def test_the_limits_are_the_days_a_date_column_holds() -> None:
    assert (MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS) == (FIRST_DAY_MS, LAST_DAY_END_MS)


def instant_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 text (zone-less = UTC), by integer steps."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    offset = parsed.utcoffset() or timedelta(0)
    local = parsed.replace(tzinfo=None)
    return (local - EPOCH) // timedelta(milliseconds=1) - offset // timedelta(milliseconds=1)


ZONES = [None, UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))]

#: Whole milliseconds from year 1 to 9999, in every zone style, often near the two limits.
near_limits = st.sampled_from(
    [
        datetime(1969, 12, 31, 23, 59, 59, 999000),
        datetime(1970, 1, 1),
        datetime(2149, 6, 6, 23, 59, 59, 999000),
        datetime(2149, 6, 7),
    ]
)
instants = st.builds(
    lambda base, jitter_ms, zone: (base + timedelta(milliseconds=jitter_ms)).replace(tzinfo=zone),
    st.one_of(
        near_limits,
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
    st.one_of(st.just(0), st.integers(-86_400_000, 86_400_000)),
    st.sampled_from(ZONES),
)


def timestamp_text(moment: datetime, z_style: bool) -> str:
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if z_style else text


def line_at(text: str, *, via_progress: bool) -> bytes:
    if via_progress:
        obj = progress(msg_id="msg_1", request_id="req_1", usage_obj=usage(1, 2), ts_ms=BASE_MS)
        obj["data"]["message"]["timestamp"] = text
    else:
        obj = assistant(msg_id="msg_1", request_id="req_1", usage_obj=usage(1, 2), ts_ms=None)
        obj["timestamp"] = text
    return dumps(obj)


@given(instants, st.booleans(), st.booleans())
def test_a_line_is_counted_at_its_instant_or_skipped_out_of_range(
    moment: datetime, z_style: bool, via_progress: bool
) -> None:
    text = timestamp_text(moment, z_style)
    want_ms = instant_ms(text)
    line = line_at(text, via_progress=via_progress)
    for got in (extract_line(SOURCE, 4, 321, line), _extract_slow(SOURCE, 4, 321, line)):
        if FIRST_DAY_MS <= want_ms <= LAST_DAY_END_MS:
            assert isinstance(got, UsageRecord), got
            assert got.timestamp_ms == want_ms
        else:
            assert isinstance(got, SkippedLine), got
            assert (got.reason, got.line_number, got.byte_offset) == (
                "timestamp_out_of_range",
                4,
                321,
            )
            assert "1970-01-01" in got.detail and "2149-06-06" in got.detail


def test_the_scan_reports_each_out_of_range_line_and_counts_the_others(tmp_path: Path) -> None:
    rel = "-home-u-alpha/11111111-aaaa.jsonl"
    texts = [
        ("2026-02-10T10:00:00.000Z", 1),
        ("1969-12-31T23:59:59.000Z", 10),
        ("9999-12-31T12:00:00.000Z", 100),
        ("1970-01-01T00:00:00.000Z", 1000),
        ("2149-06-06T23:59:59.999Z", 10_000),
        ("2149-06-07T00:00:00.000Z", 100_000),
        ("0001-01-01T00:00:00+05:00", 1_000_000),
    ]
    content = b""
    offsets = []
    for i, (text, tokens) in enumerate(texts):
        obj = assistant(
            msg_id=f"msg_{i}", request_id=f"req_{i}", usage_obj=usage(tokens), ts_ms=None
        )
        obj["timestamp"] = text
        offsets.append(len(content))
        content += dumps(obj) + b"\n"
    path = tmp_path / rel
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    records: list[UsageRecord] = []
    skips = SkipLog()
    stats = scan_file(transcript(tmp_path, rel), records.append, skips)
    assert sorted(r.input_tokens for r in records) == [1, 1000, 10_000]
    assert skips.by_reason == {"timestamp_out_of_range": 4}
    assert [(s.file_path, s.line_number, s.byte_offset) for s in skips.details] == [
        (str(path), n + 1, offsets[n]) for n in (1, 2, 5, 6)
    ]
    assert stats.skipped_lines == 4 and stats.usage_lines == 3
    report = EnhancedTokenCounter([str(tmp_path)], workers=1).analyze()
    assert {d.date: d.input_tokens for d in report.days} == {
        "1970-01-01": 1000,
        "2026-02-10": 1,
        "2149-06-06": 10_000,
    }
    as_json = json.loads(report.model_dump_json())
    assert [s["reason"] for s in as_json["skipped_lines"]] == ["timestamp_out_of_range"] * 4


OUT_OF_RANGE = st.sampled_from(
    [
        "1969-12-31T23:59:59.999Z",
        "1900-01-01T00:00:00Z",
        "0001-01-01T00:00:00+05:00",
        "2149-06-07T00:00:00.000Z",
        "2300-01-01T00:00:00Z",
        "9999-12-31T12:00:00.000Z",
        "9999-12-31T23:00:00",
    ]
)


def _retimed(data: bytes, text: str) -> bytes:
    obj = json.loads(data)
    obj["timestamp"] = text
    inner = obj.get("data", {}).get("message") if isinstance(obj.get("data"), dict) else None
    if isinstance(inner, dict) and "timestamp" in inner:
        inner["timestamp"] = text  # a progress line's own time is its embedded message's
    return dumps(obj)


@pytest.mark.slow
@given(corpora(), st.data())
def test_a_corpus_counts_as_if_its_out_of_range_lines_were_not_there(
    corpus: Corpus, data: st.DataObject
) -> None:
    """Out-of-range lines drop out before de-duplication: every other line counts by the
    rules as if they had never been written, and each is reported once."""
    retimed = Corpus()
    moved = 0
    for rel, lines in corpus.files.items():
        out = []
        for line in lines:
            if line.tokens is not None and data.draw(st.booleans()):
                out.append(Line(_retimed(line.data, data.draw(OUT_OF_RANGE))))
                moved += 1
            else:
                out.append(line)
        retimed.files[rel] = out
    collector = UsageCollector()
    reasons = []
    for rel, lines in retimed.files.items():
        parts = rel.split("/")
        source = Source(rel, parts[0], session_of(rel))
        for number, line in enumerate(lines, 1):
            got = extract_line(source, number, 0, line.data)
            if isinstance(got, UsageRecord):
                collector.add(got)
            elif isinstance(got, SkippedLine):
                reasons.append(got.reason)
    assert reasons == ["timestamp_out_of_range"] * moved
    total, sessions = expected_counts(retimed)
    counted = collector.records()
    assert tokens_of(counted) == total
    by_session: dict[str, list[UsageRecord]] = {}
    for r in counted:
        by_session.setdefault(r.session_id, []).append(r)
    assert {k: tokens_of(v) for k, v in by_session.items()} == sessions


def test_a_zone_less_timestamp_is_read_as_utc() -> None:
    """Documented behaviour (docs/counting.md, Timestamps), kept as it is: ccusage drops such
    lines; we count them at the UTC instant they would name with a ``Z``."""
    want = instant_ms("2026-02-10T10:00:00.250Z")
    for text in ("2026-02-10T10:00:00.250", "2026-02-10 10:00:00.250"):
        line = line_at(text, via_progress=False)
        for got in (extract_line(SOURCE, 1, 0, line), _extract_slow(SOURCE, 1, 0, line)):
            assert isinstance(got, UsageRecord), got
            assert got.timestamp_ms == want

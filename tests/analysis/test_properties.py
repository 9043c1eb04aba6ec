"""Property tests of the analysis layer on generated, realistic transcripts (DESIGN §3, §5, §8).

Each property is checked on corpora Hypothesis builds from lines shaped like
Claude Code's (see ``transcripts.py``): partial-then-final usage lines, subagent
copies, sidechain replays, ``progress`` lines, unkeyed lines, noise that
mentions "usage", spaced JSON. Expected counts come from a reference reading of
the rules that never calls the code under test.
"""

from __future__ import annotations

import io
import itertools
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis import scan as scan_module
from context_cleaner.analysis.counter import EnhancedTokenCounter, break_down
from context_cleaner.analysis.dedup import UsageCollector, preferred
from context_cleaner.analysis.discovery import discover
from context_cleaner.analysis.extract import Source, _extract_slow, extract_line
from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.analysis.reader import MAX_LINE_BYTES, LineReader
from context_cleaner.analysis.records import SkippedLine, UsageRecord, record_version
from context_cleaner.analysis.report import AnalysisReport
from context_cleaner.analysis.scan import ScanResult, SkipLog, scan_file, scan_files
from context_cleaner.testing.transcripts.lines import (
    MUTATIONS,
    TOKEN_FIELDS,
    Corpus,
    assistant,
    dumps,
    expected_counts,
    file_bytes,
    mutate,
    session_of,
    tokens_of,
    transcript,
    usage,
)
from context_cleaner.testing.transcripts.strategies import corpora, usages

PRICES = PriceTable()  # the bundled table: no user file or environment involved


@contextmanager
def temp_root() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is shared by all examples of a test)."""
    with tempfile.TemporaryDirectory(prefix="cc-prop-") as name:
        yield Path(name)


def extract_all(corpus: Corpus) -> list[UsageRecord]:
    """Every usage record of a corpus, extracted line by line with offsets computed here."""
    records = []
    for rel, lines in corpus.files.items():
        parts = rel.split("/")
        source = Source(rel, parts[0] if len(parts) > 1 else "", session_of(rel))
        offset = 0
        for number, line in enumerate(lines, 1):
            result = extract_line(source, number, offset, line.data)
            if isinstance(result, UsageRecord):
                records.append(result)
            offset += len(line.data) + 1
    return records


def analyze(*roots: Path, timezone: str = "UTC") -> AnalysisReport:
    return EnhancedTokenCounter(list(roots), timezone=timezone, prices=PRICES, workers=1).analyze()


def _row(totals: Any) -> tuple[Any, ...]:
    return (
        *(getattr(totals, name) for name in TOKEN_FIELDS),
        totals.total_tokens,
        totals.cache_creation_5m_tokens,
        totals.cache_creation_1h_tokens,
        totals.records,
        totals.cost_usd,
    )


def summary(report: AnalysisReport) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The report's numbers by (breakdown, name): totals, sessions, days, models, projects."""
    out = {("total", ""): _row(report.totals)}
    out.update({("session", s.session_id): _row(s) for s in report.sessions})
    out.update({("day", d.date): _row(d) for d in report.days})
    out.update({("model", m.model): _row(m) for m in report.models})
    out.update({("project", p.project): _row(p) for p in report.projects})
    return out


def combined(
    a: dict[tuple[str, str], tuple[Any, ...]], b: dict[tuple[str, str], tuple[Any, ...]]
) -> dict[tuple[str, str], tuple[Any, ...]]:
    zero = (0,) * len(a[("total", "")])
    return {
        k: tuple(x + y for x, y in zip(a.get(k, zero), b.get(k, zero), strict=True))
        for k in a.keys() | b.keys()
    }


def assert_same_summary(
    ours: dict[tuple[str, str], tuple[Any, ...]], want: dict[tuple[str, str], tuple[Any, ...]]
) -> None:
    """Equal numbers everywhere (cost to float precision); rows without records do not exist."""
    want = {k: v for k, v in want.items() if k == ("total", "") or v[-2]}
    assert ours.keys() == want.keys()
    for key, row in want.items():
        assert ours[key][:-1] == row[:-1], key
        assert ours[key][-1] == pytest.approx(row[-1], rel=1e-9, abs=1e-9), key


# -- de-duplication -------------------------------------------------------------------


@pytest.mark.slow
@given(corpora(), st.data())
def test_dedup_is_order_and_batch_independent(corpus: Corpus, data: st.DataObject) -> None:
    records = extract_all(corpus)
    in_order = UsageCollector()
    in_order.add_all(records)
    want = Counter(in_order.records())

    shuffled = data.draw(st.permutations(records), label="permutation")
    again = UsageCollector()
    again.add_all(shuffled)
    assert Counter(again.records()) == want
    assert tokens_of(again.records()) == tokens_of(want.elements())

    # Any split into batches (some passed through bytes, as between processes) merges the same.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=4), label="cuts"))
    merged = UsageCollector()
    for start, end in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        part = UsageCollector()
        part.add_all(shuffled[start:end])
        if data.draw(st.booleans(), label="via bytes"):
            part = UsageCollector.from_bytes(part.to_bytes())
        merged.merge(part)
    assert Counter(merged.records()) == want
    assert merged.raw == in_order.raw
    # Keeping without the every-line sum (a migration's readers) keeps the same records.
    kept = UsageCollector()
    for record in shuffled:
        kept.keep(record)
    assert Counter(kept.records()) == want and kept.raw.entries == 0
    assert merged.replays_dropped() == in_order.replays_dropped()


@pytest.mark.slow
@given(corpora())
def test_counts_equal_a_plain_reading_of_the_rules(corpus: Corpus) -> None:
    collector = UsageCollector()
    collector.add_all(extract_all(corpus))
    total, sessions = expected_counts(corpus)
    counted = collector.records()
    assert tokens_of(counted) == total
    by_session: dict[str, list[UsageRecord]] = {}
    for r in counted:
        by_session.setdefault(r.session_id, []).append(r)
    assert {s: tokens_of(rs) for s, rs in by_session.items()} == sessions
    # The raw sum still sees every usage line (what the original tool added up).
    assert collector.raw.entries == sum(1 for _, line in corpus.lines() if line.tokens)


same_key_records = st.builds(
    UsageRecord,
    message_id=st.just("msg_1"),
    request_id=st.just("req_1"),
    session_id=st.sampled_from(["s1", "s2"]),
    line_session_id=st.just(""),
    project=st.just("p"),
    file_path=st.sampled_from(["p/s1.jsonl", "p/s2.jsonl", "p/s1/subagents/agent-a.jsonl"]),
    line_number=st.integers(1, 5),
    byte_offset=st.one_of(st.integers(0, 3), st.integers(0, (1 << 61) - 1)),
    timestamp_ms=st.one_of(st.sampled_from([0, 1, 1_770_000_000_000]), st.integers(0, 1 << 45)),
    model=st.sampled_from(["claude-opus-4-6", ""]),
    is_sidechain=st.booleans(),
    speed=st.sampled_from(["", "standard", "fast"]),
    from_progress=st.booleans(),
    input_tokens=st.integers(0, 3),
    output_tokens=st.one_of(st.integers(0, 3), st.integers(0, 1 << 40)),
    cache_creation_5m_tokens=st.integers(0, 2),
    cache_creation_1h_tokens=st.integers(0, 2),
    cache_read_tokens=st.integers(0, 2),
    cost_usd=st.none(),
)


@given(same_key_records, same_key_records)
def test_preferred_agrees_with_version(a: UsageRecord, b: UsageRecord) -> None:
    """The hot-path comparison and the database's version column keep the same record."""
    for x, y in ((a, b), (b, a)):
        kept = preferred(x, y)
        assert kept is x or kept is y
        assert kept.version == max(x.version, y.version)
    if a.version != b.version:
        winner = a if a.version > b.version else b
        assert preferred(a, b) is winner and preferred(b, a) is winner


_WIDE = st.one_of(  # around each clamp's bounds, and anywhere
    *(st.integers(bound - 3, bound + 3) for bound in (0, (1 << 61) - 1, (1 << 64) - 1)),
    st.integers(-(1 << 70), 1 << 70),
)


@given(st.booleans(), _WIDE, st.booleans(), _WIDE, st.integers(0, (1 << 64) - 1), _WIDE)
def test_record_version_is_its_bit_layout(
    sidechain: bool, total: int, speed: bool, ts: int, path: int, offset: int
) -> None:
    """The version packs rule 3's fields as documented (records.py), clamps included."""
    u64, u61 = (1 << 64) - 1, (1 << 61) - 1
    assert record_version(sidechain, total, speed, ts, path, offset) == (
        ((0 if sidechain else 1) << 255)
        | (min(total, u64) << 191)
        | ((1 if speed else 0) << 190)
        | ((u64 - min(max(ts, 0), u64)) << 126)
        | ((u64 - path) << 61)
        | (u61 - min(offset, u61))
    )


# -- whole analyses ---------------------------------------------------------------------


def unkeyed_only(corpus: Corpus) -> Corpus:
    """The lines without a message id (rule 2: never de-duplicated, so a copy counts again)."""
    return Corpus(
        {
            rel: [ln for ln in lines if ln.tokens and ln.key is None]
            for rel, lines in corpus.files.items()
        }
    )


@pytest.mark.slow
@given(corpora(), st.sampled_from(["each file twice", "second root"]))
def test_a_corpus_doubled_counts_once(corpus: Corpus, how: str) -> None:
    with temp_root() as tmp:
        once_root, extra_root, unkeyed_root = tmp / "once", tmp / "extra", tmp / "unkeyed"
        for root in (once_root, extra_root, unkeyed_root):
            root.mkdir()
        corpus.write(once_root)
        once = analyze(once_root)
        unkeyed_only(corpus).write(unkeyed_root)
        again = summary(analyze(unkeyed_root))
        if how == "each file twice":
            doubled_root = tmp / "doubled"
            doubled_root.mkdir()
            corpus.write(doubled_root, times=2)
            doubled = analyze(doubled_root)
        else:
            shutil.copytree(once_root, extra_root, dirs_exist_ok=True)
            doubled = analyze(once_root, extra_root)
        assert_same_summary(summary(doubled), combined(summary(once), again))
        assert doubled.raw_line_sum.lines == 2 * once.raw_line_sum.lines
        assert doubled.skipped_lines_total == 2 * once.skipped_lines_total


def split_points(data: bytes, draw: st.DrawFn) -> list[int]:
    """Where to cut: any bytes, newlines and torn tails among them."""
    newlines = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    anywhere = st.integers(0, len(data))
    at_newline = st.sampled_from(newlines) if newlines else anywhere
    points = draw(st.lists(st.one_of(anywhere, at_newline), max_size=5), label="split points")
    return sorted(set(points))


def scan_in_parts(path: Path, data: bytes, points: list[int]) -> tuple[list[Any], SkipLog]:
    """Append ``data`` in parts, scanning after each from where the last scan stopped."""
    root = path.parent
    records: list[UsageRecord] = []
    skips = SkipLog()
    offset, line = 0, 1
    path.write_bytes(b"")
    for point in [*points, len(data)]:
        with open(path, "ab") as f:
            f.write(data[path.stat().st_size : point])
        stats = scan_file(
            transcript(root, path.name), records.append, skips, start_offset=offset, start_line=line
        )
        complete = data.rfind(b"\n", 0, point) + 1
        assert stats.error == ""
        assert stats.end_offset == complete  # a torn tail is never consumed
        assert stats.torn_tail_bytes == point - complete
        assert stats.start_offset == offset
        offset, line = stats.end_offset, line + stats.lines
    return records, skips


@pytest.mark.slow
@given(corpora(max_units=8, broken=True), st.data())
def test_appending_in_parts_equals_one_shot(corpus: Corpus, data: st.DataObject) -> None:
    content = b"".join(file_bytes(lines) for lines in corpus.files.values())
    if data.draw(st.booleans(), label="torn tail"):
        content += content[: data.draw(st.integers(0, len(content)), label="tail")].replace(
            b"\n", b" "
        )
    points = split_points(content, data.draw)
    with temp_root() as root:
        path = root / "s.jsonl"
        parts, part_skips = scan_in_parts(path, content, points)
        one_shot: list[UsageRecord] = []
        skips = SkipLog()
        stats = scan_file(transcript(root, "s.jsonl"), one_shot.append, skips)
    assert parts == one_shot
    assert part_skips.details == skips.details
    assert part_skips.by_reason == skips.by_reason
    assert stats.lines == content.count(b"\n")


@pytest.mark.slow
@given(st.data())
@settings(max_examples=10)
def test_appending_a_real_transcript_in_parts_equals_one_shot(
    fixtures_dir: Path, data: st.DataObject
) -> None:
    files = sorted(fixtures_dir.glob("projects/*/*.jsonl"))
    content = data.draw(st.sampled_from(files), label="file").read_bytes()
    points = split_points(content, data.draw)
    with temp_root() as root:
        parts, part_skips = scan_in_parts(root / "s.jsonl", content, points)
        one_shot: list[UsageRecord] = []
        scan_file(transcript(root, "s.jsonl"), one_shot.append, SkipLog())
    assert parts == one_shot
    assert part_skips.total == 0
    assert len(parts) > 0


def test_a_torn_tail_is_read_once_it_is_complete(tmp_path: Path) -> None:
    first = dumps(assistant(msg_id="m1", request_id="r1", usage_obj=usage(1, 2), ts_ms=0))
    second = dumps(assistant(msg_id="m2", request_id="r2", usage_obj=usage(3, 4), ts_ms=0))
    path = tmp_path / "s.jsonl"
    path.write_bytes(first + b"\n" + second[:40])
    records: list[UsageRecord] = []
    stats = scan_file(transcript(tmp_path, "s.jsonl"), records.append, SkipLog())
    assert [r.message_id for r in records] == ["m1"]
    assert (stats.end_offset, stats.torn_tail_bytes, stats.lines) == (len(first) + 1, 40, 1)
    # Scanning again before the line is finished reads nothing and reports nothing.
    skips = SkipLog()
    again = scan_file(
        transcript(tmp_path, "s.jsonl"),
        records.append,
        skips,
        start_offset=stats.end_offset,
        start_line=2,
    )
    assert (again.end_offset, again.lines, skips.total) == (stats.end_offset, 0, 0)
    with open(path, "ab") as f:
        f.write(second[40:] + b"\n")
    done = scan_file(
        transcript(tmp_path, "s.jsonl"),
        records.append,
        skips,
        start_offset=stats.end_offset,
        start_line=2,
    )
    assert [(r.message_id, r.line_number, r.byte_offset) for r in records] == [
        ("m1", 1, 0),
        ("m2", 2, len(first) + 1),
    ]
    assert (done.end_offset, done.torn_tail_bytes, skips.total) == (path.stat().st_size, 0, 0)


TIMEZONES = ["UTC", "Asia/Tokyo", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"]


@pytest.mark.slow
@given(corpora(), st.sampled_from(TIMEZONES))
def test_breakdowns_add_up_to_the_totals(corpus: Corpus, timezone: str) -> None:
    with temp_root() as root:
        corpus.write(root)
        report = analyze(root, timezone=timezone)
        counted = scan_files(discover([root]).files).collector.records()
    totals = report.totals
    assert totals.total_tokens == sum(getattr(totals, k) for k in TOKEN_FIELDS)
    assert totals.cache_creation_tokens == (
        totals.cache_creation_5m_tokens + totals.cache_creation_1h_tokens
    )
    for rows in (report.sessions, report.days, report.models, report.projects):
        for name in (*TOKEN_FIELDS, "total_tokens", "records"):
            assert sum(getattr(r, name) for r in rows) == getattr(totals, name), name
        assert sum(r.cost_usd for r in rows) == pytest.approx(totals.cost_usd, rel=1e-9, abs=1e-9)
    # Days are the local dates of the counted records, computed here without the bucket cache.
    zone = ZoneInfo(timezone)
    days: dict[str, list[UsageRecord]] = {}
    for r in counted:
        day = datetime.fromtimestamp(r.timestamp_ms / 1000, zone).date().isoformat()
        days.setdefault(day, []).append(r)
    assert {d.date: d.total_tokens for d in report.days} == {
        d: sum(r.total_tokens for r in rs) for d, rs in days.items()
    }
    assert totals.records == len(counted)


def record_at(n: int, timestamp_ms: int) -> UsageRecord:
    """An unkeyed record of one input token at ``timestamp_ms``."""
    return UsageRecord(
        "", "", "s", "", "p", "p/s.jsonl", n, n, timestamp_ms, "m", False, "", False,
        1, 0, 0, 0, 0, None,
    )  # fmt: skip


@pytest.mark.parametrize("timezone", [*TIMEZONES, "Pacific/Chatham", "America/Los_Angeles"])
def test_every_record_lands_on_its_local_day(timezone: str) -> None:
    """Records every 7 minutes over four days (DST changes included): the day is the local date."""
    start = int(datetime(2026, 3, 7, tzinfo=UTC).timestamp() * 1000)  # US DST starts on 8 March
    records = [record_at(n, start + n * 420_000 + n % 1000) for n in range(4 * 24 * 60 // 7)]
    zone = ZoneInfo(timezone)
    want: Counter[str] = Counter(
        datetime.fromtimestamp(r.timestamp_ms / 1000, zone).date().isoformat() for r in records
    )
    days = break_down(records, PRICES, zone).days
    assert {d: s.input_tokens for d, s in days.items()} == dict(want)


# -- the fast path and the careful path -----------------------------------------------------


def _same(fast: object, slow: object) -> None:
    if isinstance(fast, SkippedLine) or isinstance(slow, SkippedLine):
        assert isinstance(fast, SkippedLine) and isinstance(slow, SkippedLine), (fast, slow)
        assert (fast.reason, fast.line_number, fast.byte_offset) == (
            slow.reason,
            slow.line_number,
            slow.byte_offset,
        )
    else:
        assert fast == slow


SOURCE = Source("-home-u-alpha/11111111-aaaa.jsonl", "-home-u-alpha", "11111111-aaaa")


@pytest.mark.slow
@given(corpora(broken=True))
def test_fast_path_equals_careful_path_on_generated_lines(corpus: Corpus) -> None:
    for number, (_, line) in enumerate(corpus.lines(), 1):
        if b"\xff" in line.data:
            continue  # invalid UTF-8 is caught before either path decodes
        _same(
            extract_line(SOURCE, number, 7, line.data), _extract_slow(SOURCE, number, 7, line.data)
        )


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@given(u=usages(), spaced=st.booleans())
@settings(max_examples=8)
def test_fast_path_equals_careful_path_on_broken_lines(
    mutation: str, u: dict[str, Any], spaced: bool
) -> None:
    obj = assistant(msg_id="msg_1", request_id="req_1", usage_obj=u, ts_ms=1_770_000_000_000)
    line = mutate(obj, mutation)
    if spaced:
        line = line.replace(b'":', b'": ')
    fast = extract_line(SOURCE, 3, 99, line)
    _same(fast, _extract_slow(SOURCE, 3, 99, line))
    want = MUTATIONS[mutation]
    if want is None:
        assert fast is None
    else:
        assert isinstance(fast, SkippedLine) and fast.reason == want, fast


def test_real_usage_lines_never_need_the_careful_path(
    fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN §8: real lines, progress lines with usage among them, decode on the fast path."""
    from context_cleaner.analysis import extract

    def careful(*args: object) -> None:
        raise AssertionError(f"careful path taken for line {args[1]}")

    monkeypatch.setattr(extract, "_extract_slow", careful)
    records = scan_files(discover([fixtures_dir / "projects"]).files).collector.records()
    assert sum(r.total_tokens for r in records) == 15_537_336
    assert sum(r.from_progress for r in records) == 2


# -- the line reader -------------------------------------------------------------------------

#: Line contents (no newline): random bytes, or pieces that often hold the markers tried below.
line_body = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"u")),
    st.lists(st.sampled_from([b"u", b"a", b"ua", b"x", b"\xff", b'"usage"']), max_size=12).map(
        b"".join
    ),
)
line_bodies = st.lists(line_body, max_size=12)


@given(
    line_bodies,
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"a")),
    st.one_of(st.integers(1, 8), st.integers(1, 64)),  # chunk size
    st.one_of(st.integers(0, 50), st.just(1 << 20)),  # longest line kept
    st.sampled_from([None, b"u", b"ua", b"\xff"]),
    st.data(),
)
@pytest.mark.slow
@settings(max_examples=300)  # cheap: no files
def test_line_reader_yields_exactly_the_complete_lines(
    bodies: list[bytes],
    tail: bytes,
    chunk: int,
    max_line: int,
    marker: bytes | None,
    data: st.DataObject,
) -> None:
    content = b"".join(b + b"\n" for b in bodies) + tail
    offsets = [0]
    for b in bodies:
        offsets.append(offsets[-1] + len(b) + 1)
    first = data.draw(st.integers(0, len(bodies)), label="first line index")
    stop_at = data.draw(st.one_of(st.none(), st.integers(offsets[first], len(content))))
    visible = content[:stop_at] if stop_at is not None else content
    complete = [i for i in range(first, len(bodies)) if offsets[i + 1] <= len(visible)]

    oversized: list[tuple[int, int, int]] = []
    reader = LineReader(
        io.BytesIO(content),
        start_offset=offsets[first],
        start_line=first + 1,
        chunk_bytes=chunk,
        max_line_bytes=max_line,
        on_oversized=lambda *args: oversized.append(args),
        stop_at=stop_at,
        marker=marker,
    )
    got = list(reader)
    assert got == [
        (i + 1, offsets[i], bodies[i])
        for i in complete
        if len(bodies[i]) <= max_line and (marker is None or marker in bodies[i])
    ]
    assert oversized == [
        (i + 1, offsets[i], len(bodies[i])) for i in complete if len(bodies[i]) > max_line
    ]
    end = offsets[complete[-1] + 1] if complete else offsets[first]
    assert reader.end_offset == end
    assert reader.next_line == (complete[-1] + 2 if complete else first + 1)
    assert reader.bytes_read == len(visible) - offsets[first]

    # A reader left while it hands over a line stands at that line: resuming from there
    # (a killed run) yields it again and then the rest, never skipping one.
    if got:
        stop = data.draw(st.integers(1, len(got)), label="lines taken before stopping")
        partial = LineReader(
            io.BytesIO(content),
            start_offset=offsets[first],
            start_line=first + 1,
            chunk_bytes=chunk,
            max_line_bytes=max_line,
            stop_at=stop_at,
            marker=marker,
        )
        taken = list(itertools.islice(partial, stop))
        assert taken == got[:stop]
        assert (partial.next_line, partial.end_offset) == got[stop - 1][:2]
        resumed = LineReader(
            io.BytesIO(content),
            start_offset=partial.end_offset,
            start_line=partial.next_line,
            chunk_bytes=chunk,
            max_line_bytes=max_line,
            stop_at=stop_at,
            marker=marker,
        )
        assert list(resumed) == got[stop - 1 :]


# -- processes ------------------------------------------------------------------------------


def _comparable(result: ScanResult) -> tuple[Any, ...]:
    return (
        Counter(result.collector.records()),
        result.collector.raw,
        result.files,
        result.skips.by_reason,
        sorted(result.skips.details, key=lambda s: (s.file_path, s.line_number)),
    )


# -- a small file read whole ------------------------------------------------------------------


def _scan_both_ways(
    found: Any, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> tuple[tuple[Any, list[UsageRecord], SkipLog], tuple[Any, list[UsageRecord], SkipLog]]:
    """``scan_file`` of one file read whole (a small file) and through the line reader."""
    out = []
    for whole in (True, False):
        with monkeypatch.context() as m:
            if not whole:
                m.setattr(scan_module, "WHOLE_READ_BYTES", 0)
            records: list[UsageRecord] = []
            skips = SkipLog()
            stats = scan_file(found, records.append, skips, **kwargs)
            out.append((stats, records, skips))
    return out[0], out[1]


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    corpora(max_units=4, broken=True),
    st.lists(st.tuples(st.integers(0, 40), line_body), max_size=6),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"u")),
    st.sampled_from([0, 10, 4096]),
)
@example(Corpus(), [(0, b'"usage"u'), (1, b'x"usage"'), (0, b"")], b'"usage"', 4096)
def test_a_small_file_read_whole_scans_as_the_line_reader_does(
    corpus: Corpus,
    junk: list[tuple[int, bytes]],
    tail: bytes,
    head_bytes: int,
) -> None:
    """Usage lines, broken ones, arbitrary bytes (with and without the marker) and a torn
    tail: a small file read in one read gives the stats, records and skips the line reader
    gives (records, skips, the committed offset, the torn tail, the head hash)."""
    lines = [line.data for _, line in corpus.lines()]
    for at, body in junk:
        lines.insert(at % (len(lines) + 1), body)
    content = b"".join(line + b"\n" for line in lines) + tail
    with temp_root() as root, pytest.MonkeyPatch.context() as monkeypatch:
        (root / "p").mkdir()
        (root / "p" / "s.jsonl").write_bytes(content)
        whole, chunked = _scan_both_ways(
            transcript(root, "p/s.jsonl"), monkeypatch, head_bytes=head_bytes
        )
    assert whole[0] == chunked[0]
    assert whole[1] == chunked[1]
    assert whole[2].details == chunked[2].details and whole[2].by_reason == chunked[2].by_reason
    assert whole[0].end_offset == len(content) - len(tail)


@pytest.mark.parametrize("change", ["grew", "shrank"])
def test_a_small_file_that_changed_since_it_was_found_is_read_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Its size when found no longer holds: the one read does not return exactly it, and
    the file is read through the line reader, whole as it is now."""
    line = assistant(
        msg_id="msg_1",
        request_id="req_1",
        usage_obj=usage(input_tokens=7, output_tokens=3),
        ts_ms=1_700_000_000_000,
    )
    path = tmp_path / "p" / "s.jsonl"
    path.parent.mkdir()
    path.write_bytes(dumps(line) + b"\n")
    found = transcript(tmp_path, "p/s.jsonl")
    other = assistant(
        msg_id="msg_2",
        request_id="req_2",
        usage_obj=usage(input_tokens=5, output_tokens=1),
        ts_ms=1_700_000_001_000,
    )
    now = dumps(line) + b"\n" + dumps(other) + b"\n" if change == "grew" else b""
    path.write_bytes(now)
    whole, chunked = _scan_both_ways(found, monkeypatch, head_bytes=4096)
    assert whole[0] == chunked[0] and whole[1] == chunked[1]
    assert whole[0].end_offset == len(now)
    assert whole[0].usage_lines == (2 if change == "grew" else 0)


@given(corpora(max_units=12, broken=True))
@settings(max_examples=6)
def test_parallel_scan_equals_serial_scan(corpus: Corpus) -> None:
    assume(len(corpus.files) >= 2)
    with temp_root() as root:
        corpus.write(root)
        files = discover([root]).files
        serial = scan_files(files)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan_module, "PARALLEL_MIN_BYTES", 0)
            parallel = scan_module.scan_files_parallel(files, workers=2)
    assert _comparable(parallel) == _comparable(serial)


@given(corpora(max_units=8, broken=True))
@settings(max_examples=10)
def test_a_readers_batch_decodes_to_the_scan_it_read(corpus: Corpus) -> None:
    """What a reader sends (its files' paths left out) and its parent decodes with the
    batch's tasks is the scan itself: records, raw sums, file stats, skipped lines."""
    with temp_root() as root:
        corpus.write(root)
        tasks = scan_module.read_tasks((f, 0, 1) for f in discover([root]).files)
        tasks.append((str(root / "p" / "gone.jsonl"), "p/gone.jsonl", 10, 0, 1))  # an error
        want = scan_module.scan_tasks(tasks, head_bytes=4096)
        sent = scan_module.scan_tasks_encoded(tasks, MAX_LINE_BYTES, 4096)
    got = scan_module.decode_scan(sent, tasks)
    assert _comparable(got) == _comparable(want)
    assert [s.path for s in got.files] == [t[0] for t in tasks]
    assert got.files[-1].error and got.files[-1].relative_path == "p/gone.jsonl"


def test_parallel_scan_of_the_real_transcripts_equals_serial(
    fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = discover([fixtures_dir / "projects"]).files
    serial = scan_files(files)
    monkeypatch.setattr(scan_module, "PARALLEL_MIN_BYTES", 0)
    parallel = scan_module.scan_files_parallel(files, workers=2)
    assert _comparable(parallel) == _comparable(serial)
    assert tokens_of(parallel.collector.records()) == tokens_of(serial.collector.records())
    assert sum(r.total_tokens for r in parallel.collector.records()) == 15_537_336

"""What a migration does per file stays off its own process's critical path.

Heavy users keep tens of thousands of small transcripts: a cost paid once per file in
the process that commits (opening the file again, building a path object) multiplies.
These tests count such calls against the number of files, never wall time.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from clickhouse_connect.driver import binding
from clickhouse_connect.driver.client import Client

from context_cleaner.analysis import discovery
from context_cleaner.analysis import scan as scan_module
from context_cleaner.analysis.discovery import TranscriptFile, discover
from context_cleaner.analysis.extract import USAGE_MARKER
from context_cleaner.analysis.reader import FdStream, LineReader
from context_cleaner.analysis.scan import scan_ranges
from context_cleaner.bridge import Database, EnhancedTokenDatabaseBridge, queries
from context_cleaner.bridge.buckets import BUCKETS, rollup_differences
from context_cleaner.bridge.details import DETAILS_TABLE
from context_cleaner.bridge.summaries import SUMMARIES
from context_cleaner.migration import commits, sync_cache
from context_cleaner.migration.commits import RecordSums, commit_scan, file_commits
from context_cleaner.migration.file_state import HEAD_BYTES, head_hash
from context_cleaner.migration.planning import WorkItem, plan_work
from context_cleaner.migration.readers import BatchReader
from context_cleaner.testing.transcripts import generate_corpus


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small corpus of the many-files shape: 60 one-turn sessions over 40 projects."""
    out = tmp_path_factory.mktemp("many")
    manifest = generate_corpus(out, 0, seed=3, target_files=60)
    assert manifest["files"] == 60 and manifest["shape"] == "many-files"
    return out / "projects"


def test_commit_opens_no_transcript(many_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The readers hash each head; the commit's tracking rows need no file opened again."""
    found = discover([many_files])
    items = plan_work(found.files, {}).items
    with BatchReader(1) as reader:
        ((_, scan, _),) = list(reader.read([items]))
    opened: list[str] = []

    def counting(path: str, length: int) -> str:
        opened.append(path)
        return head_hash(path, length)

    monkeypatch.setattr(commits, "head_hash", counting)
    rows = file_commits(items, scan, RecordSums.of(list(scan.collector.candidates())))
    assert len(rows) == len(items) == 60
    assert opened == []
    for row in rows:  # the same identity the file on disk has
        path = str(many_files / row.file_path)
        assert row.head_length == min(HEAD_BYTES, row.committed_offset)
        assert row.head_hash == head_hash(path, row.head_length) != ""


def test_reader_hashes_the_head_of_an_appended_range(many_files: Path) -> None:
    """A range read from its committed offset still hashes the file's head (from 0)."""
    f = max(discover([many_files]).files, key=lambda f: f.size)
    whole = scan_ranges([(f, 0, 1)], head_bytes=HEAD_BYTES).files[0]
    middle = f.path.read_bytes().index(b"\n", f.size // 2) + 1
    tail = scan_ranges([(f, middle, 1)], head_bytes=HEAD_BYTES).files[0]
    want = head_hash(f.path_str, min(HEAD_BYTES, f.size))
    assert whole.head_hash == tail.head_hash == want
    assert scan_ranges([(f, 0, 1)]).files[0].head_hash == ""  # not asked for: not hashed


def test_discovery_builds_no_path_per_file(
    many_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    real = discovery.Path

    def counting(*parts: object) -> Path:
        built.append(parts)
        return real(*parts)  # type: ignore[arg-type]

    monkeypatch.setattr(discovery, "Path", counting)
    found = discover([many_files])
    folders = len({f.project for f in found.files})
    assert len(found.files) == 60
    assert len(built) <= folders  # one per folder walked, none per file
    f = found.files[0]
    assert f.path == real(f.path_str) and f.path.name.endswith(".jsonl")  # built when asked


def test_nothing_new_counts_deleted_files_without_paths(
    many_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = discover([many_files])
    keys = [sync_cache.file_key(str(f.root), f.relative_path) for f in found.files]
    gone = sync_cache.file_key(str(many_files), "-home-USER-projects-gone/x.jsonl")
    built: list[object] = []
    real = sync_cache.Path
    monkeypatch.setattr(sync_cache, "Path", lambda *a: built.append(a) or real(*a))
    assert sync_cache.count_missing([*keys, gone], found) == 1
    assert built == []
    only = {str(many_files / "-home-USER-projects-gone/x.jsonl")}
    assert sync_cache.count_missing([*keys, gone], found, only) == 1  # a watch's paths


def test_work_item_paths_are_strings_until_asked(many_files: Path) -> None:
    """Work items cross to the reader processes with the walk's strings, not path objects."""
    item: WorkItem = plan_work(discover([many_files]).files, {}).items[0]
    state = item.file.__reduce__()[1]
    assert isinstance(state[1], str) and item.file.path_str == state[1]


@pytest.mark.slow
@pytest.mark.parametrize("bound", [None, 2000])
def test_a_unit_selects_the_usage_rows_once_and_binds_ids_unescaped(
    many_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: int | None
) -> None:
    """Per unit of work, one selection of the usage rows serves both rollups, and the
    message and session ids are bound without the driver escaping them one character
    at a time (both cost in proportion to the unit's files). Large sets are bound in
    parts (``bound``: a part's characters), each statement small, the rollups exact."""
    if bound is not None:
        monkeypatch.setattr(queries, "BOUND_CHARS", bound)
    bridge = EnhancedTokenDatabaseBridge(Database(f"chdb://{tmp_path}/db", lock_timeout=30))
    bridge.setup_migration_infrastructure()
    items = plan_work(discover([many_files]).files, {}).items
    scan = scan_ranges(
        [(i.file, i.start_offset, i.start_line) for i in items], head_bytes=HEAD_BYTES
    )
    records = list(scan.collector.candidates())
    ids = {r.message_id for r in records} | {r.session_id for r in records}
    escaped: list[str] = []
    real_escape = binding.escape_str
    monkeypatch.setattr(binding, "escape_str", lambda v: escaped.append(v) or real_escape(v))
    selections: list[str] = []
    real_query = Client.query

    longest: list[int] = [0]

    def query(self: Client, sql: str | None = None, *args: object, **kwargs: object) -> object:
        if f"FROM {DETAILS_TABLE} FINAL" in (sql or ""):
            selections.append(sql or "")
        bound_values = dict(kwargs.get("parameters") or {}).values()  # type: ignore[call-overload]
        longest[0] = max(longest[0], *(len(str(v)) for v in bound_values), 0)
        return real_query(self, sql, *args, **kwargs)

    monkeypatch.setattr(Client, "query", query)
    for _ in range(2):  # a fresh database, then the same rows again (all displaced)
        selections.clear()
        escaped.clear()
        result = commit_scan(bridge, "m", "m-b00000", items, scan, 0.0)
        assert result.records_inserted == len(records) > 100
        if bound is None:
            assert len(selections) == 1
        else:  # bound three times in a selection
            assert len(selections) > 1
            assert longest[0] <= bound + 2  # the brackets
        assert escaped and max(map(len, escaped)) < 100  # column names, no joined ids
        assert not ids & set(escaped)
    with bridge.database.session() as client:
        assert rollup_differences(client) == {SUMMARIES: [], BUCKETS: []}


def _counting_open(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the opens, reads and seeks a scan makes on its transcripts."""
    calls: list[str] = []
    real_open = scan_module.open_fd

    def counting_open(path: str) -> int:
        calls.append("open")
        return real_open(path)

    class CountingStream(FdStream):
        def read(self, size: int) -> bytes:
            calls.append("read")
            return super().read(size)

        def seek(self, offset: int, whence: int = 0) -> int:
            calls.append("seek")
            return super().seek(offset, whence)

    monkeypatch.setattr(scan_module, "open_fd", counting_open)
    monkeypatch.setattr(scan_module, "FdStream", CountingStream)
    return calls


def test_a_small_file_is_read_in_one_call_with_its_head(
    many_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a whole small file and hashing its head: one open, one read, no seek
    (the read is sized by the file's stat, its shortness says the file ended, and the
    head is hashed from the bytes that read returned)."""
    files = discover([many_files]).files
    calls = _counting_open(monkeypatch)
    result = scan_ranges([(f, 0, 1) for f in files], head_bytes=HEAD_BYTES)
    assert calls == ["open", "read"] * len(files)
    assert len(files) == 60 and result.collector.raw.entries > 60
    for stats in result.files:
        length = min(HEAD_BYTES, stats.end_offset)
        assert stats.head_hash == head_hash(stats.path, length) != ""
        assert stats.end_offset == stats.size and stats.torn_tail_bytes == 0


def test_a_stale_size_still_reads_the_whole_file(many_files: Path, tmp_path: Path) -> None:
    """The stat's size only sizes the first read: a file grown or shrunk since is read
    to its end, and its head hash still describes the bytes read."""
    f = max(discover([many_files]).files, key=lambda f: f.size)
    data = f.path.read_bytes()
    assert f.size > HEAD_BYTES
    copy = tmp_path / "p" / "s.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(data)
    want = scan_ranges([(TranscriptFile.from_stat(tmp_path, copy, "p/s.jsonl", copy.stat()), 0, 1)])
    for size in (0, 10, HEAD_BYTES - 1, len(data) - 1, len(data) * 2):
        stale = TranscriptFile(tmp_path, str(copy), "p/s.jsonl", size, 0, 0, 0)
        got = scan_ranges([(stale, 0, 1)], head_bytes=HEAD_BYTES)
        assert got.collector.records() == want.collector.records()
        assert got.files[0].end_offset == len(data) and got.files[0].torn_tail_bytes == 0
        assert got.files[0].head_hash == head_hash(str(copy), HEAD_BYTES)


class _ShortReads(io.BytesIO):
    """A file whose reads return at most 100 bytes (as a network file system may)."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(min(100, size) if size is not None and size >= 0 else 100)


def test_a_short_read_before_the_stat_size_reads_on(many_files: Path) -> None:
    """Only a short read that reaches the stat's size ends the file: the lines after a
    short read in the middle are still read."""
    data = max(discover([many_files]).files, key=lambda f: f.size).path.read_bytes()
    want = [(n, o, line) for n, o, line in LineReader(io.BytesIO(data), marker=USAGE_MARKER)]
    reader = LineReader(_ShortReads(data), marker=USAGE_MARKER, size_hint=len(data))
    assert list(reader) == want and len(want) > 1
    assert reader.end_offset == len(data)

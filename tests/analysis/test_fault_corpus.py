"""Bad input (DESIGN §9): never crash, never lose a good line, report every bad one precisely.

A fault corpus is built on disk and read through ``EnhancedTokenCounter`` and the
CLI. Every good line's tokens are written down here by hand; every bad line's
file, line number, byte offset and reason are known before the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.analysis import scan as scan_module
from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.discovery import discover
from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.analysis.report import AnalysisReport
from context_cleaner.analysis.scan import SkipLog, scan_file, scan_files
from context_cleaner.cli import main
from context_cleaner.testing.transcripts.lines import (
    BASE_MS,
    assistant,
    dumps,
    progress,
    usage,
    user,
)

MODEL = "claude-haiku-4-5-20251001"  # $1 / $5 per million: costs are easy to check by hand
BIG_LINE_BYTES = 50 * 1024 * 1024
SMALL_LIMIT = 1024 * 1024
PROJECT = "-home-u-faults"
SESSION = "aaaaaaaa-0000-4000-8000-000000000001"
T = BASE_MS + 3_600_000  # 2026-02-10T01:00:00Z


def good(name: str, u: dict[str, Any], **kw: Any) -> bytes:
    """A valid assistant line of response ``msg_<name>``."""
    return dumps(
        assistant(
            msg_id=f"msg_{name}",
            request_id=f"req_{name}",
            usage_obj=u,
            ts_ms=T,
            model=MODEL,
            session=SESSION,
            **kw,
        )
    )


def obj(name: str, u: Any) -> dict[str, Any]:
    return assistant(
        msg_id=f"msg_{name}", request_id=f"req_{name}", usage_obj=u, ts_ms=T, model=MODEL
    )


def _without(d: dict[str, Any], *path: str) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    target = d
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return d


def _with(d: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return d


# (input, output, cache 5m, cache 1h, cache read) of every line that must be counted.
A = (10, 20, 25, 5, 40)
B = (1, 2, 3, 0, 4)
C = (3, 7, 0, 12_118, 100)
D = (100, 50, 0, 0, 1_000)
F = (7, 8, 0, 0, 9)
G = (11, 12, 13, 0, 14)
H = (21, 22, 0, 23, 24)


@dataclass
class FaultFile:
    relative_path: str
    content: bytes = b""
    counted: list[tuple[int, ...]] = field(default_factory=list)
    skipped: list[tuple[int, int, str]] = field(default_factory=list)
    """(line number, byte offset, reason) of every line that must be reported."""
    lines: int = 0

    def add(self, line: bytes, *, counts: tuple[int, ...] | None = None, reason: str = "") -> None:
        self.lines += 1
        if counts is not None:
            self.counted.append(counts)
        if reason:
            self.skipped.append((self.lines, len(self.content), reason))
        self.content += line + b"\n"


def fault_files() -> list[FaultFile]:
    rel = f"{PROJECT}/{SESSION}.jsonl"
    faults = FaultFile(rel)
    faults.add(good("A", usage(*A)), counts=A)
    faults.add(dumps(user('what does "usage" mean here?', T)))
    faults.add(
        b'{"type":"assistant","message":{"id":"msg_X","usage":{"input_tokens":1,',
        reason="malformed_json",
    )
    faults.add(
        good("U", usage(5, 5), text="caf\xe9").replace(b"caf\\u00e9", b"caf\xe9\xff"),
        reason="invalid_utf8",
    )
    faults.add(dumps(obj("B", usage(*B[:3], split=False, cache_read=B[4])), spaced=True), counts=B)
    faults.add(
        dumps(_without(obj("M", usage(1, 2)), "message", "usage", "input_tokens")),
        reason="missing_field",
    )
    faults.add(
        dumps(_with(obj("N", usage(1, 2)), -3, "message", "usage", "output_tokens")),
        reason="negative_value",
    )
    faults.add(
        dumps(_with(obj("S", usage(1, 2)), "12", "message", "usage", "input_tokens")),
        reason="invalid_field_type",
    )
    faults.add(dumps(_without(obj("T", usage(1, 2)), "timestamp")), reason="missing_field")
    faults.add(
        dumps(_with(obj("V", usage(1, 2)), "2026-13-45T99:00:00Z", "timestamp")),
        reason="invalid_timestamp",
    )
    faults.add(
        dumps(_with(obj("W", usage(1, 2)), "a lot", "message", "usage")),
        reason="invalid_field_type",
    )
    faults.add(
        dumps(_with(obj("Z", usage(1, 2)), 10**30, "message", "usage", "cache_read_input_tokens")),
        reason="value_out_of_range",
    )
    faults.add(
        dumps({"type": "assistant", "timestamp": "2026-02-10T01:00:00Z", "message": "usage: fine"})
    )  # a message that is a string: no usage
    faults.add(
        dumps(
            progress(
                msg_id="msg_C",
                request_id="req_C",
                usage_obj=usage(*C),
                ts_ms=T,
                model=MODEL,
                session=SESSION,
            )
        ),
        counts=C,
    )
    faults.add(good("D", usage(*D[:1], 5, *D[2:])))  # partial output, replaced by the next
    faults.add(good("D", usage(*D)), counts=D)
    faults.add(b"{not json, and no marker either")
    faults.add(b"")
    torn = good("E", usage(1000, 1000))
    faults.content += torn  # no newline: a line still being written

    empty = FaultFile(f"{PROJECT}/empty.jsonl")
    blank = FaultFile(f"{PROJECT}/blank.jsonl", content=b"\n\n   \n\t\n")

    big = FaultFile(f"{PROJECT}/big.jsonl")
    big.add(good("G", usage(*G)), counts=G)
    huge = good("F", usage(*F), text="PLACEHOLDER")
    huge = huge.replace(b"PLACEHOLDER", b"x" * (BIG_LINE_BYTES - len(huge)))
    big.add(huge, counts=F)
    big.add(good("H", usage(*H)), counts=H)
    return [faults, empty, blank, big]


@dataclass
class FaultCorpus:
    config: Path
    root: Path
    files: list[FaultFile]
    torn_bytes: int

    def path(self, f: FaultFile) -> str:
        return str(self.root / f.relative_path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> FaultCorpus:
    config = tmp_path_factory.mktemp("faults") / "claude"
    root = config / "projects"
    files = fault_files()
    for f in files:
        (root / f.relative_path).parent.mkdir(parents=True, exist_ok=True)
        (root / f.relative_path).write_bytes(f.content)
    project = root / PROJECT
    (project / "loop").symlink_to("..")  # a folder that leads back to the root
    (project / "self.jsonl").symlink_to("self.jsonl")  # a link to itself
    (project / "gone.jsonl").symlink_to("nowhere.jsonl")  # a dangling link
    torn = len(files[0].content) - files[0].content.rfind(b"\n") - 1
    return FaultCorpus(config, root, files, torn)


def total(rows: list[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(sum(col) for col in zip(*rows, strict=True))


def haiku_cost(row: tuple[int, ...]) -> float:
    i, o, c5, c1, r = row
    return (i * 1 + o * 5 + c5 * 1.25 + c1 * 2 + r * 0.1) / 1e6


def expected_skips(corpus: FaultCorpus) -> set[tuple[str, int, int, str]]:
    return {(corpus.path(f), *s) for f in corpus.files for s in f.skipped}


def as_row(t: Any) -> tuple[int, ...]:
    get = t.get if isinstance(t, dict) else lambda k: getattr(t, k)
    return (
        get("input_tokens"),
        get("output_tokens"),
        get("cache_creation_5m_tokens"),
        get("cache_creation_1h_tokens"),
        get("cache_read_tokens"),
    )


def check_report(doc: dict[str, Any], corpus: FaultCorpus) -> None:
    """The JSON form of a report of the fault corpus (in-process or from the CLI)."""
    counted = [row for f in corpus.files for row in f.counted]
    want = total(counted)
    assert as_row(doc["totals"]) == want
    assert doc["totals"]["total_tokens"] == sum(want)
    assert doc["totals"]["records"] == len(counted) == 7
    assert doc["totals"]["cost_usd"] == pytest.approx(sum(map(haiku_cost, counted)), rel=1e-9)
    # One session per file stem; every good line of the fault file is in its session.
    sessions = {s["session_id"]: s for s in doc["sessions"]}
    assert as_row(sessions[SESSION]) == total(corpus.files[0].counted)
    assert as_row(sessions["big"]) == total(corpus.files[3].counted)
    assert set(sessions) == {SESSION, "big"}

    got = {(s["file"], s["line"], s["byte_offset"], s["reason"]) for s in doc["skipped_lines"]}
    assert got == expected_skips(corpus)
    assert doc["skipped_lines_total"] == len(got) == 9
    assert doc["skipped_by_reason"] == {
        "invalid_field_type": 2,
        "invalid_timestamp": 1,
        "invalid_utf8": 1,
        "malformed_json": 1,
        "missing_field": 2,
        "negative_value": 1,
        "value_out_of_range": 1,
    }
    assert all(s["detail"] for s in doc["skipped_lines"])

    files = {f["path"]: f for f in doc["files"]}
    fault = files[corpus.path(corpus.files[0])]
    assert fault["torn_tail_bytes"] == corpus.torn_bytes > 0
    assert fault["end_offset"] == len(corpus.files[0].content) - corpus.torn_bytes
    assert fault["lines"] == corpus.files[0].lines
    assert files[corpus.path(corpus.files[1])]["size"] == 0
    assert files[corpus.path(corpus.files[2])]["lines"] == 4
    assert all(f["error"] == "" for f in doc["files"])
    assert len(doc["files"]) == 4  # the links to nowhere, to themselves, and back are not files

    problems = {p["path"]: p["reason"] for p in doc["discovery_problems"]}
    project = corpus.root / PROJECT
    assert "symlink loop" in problems[str(project / "loop")]
    assert problems[str(project / "self.jsonl")] == "Too many levels of symbolic links"
    assert problems[str(project / "gone.jsonl")] == "No such file or directory"

    warnings = "\n".join(doc["warnings"])
    assert "9 line(s) could not be counted" in warnings
    assert "symlink loop" in warnings
    assert f"{corpus.torn_bytes} byte(s)" in warnings and corpus.path(corpus.files[0]) in warnings


def test_the_counter_counts_every_good_line_and_reports_every_bad_one(
    corpus: FaultCorpus,
) -> None:
    report = EnhancedTokenCounter([corpus.config], prices=PriceTable(), workers=1).analyze()
    check_report(report.model_dump(mode="json"), corpus)


def test_the_cli_counts_the_same_and_exits_zero(corpus: FaultCorpus) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "context_cleaner",
            "analyze",
            "--source-dir",
            str(corpus.config),
            "--json",
        ],
        capture_output=True,
        env={**os.environ, "CONTEXT_CLEANER_PRICES": ""},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    check_report(json.loads(out.stdout), corpus)


def test_the_cli_table_says_what_was_skipped(corpus: FaultCorpus) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "context_cleaner", "analyze", "--source-dir", str(corpus.config)],
        capture_output=True,
        text=True,
        env={**os.environ, "CONTEXT_CLEANER_PRICES": "", "COLUMNS": "200"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "9 line(s) could not be counted" in out.stdout
    for reason in ("malformed_json", "invalid_utf8", "negative_value", "invalid_timestamp"):
        assert reason in out.stdout
    path = corpus.path(corpus.files[0])
    line, offset, reason = corpus.files[0].skipped[0]
    assert f"{path}:{line} (byte {offset}): {reason}" in out.stdout


def test_a_line_above_the_limit_is_reported_not_held(corpus: FaultCorpus) -> None:
    report = EnhancedTokenCounter(
        [corpus.config], prices=PriceTable(), workers=1, max_line_bytes=SMALL_LIMIT
    ).analyze()
    big = corpus.files[3]
    counted = [row for f in corpus.files for row in f.counted if row != F]
    assert as_row(report.totals) == total(counted)
    too_long = [s for s in report.skipped_lines if s.reason == "line_too_long"]
    assert [(s.file, s.line, s.byte_offset) for s in too_long] == [
        (corpus.path(big), 2, big.content.index(b"\n") + 1)
    ]
    assert str(SMALL_LIMIT) in too_long[0].detail
    assert report.skipped_by_reason["line_too_long"] == 1
    # The line after it is read from the right place.
    assert as_row(next(s for s in report.sessions if s.session_id == "big")) == total([G, H])


def test_memory_while_passing_over_a_huge_line_stays_near_the_chunk_size(
    corpus: FaultCorpus,
) -> None:
    discovered = discover([corpus.root]).files
    big = next(f for f in discovered if f.relative_path.endswith("big.jsonl"))
    records: list[Any] = []
    skips = SkipLog()
    tracemalloc.start()
    try:
        scan_file(big, records.append, skips, max_line_bytes=SMALL_LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert big.size > BIG_LINE_BYTES - 1
    assert peak < 16 * 1024 * 1024  # a 4 MiB read chunk and change, not the 50 MiB line
    assert [r.message_id for r in records] == ["msg_G", "msg_H"]
    assert skips.by_reason == {"line_too_long": 1}


def test_a_file_deleted_between_discovery_and_reading(tmp_path: Path) -> None:
    project = tmp_path / "projects" / PROJECT
    project.mkdir(parents=True)
    (project / "kept.jsonl").write_bytes(good("A", usage(*A)) + b"\n")
    (project / "doomed.jsonl").write_bytes(good("B", usage(*B)) + b"\n")
    found = discover([tmp_path / "projects"])
    assert len(found.files) == 2
    (project / "doomed.jsonl").unlink()
    result = scan_files(found.files)
    stats = {Path(s.path).name: s for s in result.files}
    assert stats["doomed.jsonl"].error == "file vanished before it could be read"
    assert stats["kept.jsonl"].error == ""
    assert [r.message_id for r in result.collector.records()] == ["msg_A"]


# -- folders and files this process may not read -------------------------------------------

NOBODY = 65534


@contextmanager
def as_nobody() -> Iterator[None]:
    """Run as an unprivileged user, so that file modes apply (root reads everything)."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setegid(NOBODY)
        os.seteuid(NOBODY)
    except PermissionError:
        pytest.skip("running as root without the right to drop privileges: modes do not apply")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def locked_corpus() -> Iterator[Path]:
    """A config folder with a readable session, an unreadable folder and an unreadable file.

    It lives in a world-readable temporary folder (pytest's are private to their owner)
    so that an unprivileged user can walk it.
    """
    base = Path(tempfile.mkdtemp(prefix="cc-locked-"))
    base.chmod(0o755)
    project = base / "projects" / PROJECT
    (project / "locked").mkdir(parents=True)
    (project / "ok.jsonl").write_bytes(good("A", usage(*A)) + b"\n")
    (project / "secret.jsonl").write_bytes(good("B", usage(*B)) + b"\n")
    (project / "locked" / "hidden.jsonl").write_bytes(good("C", usage(*C)) + b"\n")
    for folder in (base / "projects", project):
        folder.chmod(0o755)
    (project / "ok.jsonl").chmod(0o644)
    (project / "secret.jsonl").chmod(0o000)
    (project / "locked").chmod(0o000)
    with as_nobody():
        try:
            os.listdir(project / "locked")
            blocked = False
        except PermissionError:
            blocked = True
    if not blocked:
        shutil.rmtree(base)
        pytest.skip("this system does not enforce file modes for the test user")
    yield base
    (project / "locked").chmod(0o755)
    shutil.rmtree(base)


def check_locked(doc: dict[str, Any], base: Path) -> None:
    project = base / "projects" / PROJECT
    assert as_row(doc["totals"]) == A
    problems = {p["path"]: p["reason"] for p in doc["discovery_problems"]}
    assert problems == {str(project / "locked"): "Permission denied"}
    errors = {f["path"]: f["error"] for f in doc["files"]}
    assert errors == {
        str(project / "ok.jsonl"): "",
        str(project / "secret.jsonl"): "cannot read: Permission denied",
    }
    warnings = "\n".join(doc["warnings"])
    assert f"{project / 'locked'}: Permission denied" in warnings
    assert f"{project / 'secret.jsonl'}: cannot read: Permission denied" in warnings


def test_unreadable_folders_and_files_are_reported_not_fatal(locked_corpus: Path) -> None:
    counter = EnhancedTokenCounter([locked_corpus], prices=PriceTable(), workers=1)
    with as_nobody():
        report: AnalysisReport = counter.analyze()
    check_locked(report.model_dump(mode="json"), locked_corpus)


def test_the_cli_reports_unreadable_folders_and_exits_zero(
    locked_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: the interpreter may live where an unprivileged user cannot run it.
    args = ["analyze", "--source-dir", str(locked_corpus), "--json"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXT_CLEANER_PRICES", "")
        with as_nobody():
            code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    check_locked(json.loads(out.out), locked_corpus)


def test_the_parallel_scan_reports_the_same(
    corpus: FaultCorpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_module, "PARALLEL_MIN_BYTES", 0)
    report = EnhancedTokenCounter([corpus.config], prices=PriceTable(), workers=2).analyze()
    check_report(report.model_dump(mode="json"), corpus)

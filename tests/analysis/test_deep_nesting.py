"""A line nested deeper than the JSON decoder follows is skipped, named; the rest is counted.

msgspec raises ``RecursionError`` (not ``DecodeError``) past ~1,000 levels, even inside a
field it skips, and that ended the whole run ("unexpected RecursionError", nothing counted).
ccusage drops such a line too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from context_cleaner.analysis.extract import Source, extract_line
from context_cleaner.analysis.records import SkippedLine, UsageRecord
from context_cleaner.cli import main
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, progress, usage

SOURCE = Source("p/s.jsonl", "p", "s")


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_line(depth: int, where: str, i: int = 0) -> bytes:
    ids = {"msg_id": f"msg_{i}", "request_id": f"req_{i}", "usage_obj": usage(10, 5)}
    obj = assistant(**ids, ts_ms=BASE_MS)
    if where == "progress":
        obj = progress(**ids, ts_ms=BASE_MS)
        obj["data"]["extra"] = "DEEP"
    elif where == "content":
        obj["message"]["content"] = "DEEP"
    else:
        obj["toolUseResult"] = "DEEP"
    return json.dumps(obj).replace('"DEEP"', _nested(depth)).encode()


@pytest.mark.parametrize("where", ["content", "top", "progress"])
@pytest.mark.parametrize("depth", [1, 200, 5_000, 100_000])
def test_any_depth_anywhere_is_counted_or_skipped_never_raised(where: str, depth: int) -> None:
    got = extract_line(SOURCE, 3, 77, _deep_line(depth, where))
    if depth <= 200:
        assert isinstance(got, UsageRecord) and got.input_tokens == 10, got
    else:
        assert isinstance(got, SkippedLine), got
        assert (got.reason, got.line_number, got.byte_offset) == ("malformed_json", 3, 77)
        assert "nested deeper" in got.detail


def test_a_deep_line_does_not_end_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    (folder / "deep.jsonl").write_bytes(_deep_line(200_000, "content", 1) + b"\n")
    good = assistant(msg_id="msg_2", request_id="req_2", usage_obj=usage(7, 1), ts_ms=BASE_MS)
    (folder / "ok.jsonl").write_bytes(dumps(good) + b"\n")
    code = main(["analyze", "--source-dir", str(tmp_path / "projects"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    assert doc["totals"]["input_tokens"] == 7
    assert doc["skipped_by_reason"] == {"malformed_json": 1}
    assert doc["skipped_lines"][0]["file"].endswith("deep.jsonl")

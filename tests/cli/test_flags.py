"""Every flag is checked where it is parsed; errors are one line, tracebacks only on request."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner import cli
from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.cli import common
from context_cleaner.cli.types import integer, number
from context_cleaner.settings import DEBUG_ENV

BAD_FLAGS = [
    (["validate", "--tolerance", "-1"], "--tolerance", "from 0 to 1"),
    (["validate", "--tolerance", "nan"], "--tolerance", "from 0 to 1"),
    (["validate", "--tolerance", "inf"], "--tolerance", "from 0 to 1"),
    (["validate", "--sample-size", "-1"], "--sample-size", "1 or more"),
    (["validate", "--sample-size", "many"], "--sample-size", "1 or more"),
    (["migrate", "--checkpoint-interval", "-1"], "--checkpoint-interval", "0 or more"),
    (["migrate", "--batch-size", "0"], "--batch-size", "1 or more"),
    (["migrate", "--parallel-workers", "0"], "--parallel-workers", "from 1 to 64"),
    (["migrate", "--commit-every", "-0.5"], "--commit-every", "from 0 to 3600"),
    (["sync", "--debounce", "-1"], "--debounce", "from 0.05 to 3600"),
    (["analyze", "--workers", "0"], "--workers", "from 1 to 64"),
    (["analyze", "--top", "-3"], "--top", "0 or more"),
    (["dashboard", "--port", "70000"], "--port", "from 0 to 65535"),
    (["migrate", "--clickhouse-url", "http://alice:pwTAIL@[::1/usage"], "--clickhouse-url", ""),
    (
        ["validate", "--clickhouse-url", "http://alice:pass w0rdTAIL@127.0.0.1:notaport/db"],
        "--clickhouse-url",
        "between 1 and 65535",
    ),
]


@pytest.mark.parametrize(("argv", "flag", "allowed"), BAD_FLAGS)
def test_a_bad_flag_is_one_error_line_and_exit_2(
    argv: list[str], flag: str, allowed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert f"argument {flag}:" in errors[0] and allowed in errors[0]
    assert "Traceback" not in err and "TAIL" not in err


@given(st.integers(-(10**6), 10**6), st.integers(-5, 5), st.one_of(st.none(), st.integers(0, 9)))
def test_integer_accepts_exactly_its_range(value: int, low: int, span: int | None) -> None:
    high = None if span is None else low + span
    parse = integer(low, high)
    if value < low or (high is not None and value > high):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(str(value))
    else:
        assert parse(f" {value} ") == value


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_number_accepts_finite_values_in_range_only(value: float) -> None:
    parse = number(0, 1)
    if value == value and 0 <= value <= 1:  # not NaN, in range
        assert parse(repr(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(repr(value))


def _boom(self: EnhancedTokenCounter) -> None:
    raise RuntimeError("boom while reading http://alice:hunter2@db.example:8123/x\nsecond line")


def test_an_unexpected_error_is_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    """A defect (here: an error the core never raises) is reported, not dumped."""
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(EnhancedTokenCounter, "analyze", _boom)
    code = cli.main(["analyze", "--source-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == common.EXIT_FAILED
    assert "Traceback" not in err and "hunter2" not in err and "second line" not in err
    assert "unexpected RuntimeError: boom while reading" in err and "--debug" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(
    how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(EnhancedTokenCounter, "analyze", _boom)
    argv = ["analyze", "--source-dir", str(tmp_path)]
    if how == "flag":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(argv)


BAD_VARIABLES = [
    ("CONTEXT_CLEANER_LOCK_TIMEOUT", "nan", "from 0 to 604800"),
    ("CONTEXT_CLEANER_LOCK_TIMEOUT", "inf", "from 0 to 604800"),  # overflowed the waits
    ("CONTEXT_CLEANER_LOCK_TIMEOUT", "-1", "from 0 to 604800"),
    ("CONTEXT_CLEANER_WATCH_POLL", "maybe", "neither on (1, true, yes, on) nor off"),
]


@pytest.mark.parametrize(("variable", "value", "allowed"), BAD_VARIABLES)
def test_a_bad_environment_variable_is_one_error_line_naming_it(
    variable: str,
    value: str,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Read where it is used, checked there: ``inf`` ended in an OverflowError, ``nan``
    and ``maybe`` were taken without a word (a NaN wait, polling off)."""
    monkeypatch.setenv(variable, value)
    code = cli.main(["status", "--clickhouse-url", f"chdb://{tmp_path}/db"])
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {variable}={value!r} is "), err
    assert allowed in errors[0] and "Traceback" not in err


def test_prices_for_a_database_report_are_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database holds each record's cost as migrated: a ``--prices`` file there was
    read by nothing (even an invalid one) and the report showed the stored costs."""
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": {"claude-opus-4-6": {"input": 1, "output": 1}}}')
    code = cli.main(
        ["report", "daily", "--prices", str(prices), "--clickhouse-url", f"chdb://{tmp_path}/db"]
    )
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: --prices applies to --source transcripts: the database holds each record's "
        "cost as it was priced when migrated (context-cleaner analyze --prices prices the "
        "transcripts on disk)."
    ], err

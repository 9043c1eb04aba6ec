"""Flag values checked where they are parsed: argparse ``type=`` callables.

A bad value ends the command before it starts, as argparse does for any usage
error: one ``error:`` line naming the flag and the allowed range, exit code 2,
never a traceback. The message never repeats a URL's password (a URL that does
not parse is shown redacted).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import date
from typing import TypeVar

from context_cleaner.analysis.report_values import (
    calendar_day,
    timezone_name,
    token_limit_value,
    weekday_number,
    whole_number,
)

T = TypeVar("T")


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer from ``minimum`` to ``maximum`` (inclusive; no upper bound when None)."""

    def parse(text: str) -> int:
        return _checked(whole_number, text, minimum, maximum)

    parse.__name__ = "integer"
    return parse


def number(minimum: float, maximum: float | None = None) -> Callable[[str], float]:
    """A finite number from ``minimum`` to ``maximum`` (inclusive); ``nan`` and ``inf`` never."""
    low = f"{minimum:g}"
    allowed = f"from {low} to {maximum:g}" if maximum is not None else f"{low} or more"

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number (allowed: {allowed})"
            ) from None
        if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{text.strip()} is out of range (allowed: {allowed})")
        return value

    parse.__name__ = "number"
    return parse


def database_url(text: str) -> str:
    """A ClickHouse URL or path that parses (DESIGN §4's forms): kept as written, with its
    parse, so the command opens the database without parsing it again."""
    from context_cleaner.bridge.exceptions import redact_text
    from context_cleaner.bridge.from_settings import checked_url
    from context_cleaner.errors import ContextCleanerError

    try:
        return checked_url(text)
    except ContextCleanerError as exc:
        raise argparse.ArgumentTypeError(redact_text(str(exc))) from None


def _checked(check: Callable[..., T], text: str, *args: object) -> T:
    """``check(text, *args)``, its ``ValueError`` as argparse's usage error."""
    try:
        return check(text, *args)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def day(text: str) -> date:
    """A calendar date, ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    return _checked(calendar_day, text)


def timezone(text: str) -> str:
    """An IANA timezone name (``UTC``, ``Europe/Berlin``); kept as written."""
    return _checked(timezone_name, text)


def weekday(text: str) -> int:
    """A day of the week by name (``sunday``, ``Mon``...): its ``date.weekday()`` number."""
    return _checked(weekday_number, text)


def token_limit(text: str) -> int | str:
    """A token count (1 or more) or ``max`` (the largest finished block)."""
    return _checked(token_limit_value, text)

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


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer from ``minimum`` to ``maximum`` (inclusive; no upper bound when None)."""
    allowed = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number (allowed: {allowed})"
            ) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: {allowed})")
        return value

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
    """A ClickHouse URL or path that parses (DESIGN §4's forms); kept as written."""
    from context_cleaner.bridge.exceptions import redact_text
    from context_cleaner.bridge.url import parse_url
    from context_cleaner.errors import ContextCleanerError

    try:
        parse_url(text)
    except ContextCleanerError as exc:
        raise argparse.ArgumentTypeError(redact_text(str(exc))) from None
    return text


def day(text: str) -> date:
    """A calendar date, ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    raw = text.strip()
    try:
        if len(raw) == 8 and raw.isdigit():
            return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a date (allowed: YYYY-MM-DD or YYYYMMDD, e.g. 2026-02-10)"
    )


def timezone(text: str) -> str:
    """An IANA timezone name (``UTC``, ``Europe/Berlin``); kept as written."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = text.strip()
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a known timezone (allowed: an IANA name such as UTC, "
            "Europe/Berlin or America/New_York)"
        ) from None
    return name


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def weekday(text: str) -> int:
    """A day of the week by name (``sunday``, ``Mon``...): its ``date.weekday()`` number."""
    name = text.strip().lower()
    matches = [i for i, d in enumerate(WEEKDAYS) if len(name) >= 3 and d.startswith(name)]
    if len(matches) != 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a day of the week (allowed: {', '.join(WEEKDAYS)})"
        )
    return matches[0]


def token_limit(text: str) -> int | str:
    """A token count (1 or more) or ``max`` (the largest finished block)."""
    if text.strip().lower() == "max":
        return "max"
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a token limit (allowed: a whole number 1 or more, or max)"
        )
    return value

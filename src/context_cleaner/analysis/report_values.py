"""The values a report takes, checked the same way wherever they are typed.

Pure checks shared by the command line's flag types (``cli/types.py``, which turns
a :class:`ValueError` into argparse's usage error) and the dashboard's query strings
(``dashboard/report_api.py``, which turns it into a 400). Each message says what
was wrong and what is allowed, without naming the flag or the parameter: the caller
adds that.
"""

from __future__ import annotations

from datetime import date

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""Index = ``date.weekday()``. Kept here, not imported from ``periods``: the command line
imports these checks at start-up, before it knows it will make a report."""


def whole_number(text: str, minimum: int, maximum: int | None = None) -> int:
    """An integer from ``minimum`` to ``maximum`` (inclusive; no upper bound when None)."""
    allowed = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number (allowed: {allowed})") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{value} is out of range (allowed: {allowed})")
    return value


def calendar_day(text: str) -> date:
    """A calendar date, ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    raw = text.strip()
    try:
        if len(raw) == 8 and raw.isdigit():
            return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date (allowed: YYYY-MM-DD or YYYYMMDD, e.g. 2026-02-10)")


def timezone_name(text: str) -> str:
    """An IANA timezone name (``UTC``, ``Europe/Berlin``); kept as written."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = text.strip()
    if name.upper() == "UTC":
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{text!r} is not a known timezone (allowed: an IANA name such as UTC, "
            "Europe/Berlin or America/New_York)"
        ) from None
    return name


def weekday_number(text: str) -> int:
    """A day of the week by name (``sunday``, ``Mon``...): its ``date.weekday()`` number."""
    name = text.strip().lower()
    matches = [i for i, d in enumerate(WEEKDAYS) if len(name) >= 3 and d.startswith(name)]
    if len(matches) != 1:
        raise ValueError(f"{text!r} is not a day of the week (allowed: {', '.join(WEEKDAYS)})")
    return matches[0]


def token_limit_value(text: str) -> int | str:
    """A token count (1 or more) or ``max`` (the largest finished block)."""
    if text.strip().lower() == "max":
        return "max"
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"{text!r} is not a token limit (allowed: a whole number 1 or more, or max)"
        )
    return value

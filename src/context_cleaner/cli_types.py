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

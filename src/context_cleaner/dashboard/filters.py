"""Query-string filters of the dashboard API, checked before anything reads data.

Every value is validated here and then passed to the bridge as a query
parameter (never spliced into SQL). A bad value raises
:class:`InvalidFilterError`, which the API turns into a 400 naming the
parameter and what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from context_cleaner.analysis.report_values import calendar_day, timezone_name
from context_cleaner.bridge import Filters
from context_cleaner.errors import ConfigurationError

MAX_TEXT = 200
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000
DEFAULT_LIMIT = 20
ORDERS = ("total_tokens", "cost_usd", "last_timestamp")
DIMENSIONS = ("day", "model", "project", "host", "session")

FILTER_PARAMS = ("start", "end", "timezone", "model", "project", "host", "search")
DIRECTIONS = ("asc", "desc")
PAGING_PARAMS = ("limit", "offset", "order", "direction")
AUTH_PARAMS = ("token",)

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class InvalidFilterError(ConfigurationError):
    """A query parameter of the dashboard API is not acceptable."""


@dataclass(frozen=True, slots=True)
class Page:
    """Which items of a breakdown: ``limit`` of them (None: all) from ``offset``, in
    ``order`` (``key`` or a sum), ``descending`` or not (None: sums largest first, keys
    ascending)."""

    limit: int | None = None
    offset: int = 0
    order: str = "total_tokens"
    descending: bool | None = None


EVERYTHING = Page()


@dataclass(frozen=True, slots=True)
class QueryFilters(Filters):
    """The filters of one API request (the bridge's, passed to it as they are) and its paging."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    order: str = "total_tokens"
    direction: str | None = None
    """``asc`` or ``desc`` (None: the order's own default)."""

    def page(self) -> Page:
        """The page of items this request asks for."""
        descending = None if self.direction is None else self.direction == "desc"
        return Page(self.limit, self.offset, self.order, descending)

    def echo(self) -> dict[str, str | int | None]:
        """The filters as the API reports them back."""
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "timezone": self.timezone,
            "model": self.model,
            "project": self.project,
            "host": self.host,
            "search": self.search,
        }


def _date(name: str, raw: str) -> date:
    """A day as the reports take ``since``/``until``: ``YYYY-MM-DD`` or ``YYYYMMDD``."""
    try:
        return calendar_day(raw)
    except ValueError as exc:
        raise InvalidFilterError(f"{name}: {exc}.") from None


def _text(name: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise InvalidFilterError(f"{name} is {len(value)} characters long; at most {MAX_TEXT}.")
    if _CONTROL_RE.search(value):
        raise InvalidFilterError(f"{name} contains control characters; remove them.")
    return value


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidFilterError(f"{name}={raw!r} is not a whole number.") from exc
    if not low <= value <= high:
        raise InvalidFilterError(f"{name}={value} is out of range; use {low} to {high}.")
    return value


def parse_filters(
    params: Mapping[str, str], *, allowed: tuple[str, ...] = FILTER_PARAMS + PAGING_PARAMS
) -> QueryFilters:
    """Validate the query parameters of a request into :class:`QueryFilters`.

    Unknown parameters are rejected too, so a typo (``?modle=``) is not silently ignored.
    """
    unknown = sorted(set(params) - set(allowed) - set(AUTH_PARAMS))
    if unknown:
        raise InvalidFilterError(
            f"Unknown query parameter(s) {', '.join(unknown)}; this endpoint accepts "
            f"{', '.join(allowed) or 'none'}."
        )
    values: dict[str, object] = {}
    for name in ("start", "end"):
        if params.get(name):
            values[name] = _date(name, params[name])
    if "timezone" in params:
        try:
            values["timezone"] = timezone_name(params["timezone"])
        except ValueError as exc:
            raise InvalidFilterError(f"timezone: {exc}.") from None
    for name in ("model", "project", "host", "search"):
        if name in params:
            values[name] = _text(name, params[name])
    if "limit" in params:
        values["limit"] = _int("limit", params["limit"], 1, MAX_LIMIT)
    if "offset" in params:
        values["offset"] = _int("offset", params["offset"], 0, MAX_OFFSET)
    if "order" in params:
        if params["order"] not in ORDERS:
            raise InvalidFilterError(
                f"order={params['order']!r} is not supported; use one of {', '.join(ORDERS)}."
            )
        values["order"] = params["order"]
    if "direction" in params:
        if params["direction"] not in DIRECTIONS:
            raise InvalidFilterError(
                f"direction={params['direction']!r} is not supported; use asc or desc."
            )
        values["direction"] = params["direction"]
    filters = QueryFilters(**values)  # type: ignore[arg-type]
    if filters.start and filters.end and filters.start > filters.end:
        raise InvalidFilterError(
            f"start {filters.start} is after end {filters.end}; swap them or drop one."
        )
    return filters


def check_dimension(dimension: str) -> str:
    if dimension not in DIMENSIONS:
        raise InvalidFilterError(
            f"Unknown breakdown {dimension!r}; use one of {', '.join(DIMENSIONS)}."
        )
    return dimension

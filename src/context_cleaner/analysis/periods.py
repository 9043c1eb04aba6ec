"""Usage reports by day, week, month, session and 5-hour block: the period rules as pure functions.

A report is computed in two steps, whatever the source:

1. **cells**: counted usage summed per (group, model), where the group is the
   record's day in the report's timezone (daily, weekly, monthly), its session
   (session) or its UTC hour (blocks). The transcripts give cells through
   :func:`cells_from_records`; the database gives the same cells from one SQL query
   (``bridge/reports.py``).
2. :func:`~context_cleaner.analysis.report_rows.build_report` turns cells into the
   report's JSON-ready structure:
   ``{"report", "source", "timezone", "rows", "totals"}``.

Filters (since/until in the report's timezone, project, model, host) apply to the
records before grouping, so every report over one filter adds up to the same totals.
Weeks and months are sums of days; blocks follow ccusage's 5-hour windows
(:mod:`context_cleaner.analysis.blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from context_cleaner.analysis.counter import QUARTER_HOUR_MS, record_cost, resolve_timezone
from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.sums import RunningSum

REPORTS = ("daily", "weekly", "monthly", "session", "blocks")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""Index = ``date.weekday()``."""
HOUR_MS = 3_600_000
COST_DIGITS = 9
"""Costs are rounded to this many decimals: sums taken in another order (the database's)
give the same JSON."""


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What a report asks for; the same for the CLI, the dashboard and both sources."""

    kind: str = "daily"
    timezone: str = "UTC"
    since: date | None = None
    until: date | None = None
    start_of_week: int = 6
    """``date.weekday()`` of the first day of a week (Monday = 0; default Sunday, as ccusage)."""
    project: str | None = None
    model: str | None = None
    host: str | None = None
    breakdown: bool = False
    order: str = "asc"
    last: int | None = None
    """Keep only the N most recent rows."""
    token_limit: int | str | None = None
    """Blocks: a token count or ``"max"`` (the largest finished block)."""

    def __post_init__(self) -> None:
        if self.kind not in REPORTS:
            raise ValueError(f"unknown report {self.kind!r}; choose one of {', '.join(REPORTS)}")
        if self.order not in ("asc", "desc"):
            raise ValueError(f"unknown order {self.order!r}; choose asc or desc")

    @property
    def grouping(self) -> str:
        """What a cell groups by: ``day``, ``session`` or ``hour``."""
        return {"session": "session", "blocks": "hour"}.get(self.kind, "day")

    @property
    def tz(self) -> tzinfo:
        return resolve_timezone(self.timezone)


@dataclass(slots=True)
class Cell(RunningSum):
    """Counted usage of one (group, model): the unit both sources hand to ``build_report``.

    ``key`` is a day (``YYYY-MM-DD`` in the report's timezone), a session id, or an hour
    bucket (``(timestamp_ms - 1) // HOUR_MS``: hours closed at their end, so a 5-hour
    block's boundary never splits a bucket). Every cell is made with its ``key`` and
    ``model``; their defaults only follow the sums' fields, which come first (the order
    ``bridge/reports.py`` builds cells in, positionally).
    """

    key: str | int = ""
    model: str = ""
    cost_usd: float = 0.0
    project: str = ""
    """The least project name among the records (so both sources name the same one)."""


@dataclass(slots=True)
class Usage(RunningSum):
    """A running sum of cells (a row, a breakdown line, the totals)."""

    costs: list[float] = field(default_factory=list)
    """Each cell's cost, summed exactly once at the end (:attr:`cost_usd`)."""
    models: set[str] = field(default_factory=set)

    def add(self, c: Cell | Usage) -> None:
        self.add_sum(c)
        if isinstance(c, Cell):
            self.costs.append(c.cost_usd)
            if c.model:
                self.models.add(c.model)
        else:
            self.costs.extend(c.costs)
            self.models |= c.models

    @property
    def cost_usd(self) -> float:
        return round(math.fsum(self.costs), COST_DIGITS)  # exact: any order, same sum

    def fields(self) -> dict[str, object]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "models": sorted(self.models),
        }


def day_of(timestamp_ms: int, tz: tzinfo, cache: dict[int, str] | None = None) -> str:
    """The record's date (``YYYY-MM-DD``) in ``tz``."""
    bucket = timestamp_ms // QUARTER_HOUR_MS
    if cache is not None:
        hit = cache.get(bucket)
        if hit is not None:
            return hit
    day = datetime.fromtimestamp(bucket * 900, tz).date().isoformat()
    if cache is not None:
        cache[bucket] = day
    return day


def week_of(day: str, start_of_week: int) -> str:
    """The first day (``YYYY-MM-DD``) of the week holding ``day``."""
    d = date.fromisoformat(day)
    return (d - timedelta(days=(d.weekday() - start_of_week) % 7)).isoformat()


def month_of(day: str) -> str:
    return day[:7]


def hour_bucket(timestamp_ms: int) -> int:
    """Hours closed at their end: ``(h*H, (h+1)*H]`` is bucket ``h``."""
    return (timestamp_ms - 1) // HOUR_MS


def cells_from_records(
    records: Iterable[UsageRecord],
    query: ReportQuery,
    prices: PriceTable,
    *,
    host: str,
) -> list[Cell]:
    """Counted records (one per response, DESIGN §3) into the cells of ``query``.

    ``host`` is the machine the transcripts are on: a ``--host`` filter naming another
    machine leaves nothing.
    """
    if query.host is not None and query.host != host:
        return []
    tz = query.tz
    since = query.since.isoformat() if query.since else None
    until = query.until.isoformat() if query.until else None
    grouping = query.grouping
    days: dict[int, str] = {}
    cells: dict[tuple[str | int, str], Cell] = {}
    for r in records:
        if query.project is not None and r.project != query.project:
            continue
        if query.model is not None and r.model != query.model:
            continue
        day = day_of(r.timestamp_ms, tz, days)
        if (since is not None and day < since) or (until is not None and day > until):
            continue
        key: str | int
        if grouping == "day":
            key = day
        elif grouping == "session":
            key = r.session_id
        else:
            key = hour_bucket(r.timestamp_ms)
        cell = cells.get((key, r.model))
        if cell is None:
            cell = cells[(key, r.model)] = Cell(key=key, model=r.model, project=r.project)
        elif r.project < cell.project:
            cell.project = r.project
        cost = r.cost_usd if r.cost_usd is not None else record_cost(r, prices)
        cell.add_record(r)
        cell.cost_usd += cost
    return list(cells.values())

"""Reports from the database: one SQL query per report, over the counted records.

Reads a rollup of the counted records (per UTC day, ``bridge/summaries.py``, when it can
answer, else per 15 minutes, ``bridge/buckets.py``), or the view
``counted_token_details`` itself (rule 3 by ``FINAL``, then rule 4: the exact,
de-duplicated usage that validation compares) when the rollup cannot answer exactly; never
the transcripts, so reports hold the rows of transcripts Claude Code has deleted. The
query returns the report's cells (usage per group and model: day in the report's
timezone, session, or UTC hour); the
analysis layer's :func:`~context_cleaner.analysis.report_rows.build_report` turns them into
the same JSON as the transcripts source.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from itertools import compress, starmap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.periods import HOUR_MS, Cell, ReportQuery
from context_cleaner.analysis.report_rows import build_report
from context_cleaner.bridge.buckets import final_buckets
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.details import COUNTED_VIEW
from context_cleaner.bridge.queries import Where, query_columns, query_rows
from context_cleaner.bridge.summaries import SUMMARIES
from context_cleaner.errors import ConfigurationError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-/]+$")


def _day_expr(timezone: str) -> str:
    # ClickHouse needs the zone as a constant; the name was resolved by zoneinfo first and
    # holds only IANA name characters, so quoting it is safe.
    if not _TZ_NAME.match(timezone):
        raise ValueError(f"not a timezone name: {timezone!r}")
    return f"toDate(timestamp, '{timezone}')"


def bucket_day_sql(timezone: str) -> tuple[str, str]:
    """A 15-minute rollup row's day in ``timezone`` (its first record's: every record's when
    the zone's offsets are multiples of 15 minutes), and the condition of a row whose first
    and last records fall on different days or offsets there (then the usage rows answer)."""
    day = _day_expr(timezone).replace("timestamp", "first_timestamp")
    zone = day.split(", ")[1].rstrip(")")
    split = (
        f"{day} != toDate(last_timestamp, {zone}) OR "
        f"timeZoneOffset(toTimeZone(first_timestamp, {zone})) != "
        f"timeZoneOffset(toTimeZone(last_timestamp, {zone}))"
    )
    return day, split


def cells_sql(query: ReportQuery) -> tuple[str, dict[str, Any]]:
    """The SQL (and its parameters) returning ``query``'s cells."""
    query.tz  # noqa: B018 - raises the package's error for an unknown zone
    day = _day_expr(query.timezone)
    where = _days(Where("1"), day, query)
    where.equal(query, ("project", "model", "host"))
    key = {
        "day": f"toString({day})",
        "session": "session_id",
        "hour": f"intDiv(toUnixTimestamp64Milli(timestamp) - 1, {HOUR_MS})",
    }[query.grouping]
    sql = (
        f"SELECT {key} AS k, toString(model) AS m, "
        "sum(input_tokens), sum(output_tokens), sum(cache_creation_5m_tokens), "
        "sum(cache_creation_1h_tokens), sum(cache_read_tokens), sum(cost_usd), count(), "
        "toUnixTimestamp64Milli(min(timestamp)), toUnixTimestamp64Milli(max(timestamp)), "
        f"toString(min(project)) FROM {COUNTED_VIEW} WHERE {where.sql()} GROUP BY k, m"
    )
    return sql, where.params


def _days(where: Where, day: str, query: ReportQuery) -> Where:
    """``where`` with the days of ``query`` (``day``: the expression of a row's day)."""
    where.add(f"{day} >= {{since:Date}}", "since", query.since)
    where.add(f"{day} <= {{until:Date}}", "until", query.until)
    return where


def summary_cells_sql(query: ReportQuery) -> tuple[str, dict[str, Any]] | None:
    """The same cells from the (session, UTC day, model) rollup, when it can give them.

    ``enhanced_token_summaries`` holds exactly the counted records' sums (it is recomputed
    from them for every session a batch touches, rules 3 and 4 included), and it is ~50x
    smaller than the usage rows, smaller still than the 15-minute rollup. It can answer
    days, weeks, months and sessions in UTC without ``--host`` (a session's rows may come
    from two machines; the rollup keeps one host per group), and sessions in any zone
    without ``since``/``until`` (a session's cells do not depend on the zone then).
    """
    zone_free = query.grouping == "session" and query.since is None and query.until is None
    if query.host is not None or query.grouping == "hour":
        return None
    if query.timezone != "UTC" and not zone_free:
        return None
    where = _days(Where("is_deleted = 0"), "day", query)
    where.equal(query, ("project", "model"))
    key = "toString(day)" if query.grouping == "day" else "session_id"
    sql = (
        f"SELECT {key} AS k, toString(model) AS m, "
        "sum(input_tokens), sum(output_tokens), sum(cache_creation_5m_tokens), "
        "sum(cache_creation_1h_tokens), sum(cache_read_tokens), sum(cost_usd), sum(record_count), "
        "toUnixTimestamp64Milli(min(first_timestamp)), "
        "toUnixTimestamp64Milli(max(last_timestamp)), "
        f"toString(min(project)) FROM {SUMMARIES} FINAL WHERE {where.sql()} GROUP BY k, m"
    )
    return sql, where.params


def bucket_cells_sql(query: ReportQuery) -> tuple[str, dict[str, Any]]:
    """The same cells from the 15-minute rollup (``bridge/buckets.py``), for every kind and zone.

    The rollup holds exactly the counted records' sums, ~50x fewer rows. A rollup row's
    records share one day in any zone whose offsets are multiples of 15 minutes, and one
    end-closed UTC hour, so its first record's day and hour are every record's. The last
    column counts the rows whose first and last records fall on different days or offsets
    in the report's zone (a zone's offset before 1972 that is not a multiple of 15 minutes):
    when it is not 0, :func:`report_cells` reads the usage rows instead. So that a row
    outside ``since``/``until`` whose records reach into them is counted there too, rows
    two days around them are read and the others summed only where their first day is in.
    """
    query.tz  # noqa: B018 - raises the package's error for an unknown zone
    day, split_row = bucket_day_sql(query.timezone)
    zoned = query.timezone != "UTC"
    where = ["is_deleted = 0"]
    keep = []
    params: dict[str, Any] = {}
    for name, op, margin in (("since", ">=", "subtractDays"), ("until", "<=", "addDays")):
        value = getattr(query, name)
        if value is not None:
            keep.append(f"{day} {op} {{{name}:Date}}")
            where.append(f"{day} {op} {margin}({{{name}:Date}}, 2)" if zoned else keep[-1])
            params[name] = value
    for column in ("project", "model", "host"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = value
    uses_days = query.grouping == "day" or keep
    split = f"countIf({split_row})" if uses_days and zoned else "0"
    cond = " AND ".join(keep) if keep and zoned else ""

    def agg(function: str, column: str) -> str:
        return f"{function}If({column}, {cond})" if cond else f"{function}({column})"

    key = {
        "day": f"toString({day})",
        "session": "session_id",
        "hour": f"intDiv(toUnixTimestamp64Milli(first_timestamp) - 1, {HOUR_MS})",
    }[query.grouping]
    sums = ", ".join(
        agg("sum", c)
        for c in (
            "input_tokens",
            "output_tokens",
            "cache_creation_5m_tokens",
            "cache_creation_1h_tokens",
            "cache_read_tokens",
            "cost_usd",
            "record_count",
        )
    )
    wide = timedelta(days=2 if zoned else 0)
    source, bucket_params = final_buckets(
        query.since and query.since - wide, query.until and query.until + wide
    )
    sql = (
        f"SELECT {key} AS k, toString(model) AS m, {sums}, "
        f"toUnixTimestamp64Milli({agg('min', 'first_timestamp')}), "
        f"toUnixTimestamp64Milli({agg('max', 'last_timestamp')}), "
        f"toString({agg('min', 'project')}), {split} FROM {source} "
        f"WHERE {' AND '.join(where)} GROUP BY k, m"
    )
    return sql, {**params, **bucket_params}


#: The cell queries' columns (key, model, the five token sums, cost, count, first, last,
#: project) in the order of :class:`Cell`'s fields (its sums' fields come first).
_CELL_FIELDS = (2, 3, 4, 5, 6, 8, 9, 10, 0, 1, 7, 11)
_COUNT, _SPLIT = 8, 12
"""The columns of a cell's record count and of the 15-minute rollup's split rows."""


def _cells(columns: Sequence[Sequence[Any]], keep: Iterable[Any] | None = None) -> list[Cell]:
    """Cells from the columns of a cell query (:data:`_CELL_FIELDS`), each already of its
    field's type (keys by ``toString`` or an integer hour, sums as ``int``, ...); with
    ``keep``, only the rows whose ``keep`` value is true. Built at C speed (``starmap``
    over the columns): 60,000 session cells cost ~1.5x more through the driver's rows."""
    if not columns:  # no rows
        return []
    cells = starmap(Cell, zip(*(columns[i] for i in _CELL_FIELDS), strict=True))
    return list(cells if keep is None else compress(cells, keep))


def report_cells(client: Client, query: ReportQuery, *, rollup: bool = True) -> list[Cell]:
    """``query``'s cells: from a rollup (``rollup``), the per-day one when it can answer,
    else the 15-minute one unless it cannot split them by day exactly in the report's zone;
    else from the usage rows (the reference)."""
    fast = summary_cells_sql(query) if rollup else None
    if fast is not None:
        return _cells(query_columns(client, *fast))
    if rollup:
        columns = query_columns(client, *bucket_cells_sql(query))
        if not columns:
            return []
        if not any(columns[_SPLIT]):
            # rows two days around since/until may sum nothing: their count is 0
            return _cells(columns, keep=columns[_COUNT])
    return _cells(query_columns(client, *cells_sql(query)))


def report_from_database(
    client: Client, query: ReportQuery, *, now_ms: int | None = None
) -> dict[str, object]:
    """``query``'s report from the database (a client of one session: see ``Database``)."""
    return build_report(query, report_cells(client, query), source="database", now_ms=now_ms)


def database_report(
    database: Database, query: ReportQuery, *, now_ms: int | None = None
) -> dict[str, object]:
    """``query``'s report from ``database``, in one unit of work.

    Never creates an embedded database's folder; a database without the schema is a
    :class:`ConfigurationError` naming the next step.
    """
    url = database.url
    missing = url.is_embedded and not url.is_memory and not Path(url.path).exists()
    with contextlib.ExitStack() as stack:
        client = None if missing else stack.enter_context(database.session())
        if client is None or not query_rows(client, f"EXISTS TABLE {COUNTED_VIEW}")[0][0]:
            raise ConfigurationError(
                f"No usage in {url.redacted()} yet: run `context-cleaner migrate` first, "
                "or report straight from the transcripts with `--source transcripts`."
            )
        return report_from_database(client, query, now_ms=now_ms)

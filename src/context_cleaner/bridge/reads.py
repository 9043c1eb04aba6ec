"""The read side of the bridge: what the dashboard, ``status`` and validation ask.

Reads each open their own short session, so readers and a long-running sync
interleave; :meth:`BridgeReads.reading` shares one session among the reads of a
block (a dashboard request). Every read is exact: usage rows through the
``counted_token_details`` view (rule 3 by ``FINAL``, then rule 4), the rollup with
``FINAL``. :class:`BridgeReads` is the read half of
:class:`~context_cleaner.bridge.token_bridge.EnhancedTokenDatabaseBridge`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.fields import STORED_TOKEN_FIELDS, totals
from context_cleaner.bridge.buckets import TOTALS_SQL as BUCKET_TOTALS
from context_cleaner.bridge.buckets import final_buckets
from context_cleaner.bridge.details import COUNTED_VIEW, DETAILS_TABLE
from context_cleaner.bridge.queries import Where, query_rows, table_of
from context_cleaner.bridge.runs import Committed, committed_by, mark_crashed
from context_cleaner.bridge.summaries import ROLLUP_SUMS, SUMMARIES, TOKEN_SUMS
from context_cleaner.bridge.tables import ALERT_COLUMNS, ALERTS, METADATA
from context_cleaner.bridge.tracking import TRACKING, TrackedFile, current_files
from context_cleaner.errors import ConfigurationError
from context_cleaner.observability.telemetry import db_call

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from context_cleaner.analysis.periods import ReportQuery
    from context_cleaner.bridge.database import Database

#: Dimensions the summaries can be broken down by, and their column.
DIMENSIONS = {
    "session": "session_id",
    "day": "day",
    "model": "model",
    "project": "project",
    "host": "host",
}


#: Orders of :meth:`BridgeReads.totals_by` and the expression each sorts by.
ORDERS = {
    "total_tokens": "total",
    "cost_usd": "cost_usd",
    "last_timestamp": "last",
    "key": "key",
}


#: The counted usage rows in the rollups' columns, for reads no rollup answers exactly.
COUNTED_ROWS = (
    f"(SELECT session_id, model, project, host, {', '.join(STORED_TOKEN_FIELDS)}, cost_usd, "
    "toUInt64(1) AS record_count, timestamp AS first_timestamp, timestamp AS last_timestamp "
    f"FROM {COUNTED_VIEW})"
)


def _buckets(f: Filters) -> tuple[str, dict[str, Any]]:
    """The 15-minute rollup (``FINAL``), only its quarter hours that can hold ``f``'s days:
    a month of a year's 730k rows read in ~10-20 ms instead of ~25-60 ms."""
    return final_buckets(f.start, f.end)


def totals_dict(values: Sequence[Any]) -> dict[str, Any]:
    """A row of :data:`~.summaries.TOKEN_SUMS` (or ``ROLLUP_SUMS``) as DESIGN §10 ``totals``."""
    return totals(values[:5], values[5], values[6])


@dataclass(frozen=True, slots=True)
class Filters:
    """Optional restrictions on summary reads (all parameterised, never spliced)."""

    start: date | None = None
    end: date | None = None
    model: str | None = None
    project: str | None = None
    host: str | None = None
    session: str | None = None
    search: str | None = None
    """Case-insensitive substring of the session id or the project."""
    timezone: str = "UTC"
    """The zone of ``start``, ``end`` (inclusive days) and of the ``day`` breakdown: an
    IANA name, checked by the caller."""

    def where(self, day: str = "day") -> tuple[str, dict[str, Any]]:
        """The condition (and its parameters), ``day`` being the expression of a row's day."""
        where = Where()
        where.add(f"{day} >= {{start:Date}}", "start", self.start)
        where.add(f"{day} <= {{end:Date}}", "end", self.end)
        where.equal(self, ("model", "project", "host"))
        where.add("session_id = {session:String}", "session", self.session)
        where.add(
            "(positionCaseInsensitiveUTF8(session_id, {search:String}) > 0 "
            "OR positionCaseInsensitiveUTF8(project, {search:String}) > 0)",
            "search",
            self.search or None,
        )
        return where.sql(), where.params


_READ_SESSION: ContextVar[tuple[BridgeReads, Client, dict[tuple, bool]] | None] = ContextVar(
    "context_cleaner_read_session", default=None
)
"""The session of the innermost :meth:`EnhancedTokenDatabaseBridge.reading` block, if any,
and what :meth:`BridgeReads._rows` found of split rollup rows in it (asked once a block)."""


class BridgeReads:
    """The reads of :class:`~context_cleaner.bridge.token_bridge.EnhancedTokenDatabaseBridge`."""

    database: Database
    host: str

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Several reads as one unit of work: the reads in the block share one session.

        Opening the embedded engine costs ~50-70 ms, so a caller that reads several
        things at once (a dashboard request) holds it once. Nested blocks reuse the session.
        """
        active = _READ_SESSION.get()
        if active is not None and active[0] is self:
            yield
            return
        with self.database.session() as client:
            token = _READ_SESSION.set((self, client, {}))
            try:
                yield
            finally:
                _READ_SESSION.reset(token)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Client]:
        active = _READ_SESSION.get()
        if active is not None and active[0] is self:
            yield active[1]
            return
        with self.database.session() as client:
            yield client

    def _query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        with db_call("SELECT", table_of(sql)), self._session() as client:
            return query_rows(client, sql, parameters)

    def report(self, query: ReportQuery) -> dict[str, object]:
        """``query``'s report from the database (:mod:`.reports`), in the open read session
        when there is one (see :meth:`reading`)."""
        from context_cleaner.bridge.reports import report_from_database  # on first use

        with db_call("SELECT", "report"), self._session() as client:
            return report_from_database(client, query)

    def _rows(self, filters: Filters | None, *, by_day: bool = False) -> tuple[str, str, str, dict]:
        """Where the rows of ``filters`` are read: (FROM, a row's day, WHERE, parameters).

        The (session, UTC day, model) rollup when it answers exactly: days in UTC or none
        asked (``by_day``: the reader groups by day), and no host (it keeps one host per
        group). Else the 15-minute rollup, each row on its first record's day in the zone
        (the reports' rule, ``bridge/reports.py``); else, when a row there spans two days or
        offsets of the zone (an offset before 1972 that is not a multiple of 15 minutes),
        the usage rows.
        """
        f = filters or Filters()
        dated = by_day or f.start is not None or f.end is not None
        zoned = dated and f.timezone != "UTC"
        if not zoned and f.host is None:
            return (f"{SUMMARIES} FINAL", "day", *f.where())
        from context_cleaner.bridge.reports import bucket_day_sql  # on first use

        day, split = bucket_day_sql(f.timezone)
        source, params = _buckets(f)
        if zoned:
            # rows two days around start/end: one that starts outside may end inside
            wide = replace(
                f,
                start=f.start and f.start - timedelta(days=2),
                end=f.end and f.end + timedelta(days=2),
            )
            wide_source, wide_params = _buckets(wide)
            where, wide_where = wide.where(day)
            wide_params.update(wide_where)
            active = _READ_SESSION.get()
            known = active[2] if active is not None and active[0] is self else {}
            key = (where, tuple(sorted(wide_params.items())))
            if key not in known:  # asked once a unit of work (a dashboard request)
                sql = f"SELECT count() FROM {wide_source} WHERE {where} AND ({split})"
                known[key] = bool(self._query(sql, wide_params)[0][0])
            if known[key]:
                source, params = COUNTED_ROWS, {}
        where, day_params = f.where(day)
        return (source, day, where, {**day_params, **params})

    def is_initialised(self) -> bool:
        """True when the schema exists (nothing has been migrated before otherwise)."""
        rows = self._query("EXISTS TABLE " + DETAILS_TABLE)
        return bool(rows and rows[0][0])

    def holds_usage_rows(self) -> bool:
        """Whether the usage table holds any row (of any version, counted or not); asked of
        the table itself, not ``system.tables`` (whose count some engines leave unknown)."""
        rows = self._query(f"SELECT count() FROM (SELECT 1 FROM {DETAILS_TABLE} LIMIT 1)")
        return bool(rows[0][0])

    def get_migration_totals(self) -> dict[str, Any]:
        """Exact totals over every usage row (``FINAL``, rule 4): the source of truth."""
        rows = self._query(f"SELECT {TOKEN_SUMS} FROM {COUNTED_VIEW}")
        return totals_dict(rows[0])

    def detail_totals_by_session(
        self, sessions: Collection[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Per-session totals straight from the usage rows (for validation)."""
        where, params = "1", {}
        if sessions is not None:
            where = "session_id IN {sessions:Array(String)}"
            params["sessions"] = sorted(sessions)
        rows = self._query(
            f"SELECT session_id, {TOKEN_SUMS} FROM {COUNTED_VIEW} WHERE {where} "
            "GROUP BY session_id",
            params,
        )
        return {r[0]: totals_dict(r[1:]) for r in rows}

    def summary_totals(self, filters: Filters | None = None) -> dict[str, Any]:
        """Totals from the rollup (what the dashboard shows)."""
        source, _day, where, params = self._rows(filters)
        rows = self._query(f"SELECT {ROLLUP_SUMS} FROM {source} WHERE {where}", params)
        return totals_dict(rows[0])

    def bucket_totals(self) -> dict[str, Any]:
        """Totals from the 15-minute rollup (what reports read), as :meth:`summary_totals`."""
        return totals_dict(self._query(BUCKET_TOTALS)[0])

    def totals_by(
        self,
        dimension: str,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order: str = "total_tokens",
        descending: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Totals grouped by session, day, model, project or host (from a rollup).

        A group's ``project`` is its least (as the session report names a session's).
        ``order`` is one of :data:`ORDERS` (a whitelist: nothing from a caller is spliced
        into the SQL); ``descending`` defaults to largest/latest first, keys ascending.
        Ties are broken by the key, ascending. Each item also lists its ``models``."""
        column = DIMENSIONS.get(dimension)
        if column is None:
            raise ConfigurationError(
                f"Unknown breakdown {dimension!r}; choose one of {', '.join(DIMENSIONS)}."
            )
        source, day, where, params = self._rows(filters, by_day=dimension == "day")
        if dimension == "day":
            column = day
        order_column = ORDERS.get(order)
        if order_column is None:
            raise ConfigurationError(f"Unknown order {order!r}.")
        if descending is None:
            descending = order != "key"
        order_sql = order_column + (" DESC" if descending else " ASC")
        if order != "key":
            order_sql += ", key"
        extra = (
            ", min(project), min(first_timestamp) AS first, max(last_timestamp) AS last, "
            "arraySort(groupUniqArray(model))"
        )
        sql = (
            f"SELECT {column} AS key, {ROLLUP_SUMS}, input_tokens + output_tokens + "
            f"cache_creation_5m_tokens + cache_creation_1h_tokens + cache_read_tokens AS total"
            f"{extra} FROM {source} WHERE {where} GROUP BY key ORDER BY {order_sql}"
        )
        if limit is not None:
            sql += " LIMIT {limit:UInt64} OFFSET {offset:UInt64}"
            params.update(limit=limit, offset=offset)
        out = []
        for row in self._query(sql, params):
            item = {dimension: _plain(row[0]), **totals_dict(row[1:8])}
            item.update(
                project=row[9],
                first_timestamp=_plain(row[10]),
                last_timestamp=_plain(row[11]),
                models=[str(m) for m in row[12]],
            )
            out.append(item)
        return out

    def count_sessions(self, filters: Filters | None = None) -> int:
        source, _day, where, params = self._rows(filters)
        rows = self._query(f"SELECT uniqExact(session_id) FROM {source} WHERE {where}", params)
        return int(rows[0][0])

    def summary_overview(
        self,
        filters: Filters | None = None,
        dimensions: Sequence[str] = ("day", "model", "project", "host"),
    ) -> dict[str, Any]:
        """Totals, distinct sessions and totals by each of ``dimensions``: one scan of the rollup.

        Returns ``{"totals": ..., "sessions": n, "<dimension>": [item, ...]}``; items are
        shaped as :meth:`totals_by`'s plus ``sessions``, days in date order, the others by
        total tokens (largest first). Measured with 10M usage rows (67k rollup rows): one
        GROUPING SETS query ~20 ms against ~115 ms for five separate queries. Sessions are
        counted by a 64-bit hash of the id (exact unless two ids collide, ~n^2/2^65): 7x
        faster than ``uniqExact`` on the strings in every grouping set.
        """
        for dimension in dimensions:
            if dimension not in DIMENSIONS:
                raise ConfigurationError(
                    f"Unknown breakdown {dimension!r}; choose one of {', '.join(DIMENSIONS)}."
                )
        rows = day_rows = self._rows(filters)
        if "day" in dimensions and rows[1] == "day":  # the per-UTC-day rollup: days in UTC?
            day_rows = self._rows(filters, by_day=True)
        others = [d for d in dimensions if d != "day"]
        if day_rows[0] != rows[0] and others:
            # no days asked, in another zone: the per-UTC-day rollup answers all but the
            # zone's days (~10x fewer rows); only those come from the 15-minute rollup
            out = self._overview(rows, others)
            out["day"] = self._overview(day_rows, ["day"])["day"]
            return out
        return self._overview(day_rows, dimensions)

    def _overview(self, rows: tuple[str, str, str, dict], dimensions: Sequence[str]) -> dict:
        """:meth:`summary_overview` of ``rows`` (:meth:`_rows`' answer)."""
        source, day, where, params = rows
        columns = [day if d == "day" else DIMENSIONS[d] for d in dimensions]
        n = len(columns)
        sql = (
            f"SELECT {', '.join(columns)}, {', '.join(f'grouping({c})' for c in columns)}, "
            f"{ROLLUP_SUMS}, min(project), min(first_timestamp), max(last_timestamp), "
            f"uniqExact(cityHash64(session_id)) FROM {source} WHERE {where} "
            f"GROUP BY GROUPING SETS ({', '.join(f'({c})' for c in columns)}, ()) "
            "SETTINGS force_grouping_standard_compatibility = 1"
        )
        out: dict[str, Any] = {"totals": totals_dict([0] * 7), "sessions": 0}
        out.update({d: [] for d in dimensions})
        for row in self._query(sql, params):
            flags, rest = row[n : 2 * n], row[2 * n :]
            if all(flags):  # the () set: everything
                out["totals"], out["sessions"] = totals_dict(rest[:7]), int(rest[10])
                continue
            i = list(flags).index(0)
            item = {dimensions[i]: _plain(row[i]), **totals_dict(rest[:7])}
            item.update(
                project=rest[7],
                first_timestamp=_plain(rest[8]),
                last_timestamp=_plain(rest[9]),
                sessions=int(rest[10]),
            )
            out[dimensions[i]].append(item)
        for d in dimensions:
            if d == "day":
                out[d].sort(key=lambda item: item["day"])
            else:
                out[d].sort(key=lambda item, d=d: (-item["total_tokens"], str(item[d])))
        return out

    def tracked_files(self, paths: Collection[str] | None = None) -> list[TrackedFile]:
        """This host's files and how far each is committed (with ``paths``: only the
        files at those relative paths)."""
        with db_call("SELECT", TRACKING), self._session() as client:
            return current_files(client, self.host, paths)

    def migration_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs (migrate, sync, validate, rollback), newest first; a run marked
        running whose process on this host is gone is shown ``crashed``, with what it
        committed (:mod:`.runs`)."""
        rows = self._query(
            f"SELECT migration_id, run_kind, status, started_at, finished_at, host, "
            f"files_found, files_processed, files_failed, records_inserted, lines_skipped, "
            f"total_tokens, cost_usd, details, files_skipped, source_roots FROM {METADATA} FINAL "
            "ORDER BY started_at DESC LIMIT {limit:UInt32}",
            {"limit": limit},
        )
        keys = [
            "migration_id",
            "run_kind",
            "status",
            "started_at",
            "finished_at",
            "host",
            "files_found",
            "files_processed",
            "files_failed",
            "records_inserted",
            "lines_skipped",
            "total_tokens",
            "cost_usd",
            "details",
            "files_skipped",
            "source_roots",
        ]
        runs = []
        for row in rows:
            run = {k: _plain(v) for k, v in zip(keys, row, strict=True)}
            with contextlib.suppress(ValueError, TypeError):
                run["details"] = json.loads(run["details"] or "{}")
            runs.append(run)
        return mark_crashed(runs, self.host, self.database, self._committed_by)

    def _committed_by(self, run_ids: Sequence[str]) -> dict[str, Committed]:
        with db_call("SELECT", TRACKING), self._session() as client:
            return committed_by(client, run_ids)

    def newest_record_time(self) -> float | None:
        """Epoch seconds of the newest usage row (for the data-lag figure), or None."""
        return self._newest("timestamp", DETAILS_TABLE)

    def newest_summary_time(self) -> float | None:
        """Epoch seconds of the newest counted record, from the rollup (cheap), or None."""
        return self._newest("last_timestamp", f"{SUMMARIES} FINAL")

    def _newest(self, column: str, table: str) -> float | None:
        """Epoch seconds of the largest ``column`` of ``table``; None when it has no row."""
        rows = self._query(f"SELECT toUnixTimestamp64Milli(max({column})), count() FROM {table}")
        if not rows or not rows[0][1]:
            return None
        return rows[0][0] / 1000.0

    def migration_alerts(
        self, migration_id: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Alert transitions (newest first), of one run or of all; [] before sql/005 is applied."""
        with self._session() as client:
            return read_alerts(client, migration_id, limit)

    def table_counts(self, tables: Sequence[str]) -> dict[str, int]:
        """Row counts (physical rows, before ``FINAL``) of ``tables`` that exist."""
        rows = self._query(
            "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
            "AND name IN {names:Array(String)}",
            {"names": list(tables)},
        )
        return {name: int(count or 0) for name, count in rows}

    def exact_counts(self, tables: Sequence[str]) -> dict[str, int]:
        """Row counts of ``tables`` that exist, as queries see them (``FINAL`` where the
        engine replaces rows), so background merges do not change them."""
        with self.reading():
            engines = self._query(
                "SELECT name, engine FROM system.tables WHERE database = currentDatabase() "
                "AND name IN {names:Array(String)}",
                {"names": list(tables)},
            )
            counts = {}
            for name, engine in engines:
                final = " FINAL" if "Replacing" in engine else ""
                counts[name] = int(self._query(f"SELECT count() FROM `{name}`{final}")[0][0])
            return counts


def _plain(value: Any) -> Any:
    """Dates and datetimes as ISO strings, for JSON."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def read_alerts(
    client: Client, migration_id: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Rows of ``migration_alerts`` as dicts (``raised_at`` in epoch seconds), newest first."""
    if not query_rows(client, f"EXISTS TABLE {ALERTS}")[0][0]:
        return []
    where, params = "1", {"limit": limit}
    if migration_id is not None:
        where, params["m"] = "migration_id = {m:String}", migration_id
    with db_call("SELECT", ALERTS):
        rows = query_rows(
            client,
            f"SELECT migration_id, run_kind, alert, toString(state), "
            f"toUnixTimestamp64Milli(raised_at) / 1000.0, metric, value, threshold, "
            f"window_seconds, message, host FROM {ALERTS} WHERE {where} "
            "ORDER BY raised_at DESC, alert LIMIT {limit:UInt32}",
            params,
        )
    return [dict(zip(ALERT_COLUMNS, row, strict=True)) for row in rows]

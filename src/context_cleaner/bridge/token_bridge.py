"""EnhancedTokenDatabaseBridge: the one class the pipeline and the dashboard talk to.

Writes go through :meth:`EnhancedTokenDatabaseBridge.writer`, one unit of work
under one hold of the database (and its lock). Reads each open their own
short session, so readers and a long-running sync interleave. Every read is
exact: details are read with ``FINAL`` and rule 4, summaries with ``FINAL``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner import __version__
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.details import default_host, default_user, insert_details
from context_cleaner.bridge.exceptions import translate_clickhouse_error
from context_cleaner.bridge.runs import mark_crashed, this_process
from context_cleaner.bridge.schema import setup_schema
from context_cleaner.bridge.summaries import (
    DETAILS,
    SUMMARIES,
    TOKEN_SUMS,
    refresh_summaries,
)
from context_cleaner.bridge.tracking import (
    FileCommit,
    TrackedFile,
    commit_files,
    compact_files,
    current_files,
)
from context_cleaner.errors import ConfigurationError, MigrationError
from context_cleaner.observability.telemetry import db_call

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from context_cleaner.analysis.pricing import PriceTable

log = logging.getLogger(__name__)

METADATA = "enhanced_analysis_metadata"
COUNTED = "counted_token_details"
"""The view of counted records: rule 3 by FINAL, then rule 4 (sql/004)."""
EXECUTION_LOG = "migration_execution_log"
ALERTS = "migration_alerts"
"""Alert transitions recorded by runs (sql/005)."""

#: Dimensions the summaries can be broken down by, and their column.
DIMENSIONS = {
    "session": "session_id",
    "day": "day",
    "model": "model",
    "project": "project",
    "host": "host",
}

TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "cost_usd",
    "record_count",
)


def utc(value: float | datetime | None) -> datetime | None:
    """Epoch seconds (or a datetime) as an aware UTC datetime, for DateTime64 columns."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


def totals_dict(values: Sequence[Any]) -> dict[str, Any]:
    """A row of :data:`TOKEN_KEYS` sums as the DESIGN §10 ``totals`` shape."""
    inp, out, c5, c1, read, cost, count = (values[i] or 0 for i in range(7))
    cache = int(c5) + int(c1)
    return {
        "input_tokens": int(inp),
        "output_tokens": int(out),
        "cache_creation_tokens": cache,
        "cache_read_tokens": int(read),
        "total_tokens": int(inp) + int(out) + cache + int(read),
        "cost_usd": round(float(cost), 10),
        "cache_creation_5m_tokens": int(c5),
        "cache_creation_1h_tokens": int(c1),
        "records": int(count),
    }


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

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if self.start is not None:
            clauses.append("day >= {start:Date}")
            params["start"] = self.start
        if self.end is not None:
            clauses.append("day <= {end:Date}")
            params["end"] = self.end
        for name in ("model", "project", "host"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{name} = {{{name}:String}}")
                params[name] = value
        if self.session is not None:
            clauses.append("session_id = {session:String}")
            params["session"] = self.session
        if self.search:
            clauses.append(
                "(positionCaseInsensitiveUTF8(session_id, {search:String}) > 0 "
                "OR positionCaseInsensitiveUTF8(project, {search:String}) > 0)"
            )
            params["search"] = self.search
        return (" AND ".join(clauses) or "1"), params


class BridgeWriter:
    """The write side of one unit of work (see :meth:`EnhancedTokenDatabaseBridge.writer`)."""

    def __init__(self, bridge: EnhancedTokenDatabaseBridge, client: Client) -> None:
        self._bridge = bridge
        self.client = client

    def insert_records(self, records: Sequence[UsageRecord], migration_id: str) -> int:
        prices = self._bridge.prices
        with db_call("INSERT", DETAILS, rows=len(records)):
            return self._insert_details(records, migration_id, prices)

    def _insert_details(
        self, records: Sequence[UsageRecord], migration_id: str, prices: PriceTable
    ) -> int:
        return insert_details(
            self.client,
            records,
            price=lambda r: prices.cost(
                r.model,
                r.input_tokens,
                r.output_tokens,
                r.cache_creation_5m_tokens,
                r.cache_creation_1h_tokens,
                r.cache_read_tokens,
                r.speed,
            ),
            migration_id=migration_id,
            host=self._bridge.host,
            user=self._bridge.user,
        )

    def refresh_summaries(
        self,
        sessions: Collection[str],
        migration_id: str,
        change: dict[str, float] | None = None,
    ) -> int:
        """Recompute the rollup of ``sessions``; ``change`` gets the net change of the
        counted totals (see :func:`~context_cleaner.bridge.summaries.refresh_summaries`)."""
        with db_call("REFRESH", SUMMARIES, sessions=len(sessions)):
            return refresh_summaries(self.client, sessions, migration_id, change)

    def commit_files(self, commits: Sequence[FileCommit], migration_id: str) -> None:
        with db_call("INSERT", "migration_file_tracking", rows=len(commits)):
            commit_files(self.client, commits, migration_id, self._bridge.host)

    def release_memory(self) -> None:
        """Give the embedded engine's freed memory back to the system (servers: nothing).

        chDB's allocator keeps freed pages for ~10 s, so a run of many units would carry
        each unit's peak into the next: a 1 GB migration reached 83-103 MiB of working
        memory. Released after each unit it stays at 64-66 MiB, for no measurable time
        (returning them at every free instead cost 5-10% of a migration's time).
        """
        if not self._bridge.database.url.is_embedded:
            return
        try:
            with db_call("SYSTEM"):
                self.client.command("SYSTEM JEMALLOC PURGE")
        except Exception as exc:  # harmless: memory stays with the engine a little longer
            log.debug("could not release the engine's freed memory: %s", exc)

    def compact_tracking(self, migration_id: str) -> None:
        """Drop this host's superseded tracking rows of ``migration_id`` (see compact_files)."""
        with db_call("DELETE", "migration_file_tracking"):
            compact_files(self.client, self._bridge.host, migration_id)

    def record_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Append alert transitions to ``migration_alerts`` (keys as its columns, times epoch s)."""
        if not alerts:
            return
        names = _ALERT_KEYS[:-1]  # all but host, which is this bridge's
        rows = [[utc(a[n]) if n == "raised_at" else a[n] for n in names] for a in alerts]
        self._insert(ALERTS, [[*r, self._bridge.host] for r in rows], _ALERT_KEYS)

    def log(
        self,
        migration_id: str,
        phase: str,
        operation: str,
        status: str,
        details: dict[str, Any] | str = "",
        processing_ms: float = 0.0,
    ) -> None:
        text = details if isinstance(details, str) else json.dumps(details, default=str)
        self._insert(
            EXECUTION_LOG,
            [
                [
                    migration_id,
                    utc(time.time()),
                    phase,
                    operation,
                    status,
                    text,
                    int(min(processing_ms, 2**32 - 1)),
                    self._bridge.host,
                ]
            ],
            (
                "migration_id",
                "execution_timestamp",
                "phase",
                "operation",
                "status",
                "details",
                "processing_time_ms",
                "host",
            ),
        )

    def save_run(self, run: dict[str, Any]) -> None:
        """Write (or rewrite) the run's row in ``enhanced_analysis_metadata``.

        A ``running`` row names this process in ``details.process`` (pid and start time),
        so a reader can tell when the run's process is gone (:mod:`.runs`).
        """
        if run.get("status") == "running":
            details = run.get("details")
            if isinstance(details, str):
                details = json.loads(details or "{}")
            run = {**run, "details": {**(details or {}), "process": this_process()}}
        row = {
            "host": self._bridge.host,
            "user": self._bridge.user,
            "tool_version": __version__,
            "updated_at": time.time(),
            **run,
        }
        for name in ("started_at", "finished_at", "updated_at"):
            if name in row:
                row[name] = utc(row[name])
        if isinstance(row.get("details"), dict):
            row["details"] = json.dumps(row["details"], default=str)
        names = tuple(row)
        self._insert(METADATA, [[row[n] for n in names]], names)

    def _insert(self, table: str, rows: list[list[Any]], names: Sequence[str]) -> None:
        try:
            with db_call("INSERT", table, rows=len(rows)):
                self.client.insert(table, rows, column_names=list(names))
        except MigrationError:
            raise
        except Exception as exc:
            raise translate_clickhouse_error(exc, action=f"writing to {table}") from exc


class EnhancedTokenDatabaseBridge:
    """ClickHouse side of context_cleaner: usage rows, rollups, tracking, runs, reads."""

    def __init__(
        self,
        database: Database | str | None = None,
        *,
        prices: PriceTable | None = None,
        host: str | None = None,
        user: str | None = None,
    ) -> None:
        self.database = database if isinstance(database, Database) else Database(database)
        if prices is None:  # imported here: pricing pulls in pydantic, which a no-op sync skips
            from context_cleaner.analysis.pricing import PriceTable

            prices = PriceTable.load()
        self.prices = prices
        self.host = default_host() if host is None else host
        self.user = default_user() if user is None else user

    def __repr__(self) -> str:
        return f"EnhancedTokenDatabaseBridge({self.database.url.redacted()!r})"

    # -- set-up and writes ---------------------------------------------------------------

    def setup_migration_infrastructure(self) -> list[str]:
        """Apply pending schema files; returns the names applied (empty when up to date)."""
        with db_call("SCHEMA"), self.database.session() as client:
            return setup_schema(client)

    @contextlib.contextmanager
    def writer(self) -> Iterator[BridgeWriter]:
        """One unit of work: the database held (and locked) until the block ends.

        Bumps the database's write generation first (see :func:`read_generation`).
        """
        with db_call("WRITE"), self.database.session() as client:
            bump_generation(self.database)
            yield BridgeWriter(self, client)

    # -- reads ---------------------------------------------------------------------------

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
            token = _READ_SESSION.set((self, client))
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
        with db_call("SELECT", _table_of(sql)), self._session() as client:
            return query_rows(client, sql, parameters)

    def is_initialised(self) -> bool:
        """True when the schema exists (nothing has been migrated before otherwise)."""
        rows = self._query("EXISTS TABLE " + DETAILS)
        return bool(rows and rows[0][0])

    def get_migration_totals(self) -> dict[str, Any]:
        """Exact totals over every usage row (``FINAL``, rule 4): the source of truth."""
        rows = self._query(f"SELECT {TOKEN_SUMS} FROM {COUNTED}")
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
            f"SELECT session_id, {TOKEN_SUMS} FROM {COUNTED} WHERE {where} GROUP BY session_id",
            params,
        )
        return {r[0]: totals_dict(r[1:]) for r in rows}

    def summary_totals(self, filters: Filters | None = None) -> dict[str, Any]:
        """Totals from the rollup (what the dashboard shows)."""
        where, params = (filters or Filters()).where()
        rows = self._query(f"SELECT {_SUMMARY_SUMS} FROM {SUMMARIES} FINAL WHERE {where}", params)
        return totals_dict(rows[0])

    def totals_by(
        self,
        dimension: str,
        filters: Filters | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order: str = "total_tokens",
    ) -> list[dict[str, Any]]:
        """Totals grouped by session, day, model, project or host (from the rollup)."""
        column = DIMENSIONS.get(dimension)
        if column is None:
            raise ConfigurationError(
                f"Unknown breakdown {dimension!r}; choose one of {', '.join(DIMENSIONS)}."
            )
        where, params = (filters or Filters()).where()
        order_sql = {
            "total_tokens": "total DESC, key",
            "cost_usd": "cost_usd DESC, key",
            "key": "key",
            "last_timestamp": "last DESC, key",
        }.get(order)
        if order_sql is None:
            raise ConfigurationError(f"Unknown order {order!r}.")
        extra = ", any(project), min(first_timestamp) AS first, max(last_timestamp) AS last"
        sql = (
            f"SELECT {column} AS key, {_SUMMARY_SUMS}, input_tokens + output_tokens + "
            f"cache_creation_5m_tokens + cache_creation_1h_tokens + cache_read_tokens AS total"
            f"{extra} FROM {SUMMARIES} FINAL WHERE {where} GROUP BY key ORDER BY {order_sql}"
        )
        if limit is not None:
            sql += " LIMIT {limit:UInt64} OFFSET {offset:UInt64}"
            params.update(limit=limit, offset=offset)
        out = []
        for row in self._query(sql, params):
            item = {dimension: _plain(row[0]), **totals_dict(row[1:8])}
            item.update(
                project=row[9], first_timestamp=_plain(row[10]), last_timestamp=_plain(row[11])
            )
            out.append(item)
        return out

    def count_sessions(self, filters: Filters | None = None) -> int:
        where, params = (filters or Filters()).where()
        rows = self._query(
            f"SELECT uniqExact(session_id) FROM {SUMMARIES} FINAL WHERE {where}", params
        )
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
        columns = []
        for dimension in dimensions:
            if dimension not in DIMENSIONS:
                raise ConfigurationError(
                    f"Unknown breakdown {dimension!r}; choose one of {', '.join(DIMENSIONS)}."
                )
            columns.append(DIMENSIONS[dimension])
        where, params = (filters or Filters()).where()
        n = len(columns)
        sql = (
            f"SELECT {', '.join(columns)}, {', '.join(f'grouping({c})' for c in columns)}, "
            f"{_SUMMARY_SUMS}, any(project), min(first_timestamp), max(last_timestamp), "
            f"uniqExact(cityHash64(session_id)) FROM {SUMMARIES} FINAL WHERE {where} "
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

    def tracked_files(self) -> list[TrackedFile]:
        """This host's files and how far each is committed."""
        with db_call("SELECT", "migration_file_tracking"), self._session() as client:
            return current_files(client, self.host)

    def migration_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs (migrate, sync, validate, rollback), newest first; a run marked
        running whose process on this host is gone is shown ``crashed`` (:mod:`.runs`)."""
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
        return mark_crashed(runs, self.host, self.database)

    def newest_record_time(self) -> float | None:
        """Epoch seconds of the newest usage row (for the data-lag figure), or None."""
        rows = self._query(f"SELECT toUnixTimestamp64Milli(max(timestamp)), count() FROM {DETAILS}")
        if not rows or not rows[0][1]:
            return None
        return rows[0][0] / 1000.0

    def newest_summary_time(self) -> float | None:
        """Epoch seconds of the newest counted record, from the rollup (cheap), or None."""
        rows = self._query(
            f"SELECT toUnixTimestamp64Milli(max(last_timestamp)), count() FROM {SUMMARIES} FINAL"
        )
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


def generation_path(database: Database) -> Path | None:
    """``<database dir>.generation`` beside an on-disk embedded database; else None."""
    lock = database.lock_path
    return None if lock is None else lock.with_name(Path(database.url.path).name + ".generation")


def read_generation(database: Database) -> str | None:
    """The token every :meth:`EnhancedTokenDatabaseBridge.writer` replaces before writing.

    Two equal reads mean no unit of work wrote in between (writers take it under the
    lock), so a cache of committed state keyed by it (the sync's stat cache) stays
    valid without opening the engine. ``""`` before the first write; None for servers.
    """
    path = generation_path(database)
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def bump_generation(database: Database) -> None:
    """Replace the generation token atomically; when that fails, remove it (never leave it
    stale: an empty or missing token is never trusted by a cache)."""
    path = generation_path(database)
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        tmp.write_text(secrets.token_hex(16) + "\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()


_READ_SESSION: ContextVar[tuple[EnhancedTokenDatabaseBridge, Client] | None] = ContextVar(
    "context_cleaner_read_session", default=None
)
"""The session of the innermost :meth:`EnhancedTokenDatabaseBridge.reading` block, if any."""

_SUMMARY_SUMS = (
    "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_creation_5m_tokens) AS cache_creation_5m_tokens, "
    "sum(cache_creation_1h_tokens) AS cache_creation_1h_tokens, "
    "sum(cache_read_tokens) AS cache_read_tokens, sum(cost_usd) AS cost_usd, "
    "sum(record_count) AS record_count"
)


def _plain(value: Any) -> Any:
    """Dates and datetimes as ISO strings, for JSON."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


_ALERT_KEYS = (
    "migration_id",
    "run_kind",
    "alert",
    "state",
    "raised_at",
    "metric",
    "value",
    "threshold",
    "window_seconds",
    "message",
    "host",
)


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
    return [dict(zip(_ALERT_KEYS, row, strict=True)) for row in rows]


_FROM_RE = re.compile(r"\bFROM\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def _table_of(sql: str) -> str:
    """The first table a query reads (for span names), or ``""``."""
    match = _FROM_RE.search(sql)
    return match.group(1) if match else ""


def query_rows(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
    try:
        return list(client.query(sql, parameters=parameters or {}).result_rows)
    except MigrationError:
        raise
    except Exception as exc:
        raise translate_clickhouse_error(exc, action="reading the database") from exc

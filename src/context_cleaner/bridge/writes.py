"""The write side of the bridge: one unit of work under one hold of the database.

``EnhancedTokenDatabaseBridge.writer()`` (:mod:`.token_bridge`) opens the database (and
its lock) once and hands out a :class:`BridgeWriter`, which
inserts usage rows, refreshes the rollup of the sessions they touched, commits file
tracking, and appends run rows, log lines and alert transitions. Rows go first, then
the rollup, then the committed offsets (DESIGN §5): a crash in between replays a range,
which the tables' keys make harmless.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge.buckets import BUCKETS, recompute_buckets, refresh_buckets, summary_rows
from context_cleaner.bridge.details import DETAILS_TABLE, insert_details
from context_cleaner.bridge.generation import note_commits
from context_cleaner.bridge.queries import in_parts, insert_rows
from context_cleaner.bridge.rebuild import rebuild_rollups
from context_cleaner.bridge.runs import this_process
from context_cleaner.bridge.summaries import (
    SUMMARIES,
    refresh_summaries,
    sessions_holding,
    widen_sessions,
)
from context_cleaner.bridge.tables import ALERT_COLUMNS, ALERTS, EXECUTION_LOG, METADATA
from context_cleaner.bridge.tracking import TRACKING, FileCommit, commit_files, compact_files
from context_cleaner.observability.telemetry import db_call
from context_cleaner.version import __version__

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from context_cleaner.analysis.pricing import PriceTable
    from context_cleaner.bridge.database import Database

log = logging.getLogger(__name__)


def utc(value: float | datetime | None) -> datetime | None:
    """Epoch seconds (or a datetime) as an aware UTC datetime, for DateTime64 columns."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(value, UTC)


class WriterOwner(Protocol):
    """What a writer takes from its bridge: where it writes, how it prices, who writes."""

    database: Database
    prices: PriceTable
    host: str
    user: str


class BridgeWriter:
    """The write side of one unit of work (see ``EnhancedTokenDatabaseBridge.writer``)."""

    def __init__(self, bridge: WriterOwner, client: Client) -> None:
        self._bridge = bridge
        self.client = client
        self._displaced: set[str] = set()
        """Sessions that held a message id of the rows inserted since the last refresh."""

    def insert_records(
        self, records: Sequence[UsageRecord], migration_id: str, *, rollups: bool = True
    ) -> int:
        """Insert usage rows. ``rollups=False``: the caller rebuilds the rollups whole later
        (:meth:`rebuild_rollups`), so the sessions holding these messages are not looked up
        for :meth:`refresh_summaries`."""
        bridge = self._bridge
        if rollups:
            ids = {r.message_id for r in records if r.message_id}  # synthetic ids never move
            with db_call("SELECT", DETAILS_TABLE, rows=len(ids)):
                self._displaced |= sessions_holding(self.client, ids)
        with db_call("INSERT", DETAILS_TABLE, rows=len(records)):
            inserted = insert_details(
                self.client,
                records,
                price=bridge.prices.price_record,
                migration_id=migration_id,
                host=bridge.host,
                user=bridge.user,
            )
        self.release_memory()  # before the rollups' selection adds its own
        return inserted

    def refresh_summaries(
        self,
        sessions: Collection[str],
        migration_id: str,
        change: dict[str, float] | None = None,
    ) -> int:
        """Recompute both rollups of ``sessions``, of the sessions the rows inserted since
        the last refresh may have taken records from, and of the sessions sharing a message
        id with them; ``change`` gets the net change of the counted totals (see
        :func:`~context_cleaner.bridge.summaries.refresh_summaries`)."""
        widened = widen_sessions(self.client, {*sessions, *self._displaced})
        # A session's rollup rows depend on its own rows and those sharing their message
        # ids only: a large set is recomputed in parts (statements stay small, in_parts).
        for part in in_parts(widened, times=3):
            with db_call("SELECT", DETAILS_TABLE, sessions=len(part)):
                fresh = recompute_buckets(self.client, part)
            self.release_memory()  # the selection's memory, before the rows are written
            with db_call("REFRESH", SUMMARIES, sessions=len(part)):
                days = summary_rows(fresh)
                refresh_summaries(self.client, part, migration_id, change, fresh=days)
            with db_call("REFRESH", BUCKETS, sessions=len(part)):
                refresh_buckets(self.client, part, migration_id, fresh=fresh)
        self._displaced.clear()
        return len(widened)

    def rebuild_rollups(self, migration_id: str, change: dict[str, float] | None = None) -> None:
        """Rebuild both rollups whole from the counted records (:mod:`.rebuild`); ``change``
        gets what the rebuild brought into the day rollup (see :func:`.rebuild.rebuild_rollups`)."""
        with db_call("REBUILD", f"{BUCKETS}, {SUMMARIES}"):
            rebuild_rollups(self.client, migration_id, change)
        self.release_memory()

    def commit_files(self, commits: Sequence[FileCommit], migration_id: str) -> None:
        with db_call("INSERT", TRACKING, rows=len(commits)):
            commit_files(self.client, commits, migration_id, self._bridge.host)
        note_commits(self._bridge.database, commits)  # a sync watching its writes keeps them

    def release_memory(self) -> None:
        """Give the embedded engine's freed memory back to the system
        (:func:`release_engine_memory`)."""
        release_engine_memory(self._bridge.database, self.client)

    def compact_tracking(self, migration_id: str) -> None:
        """Drop this host's superseded tracking rows of ``migration_id`` (see compact_files)."""
        with db_call("DELETE", TRACKING):
            compact_files(self.client, self._bridge.host, migration_id)

    def record_alerts(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Append alert transitions to ``migration_alerts`` (keys as its columns, times epoch s)."""
        if not alerts:
            return
        names = ALERT_COLUMNS[:-1]  # all but host, which is this bridge's
        rows = [[utc(a[n]) if n == "raised_at" else a[n] for n in names] for a in alerts]
        self._insert(ALERTS, [[*r, self._bridge.host] for r in rows], ALERT_COLUMNS)

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
        with db_call("INSERT", table, rows=len(rows)):
            insert_rows(self.client, table, rows, list(names), action=f"writing to {table}")


def release_engine_memory(database: Database, client: Client) -> None:
    """Give the embedded engine's freed memory back to the system (servers: nothing); for
    a unit of work (``BridgeWriter.release_memory``) and for reads that select much.

    chDB's allocator keeps freed pages for ~10 s, so a run of many units would carry
    each unit's peak into the next: a 1 GB migration reached 83-103 MiB of working
    memory. Released after each unit it stays at 64-66 MiB, for no measurable time
    (returning them at every free instead cost 5-10% of a migration's time). Released
    also after a unit's insert and after its rollups' selection (~9 ms each), the
    private peak of 20,000 small files fell from 188-192 to 180 MiB (sampled every
    10 ms from outside).
    """
    if not database.url.is_embedded:
        return
    try:
        with db_call("SYSTEM"):
            client.command("SYSTEM JEMALLOC PURGE")
    except Exception as exc:  # harmless: memory stays with the engine a little longer
        log.debug("could not release the engine's freed memory: %s", exc)

"""The ``database`` source: the migrated data, read through the bridge.

Read-only twice over: the dashboard only calls the bridge's read methods, and
its sessions run with ClickHouse's ``readonly = 2`` (no writes, no DDL). Each
request is one unit of work (:meth:`Database.reserve` and
:meth:`EnhancedTokenDatabaseBridge.reading`). The database yields to writers:
while a ``sync`` or ``migrate`` waits, new requests wait (or are answered from
:mod:`~context_cleaner.dashboard.answers`) until it has had its turn, so it
waits for the requests already running only. A database that does not exist
yet is reported as empty, never created.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.bridge import (
    Database,
    EnhancedTokenDatabaseBridge,
    database_exists,
    totals_dict,
)
from context_cleaner.dashboard import health
from context_cleaner.dashboard.filters import EVERYTHING, Page, QueryFilters
from context_cleaner.dashboard.keeper import DEFAULT_IDLE, EngineKeeper

OPTIONS_TTL = 10.0
"""Seconds the filter menus (every model, project, host) are reused before re-reading."""
READ_ONLY = {"readonly": 2}
"""ClickHouse settings of every dashboard session: reads only (settings may still be set)."""


class DatabaseSource:
    """Dashboard data from ClickHouse (embedded or server), via the bridge."""

    kind = "database"

    def __init__(
        self,
        url: str | None = None,
        *,
        prices: PriceTable | None = None,
        host: str | None = None,
        keep_warm: float = DEFAULT_IDLE,
    ) -> None:
        """``keep_warm``: seconds the embedded engine stays open after the last request
        while no other process waits for it (0 = open and close it every request)."""
        self.database = Database(url, settings=READ_ONLY, yield_to_writers=True)
        self.bridge = EnhancedTokenDatabaseBridge(self.database, prices=prices, host=host)
        self.keeper = EngineKeeper(self.database, idle=keep_warm)
        self._options: tuple[float, dict[str, list[str]]] | None = None

    def _ready(self) -> bool:
        return database_exists(self.bridge)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.kind,
            "location": self.database.url.redacted(),
            "immediate_rollback": False,
            "banner": None,
            "initialised": self._ready(),
        }

    @contextlib.contextmanager
    def unit(self, wait: float | None = None) -> Iterator[None]:
        if not self.database.exists():
            yield
            return
        self.keeper.touch()
        try:
            with self.database.reserve(wait), self.bridge.reading():
                yield
        finally:
            self.keeper.touch()  # idle time counts from the end of the request

    def close(self) -> None:
        """Let go of the database (the dashboard is stopping)."""
        self.keeper.close()

    def totals(self, filters: QueryFilters) -> dict[str, Any]:
        if not self._ready():
            return totals_dict([0] * 7)
        return self.bridge.summary_totals(filters)

    def count_sessions(self, filters: QueryFilters) -> int:
        if not self._ready():
            return 0
        return self.bridge.count_sessions(filters)

    def breakdown(
        self, dimension: str, filters: QueryFilters, page: Page = EVERYTHING
    ) -> list[dict[str, Any]]:
        if not self._ready():
            return []
        items = self.bridge.totals_by(
            dimension,
            filters,
            limit=page.limit,
            offset=page.offset,
            order=page.order,
            descending=page.descending,
        )
        for item in items:
            item["first_timestamp"] = health.iso_utc(item.get("first_timestamp"))
            item["last_timestamp"] = health.iso_utc(item.get("last_timestamp"))
        return items

    def overview(self, filters: QueryFilters, limit: int) -> dict[str, Any]:
        if not self._ready():
            return {
                "totals": totals_dict([0] * 7),
                "sessions": 0,
                **{key: [] for key in ("days", "models", "projects", "hosts")},
            }
        got = self.bridge.summary_overview(filters)
        out: dict[str, Any] = {"totals": got["totals"], "sessions": got["sessions"]}
        for dimension in ("day", "model", "project", "host"):
            items = got[dimension] if dimension == "day" else got[dimension][:limit]
            for item in items:
                item["first_timestamp"] = health.iso_utc(item.get("first_timestamp"))
                item["last_timestamp"] = health.iso_utc(item.get("last_timestamp"))
            out[dimension + "s"] = items
        return out

    def options(self) -> dict[str, list[str]]:
        cached = self._options
        if cached is not None and time.monotonic() - cached[0] < OPTIONS_TTL:
            return cached[1]
        if not self._ready():
            return {"models": [], "projects": [], "hosts": []}
        empty = QueryFilters()
        options = {
            f"{dim}s": [str(i[dim]) for i in self.bridge.totals_by(dim, empty, order="key")]
            for dim in ("model", "project", "host")
        }
        self._options = (time.monotonic(), options)
        return options

    def health(self, runs_limit: int) -> dict[str, Any]:
        if not self._ready():
            freshness = {
                "newest_record_at": None,
                "newest_record_age_seconds": None,
                "data_lag_seconds": None,
                "last_sync_at": None,
                "checked_at": health.iso_utc(time.time()),
                **health.file_freshness([]),
            }
            alert = {
                "level": "warning",
                "message": f"No migrated data in {self.database.url.redacted()} yet; run "
                "`context-cleaner migrate`, or start the dashboard with --source direct.",
                "migration_id": None,
                "at": None,
            }
            return {"runs": [], "validation": None, "freshness": freshness, "alerts": [alert]}
        runs = self.bridge.migration_runs(limit=max(runs_limit, 20))
        newest = self.bridge.newest_summary_time()
        stats = health.on_disk(self.bridge.tracked_files())
        freshness = {
            "newest_record_at": health.iso_utc(newest),
            "newest_record_age_seconds": health.record_age(newest),
            "data_lag_seconds": health.data_lag(stats, newest),
            "last_sync_at": health.last_sync(runs),
            "checked_at": health.iso_utc(time.time()),
            **health.file_freshness(stats),
        }
        validation = health.validation_state(runs)
        recorded = health.firing_alerts(self.bridge.migration_alerts(limit=200))
        return {
            "runs": [health.present_run(r) for r in runs[:runs_limit]],
            "validation": validation,
            "freshness": freshness,
            "alerts": recorded + health.alerts(runs, freshness, validation),
        }

"""Where the dashboard's numbers come from: the database, or the transcripts directly.

Both sources answer the same questions with the same shapes, so the API and
the page do not care which one runs. ``database`` reads the migrated data
through the bridge (the normal mode); ``direct`` reads the transcripts through
the analysis layer (the spec's "immediate rollback": the dashboard keeps
working while the database is repaired).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from context_cleaner.dashboard.filters import EVERYTHING, Page, QueryFilters
from context_cleaner.dashboard.settings import DashboardSettings


class DashboardSource(Protocol):
    """What the API asks of a source. Every method returns plain JSON-able data."""

    kind: str
    """``database`` or ``direct``."""

    def describe(self) -> dict[str, Any]:
        """Which source, where it reads, and the banner to show (or None)."""

    def unit(self, wait: float | None = None) -> AbstractContextManager[None]:
        """One unit of work: the reads of one request share it (one database session).

        ``wait``: seconds to wait at most for the database (None: the lock timeout);
        then :class:`~context_cleaner.bridge.exceptions.DatabaseLockedError`."""

    def totals(self, filters: QueryFilters) -> dict[str, Any]:
        """The DESIGN §10 totals of everything matching ``filters``."""

    def count_sessions(self, filters: QueryFilters) -> int:
        """Distinct sessions matching ``filters``."""

    def breakdown(
        self, dimension: str, filters: QueryFilters, page: Page = EVERYTHING
    ) -> list[dict[str, Any]]:
        """Totals per day, model, project, host or session, the ``page`` asked for."""

    def overview(self, filters: QueryFilters, limit: int) -> dict[str, Any]:
        """``totals``, ``sessions``, and ``days`` (all), ``models``, ``projects``, ``hosts``
        (the ``limit`` largest), each item with its ``sessions`` count."""

    def options(self) -> dict[str, list[str]]:
        """Every model, project and host there is (for the filter menus)."""

    def health(self, runs_limit: int) -> dict[str, Any]:
        """``runs``, ``validation``, ``freshness`` and ``alerts``."""


def open_source(settings: DashboardSettings) -> DashboardSource:
    """The source ``settings`` asks for (nothing is read yet)."""
    from context_cleaner.analysis.pricing import PriceTable

    prices = PriceTable.load(settings.prices)
    if settings.source == "direct":
        from context_cleaner.dashboard.direct_source import DirectSource

        return DirectSource(settings.source_dirs or None, prices=prices)
    from context_cleaner.dashboard.database_source import DatabaseSource

    return DatabaseSource(settings.clickhouse_url, prices=prices)

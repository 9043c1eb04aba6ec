"""EnhancedTokenDatabaseBridge: the one class the pipeline and the dashboard talk to.

It is composed of the bridge's two sides: writes go through
:meth:`EnhancedTokenDatabaseBridge.writer`, a :class:`~.writes.BridgeWriter` for one
unit of work under one hold of the database (and its lock), which first replaces the
write generation (:mod:`.generation`); reads are :class:`~.reads.BridgeReads`, each in
its own short session. The names other code imports from here (``query_rows``,
``COUNTED``, ``Filters``, ``utc`` ...) are the parts' own, handed on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from context_cleaner.bridge.connection import import_client_library
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.details import COUNTED_VIEW
from context_cleaner.bridge.generation import bump_generation, read_generation
from context_cleaner.bridge.host import default_host, default_user
from context_cleaner.bridge.queries import query_rows
from context_cleaner.bridge.reads import BridgeReads, Filters, read_alerts, totals_dict
from context_cleaner.bridge.schema import setup_schema
from context_cleaner.bridge.tables import EXECUTION_LOG, METADATA
from context_cleaner.bridge.writes import BridgeWriter, utc
from context_cleaner.observability.telemetry import db_call

if TYPE_CHECKING:
    from context_cleaner.analysis.pricing import PriceTable

COUNTED = COUNTED_VIEW
"""The view of counted records (rule 3 by FINAL, then rule 4), by the name tests use."""

__all__ = [
    "COUNTED",
    "EXECUTION_LOG",
    "METADATA",
    "BridgeWriter",
    "EnhancedTokenDatabaseBridge",
    "Filters",
    "bump_generation",
    "query_rows",
    "read_alerts",
    "read_generation",
    "totals_dict",
    "utc",
]


class EnhancedTokenDatabaseBridge(BridgeReads):
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

    def load_client_library(self) -> None:
        """Import the client library (with the embedded engine's, ~0.2 s) now: opening the
        database later costs only its own time. A migration does it while a reader process
        discovers its transcripts (``MigrationRun.execute``)."""
        import_client_library(embedded=self.database.url.is_embedded)

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

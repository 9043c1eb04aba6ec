"""Open the database a :class:`~context_cleaner.settings.Settings` names: its URL parsed once.

Every surface (the command line, the Prefect flows, ``serve``) opens the database here
and passes the opened object down, so the URL is resolved (flag, then
``$CONTEXT_CLEANER_CLICKHOUSE_URL``, then the embedded default) in one place per command.
A URL the command line already checked (:func:`checked_url`) carries its parse, so it is
not parsed again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.url import DatabaseURL, parse_url

if TYPE_CHECKING:
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.settings import Settings


class CheckedURL(str):
    """A URL as it was given (a ``str``), with its parse: :func:`checked_url` made it."""

    parsed: DatabaseURL


def checked_url(text: str) -> CheckedURL:
    """``text``, parsed now (a bad URL raises ``ConfigurationError`` naming it redacted)."""
    checked = CheckedURL(text)
    checked.parsed = parse_url(text)
    return checked


def open_database(settings: Settings) -> Database:
    """The database of ``settings`` (nothing is connected yet: opening is lazy)."""
    url = settings.clickhouse_url
    return Database(url.parsed if isinstance(url, CheckedURL) else url)


def open_bridge(
    settings: Settings, database: Database | None = None
) -> EnhancedTokenDatabaseBridge:
    """The bridge over ``database`` (default: :func:`open_database`) with the settings'
    prices (``prices``, else ``$CONTEXT_CLEANER_PRICES``, else the bundled table)."""
    from context_cleaner.analysis.pricing import PriceTable
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge

    return EnhancedTokenDatabaseBridge(
        database or open_database(settings), prices=PriceTable.load(settings.prices)
    )

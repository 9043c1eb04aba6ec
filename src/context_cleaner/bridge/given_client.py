"""A database reached through a clickhouse-connect client the caller opened (the spec's
``HistoricalDataMigrator(clickhouse_client, ...)``).

:class:`ClientDatabase` is a :class:`~context_cleaner.bridge.database.Database` whose
sessions are that one client: every read and write of the bridge over it goes through
the caller's client (embedded chDB from ``clickhouse_connect.get_client(dsn="chdb:///dir")``
or a server client), which is never closed here. A clickhouse-connect client is not safe
for concurrent use, so sessions of one client take turns (one re-entrant lock per client,
shared by every wrapper of it).

What the client does not serve: reader processes (they read transcripts, never the
database), and other processes (``context-cleaner sync``, the dashboard): an embedded
directory open in the caller's process cannot be opened by another process until the
caller closes the client (chDB holds it; they fail naming this process).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.database import Database, _is_driver_error
from context_cleaner.bridge.exceptions import translate_clickhouse_error
from context_cleaner.bridge.snapshot import finish_interrupted_changes
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.bridge.url import DatabaseURL, parse_url
from context_cleaner.errors import ConfigurationError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

_TURNS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_TURNS_GUARD = threading.Lock()


def _turn(client: Client) -> threading.RLock:
    with _TURNS_GUARD:
        lock = _TURNS.get(client)
        if lock is None:
            lock = _TURNS[client] = threading.RLock()
        return lock


def client_url(client: Client) -> DatabaseURL:
    """Where ``client`` points (no password: a given client keeps its own credentials)."""
    path = getattr(client, "path", None)
    if type(client).__name__ == "ChdbClient" or path is not None:
        return parse_url("chdb://:memory:" if path in (None, ":memory:") else f"chdb://{path}")
    url = getattr(client, "url", None)
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"clickhouse_client must be a clickhouse-connect client, a URL or a Database; "
            f"got {type(client).__name__}."
        )
    parsed = parse_url(url)
    return DatabaseURL(
        scheme=parsed.scheme,
        host=parsed.host,
        port=parsed.port,
        username=str(getattr(client, "username", "") or ""),
        database=str(getattr(client, "database", "") or ""),
    )


def is_client(value: object) -> bool:
    """True for a clickhouse-connect client (anything with ``query``, ``command``, ``insert``)."""
    return all(callable(getattr(value, name, None)) for name in ("query", "command", "insert"))


class ClientDatabase(Database):
    """A :class:`Database` whose every session is the caller's ``client`` (see module doc).

    ``database``: run in this ClickHouse database of the client instead of its own
    (what :meth:`scratch` uses); the client's setting is restored after each session.
    """

    def __init__(self, client: Client, *, database: str | None = None) -> None:
        super().__init__(client_url(client))
        self.client = client
        self.database_name = database
        self._turn = _turn(client)
        self._checked = False

    def __repr__(self) -> str:
        where = f" database {self.database_name}" if self.database_name else ""
        return f"ClientDatabase({self.url.redacted()!r}{where})"

    @property
    def lock_path(self) -> Path | None:
        # A scratch database shares the directory but none of its side files (the sync's
        # stat cache, the write generation): they describe the directory's own database.
        return None if self.database_name is not None else super().lock_path

    @contextlib.contextmanager
    def session(self) -> Iterator[Client]:
        """The caller's client for one unit of work (sessions of one client take turns)."""
        with self._turn:
            client = self.client
            saved = None
            try:
                if self.database_name is not None:
                    # restored by name: a chDB client keeps a database it was switched to
                    # when its ``database`` is set back to None
                    saved = client.database or str(client.command("SELECT currentDatabase()"))
                    client.database = self.database_name
                if not self._checked:  # what a killed rollback left half-done, as open does
                    finish_interrupted_changes(client)
                    self._checked = True
                yield client
            except Exception as exc:
                if _is_driver_error(exc):
                    raise translate_clickhouse_error(exc, target=self.url.redacted()) from exc
                raise
            finally:
                if saved is not None:
                    client.database = saved

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        yield  # the client stays open anyway

    @contextlib.contextmanager
    def reserve(self, timeout: float | None = None) -> Iterator[None]:
        yield  # the client's turn is taken by each session

    def someone_waiting(self) -> bool:
        return False

    def writer_waiting(self) -> bool:
        return False

    @contextlib.contextmanager
    def scratch(self) -> Iterator[ClientDatabase]:
        """A new, empty ClickHouse database on the same client, dropped afterwards (the
        testing API's scratch database: chDB opens one directory per process)."""
        name = f"context_cleaner_scratch_{uuid.uuid4().hex[:12]}"
        with self._turn:
            self.client.command(f"CREATE DATABASE {name}")
        try:
            yield ClientDatabase(self.client, database=name)
        finally:
            with self._turn, contextlib.suppress(Exception):
                self.client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def bridge_for(
    client: Client | Database | str | None, bridge: EnhancedTokenDatabaseBridge | None
) -> EnhancedTokenDatabaseBridge:
    """The bridge a migrator uses: ``bridge`` (bound to ``client`` when that is a client
    of the same database), else one over ``client``."""
    database: Database | str | None = (
        ClientDatabase(client) if is_client(client) else client  # type: ignore[arg-type]
    )
    if bridge is None:
        return EnhancedTokenDatabaseBridge(database)
    if isinstance(database, ClientDatabase) and bridge.database is not database:
        if isinstance(bridge.database, ClientDatabase) and bridge.database.client is client:
            return bridge
        if bridge.database.url != database.url:
            raise ConfigurationError(
                f"bridge_service uses {bridge.database.url.redacted()} but clickhouse_client "
                f"{database.url.redacted()}; give both the same database."
            )
        bridge.database = database  # the caller's client serves the bridge's reads and writes
    return bridge

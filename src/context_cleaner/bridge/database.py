"""A database target and its unit-of-work sessions (DESIGN §4).

``Database(url).session()`` is how every other part of the package talks to
ClickHouse::

    with Database(url).session() as client:
        client.insert(...)

For the embedded engine a session takes the inter-process lock (bounded wait,
then :class:`DatabaseLockedError` naming the holder), opens a chDB client,
yields it, closes it (which releases the engine; reopening costs ~35 ms) and
releases the lock. So the dashboard, the CLI and the sync can share one
directory, each holding it only for one unit of work. For a server a session
just opens a client (retrying connection errors) and closes it.

A reader that must never hold up writers (the dashboard) is built with
``yield_to_writers=True`` and wraps each request in :meth:`Database.reserve`:
while a ``sync`` or ``migrate`` waits, new requests neither take the free lock
nor join the dashboard's own hold, so the writer gets the database once the
requests already running end (see :mod:`context_cleaner.bridge.lock`).

Driver errors raised inside the block leave it as :class:`MigrationError`
subclasses, so no caller ever handles a clickhouse-connect exception type.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from context_cleaner.bridge.connection import (
    RetryPolicy,
    close_client,
    let_cleanup_run,
    open_client,
)
from context_cleaner.bridge.exceptions import translate_clickhouse_error
from context_cleaner.bridge.lock import (
    DEFAULT_LOCK_TIMEOUT,
    PROCESS_LOCKS,
    lock_path_for,
    someone_waiting,
    writer_waiting,
)
from context_cleaner.bridge.url import DatabaseURL, resolve_url
from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import LOCK_TIMEOUT_ENV

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)


WRITER_TURN = 2.0
"""Seconds a process that does not yield (a migration, a sync) keeps the embedded
database across its units of work while only yielding readers (the dashboard) wait.
Each hand-over costs both sides an engine open (0.1-0.3 s) and the reader's
requests, so handing over after every unit made a migration 3.8x slower with 4
clients polling (20 MB corpus; 2.3x with this turn, docs/benchmarks.md); the
dashboard answers from its kept answers meanwhile. Any other waiter gets the
database after the current unit, as before."""


def _lock_timeout(explicit: float | None, environ: Mapping[str, str]) -> float:
    if explicit is not None:
        return explicit
    raw = environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_LOCK_TIMEOUT:  # also NaN; inf overflowed the waits
        raise ConfigurationError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds from 0 to "
            f"{MAX_LOCK_TIMEOUT:.0f}. Fix or unset it."
        )
    return value


MAX_LOCK_TIMEOUT = 7 * 24 * 3600.0
"""The longest wait for the database :data:`LOCK_TIMEOUT_ENV` may ask for (a week)."""


def _is_driver_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("clickhouse_connect", "chdb", "_chdb"))


class Database:
    """One ClickHouse target (embedded directory or server) and how to reach it safely."""

    def __init__(
        self,
        url: str | DatabaseURL | None = None,
        *,
        lock_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        settings: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        yield_to_writers: bool = False,
    ) -> None:
        """``url`` as for :func:`resolve_url`; ``lock_timeout`` seconds to wait for another
        process (default ``$CONTEXT_CLEANER_LOCK_TIMEOUT`` or 30); ``retry`` for servers;
        ``settings`` ClickHouse settings for every query of every session;
        ``yield_to_writers``: take the embedded database only while no process that does
        not yield waits for it (a reader that polls: the dashboard)."""
        env = os.environ if environ is None else environ
        self.url = resolve_url(url, env)
        self.lock_timeout = _lock_timeout(lock_timeout, env)
        self.retry = retry or RetryPolicy()
        self.settings = dict(settings or {})
        self.yield_to_writers = yield_to_writers
        self._guard = threading.Lock()
        self._hold_depth = 0
        self._parked: tuple[Client, contextlib.AbstractContextManager[Any]] | None = None

    @property
    def lock_path(self) -> Path | None:
        """The inter-process lock file, for an on-disk embedded database; else None."""
        if self.url.is_embedded and not self.url.is_memory:
            return lock_path_for(self.url.path)
        return None

    def exists(self) -> bool:
        """False when an on-disk embedded database's folder is missing (found out without
        creating it); a server's database is not asked here."""
        return not (
            self.url.is_embedded and not self.url.is_memory and not Path(self.url.path).exists()
        )

    def __repr__(self) -> str:
        return f"Database({self.url.redacted()!r})"

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Within this block, sessions share one open engine while no other process waits.

        Reopening the embedded engine costs ~30-50 ms a session; a run of many
        units of work (a migration) keeps it open between them instead. At the end
        of each session the holder checks whether another process is waiting for
        the lock; if so it closes and releases, so a reader waits at most one unit
        of work. Servers need nothing of this (their sessions hold no lock).
        """
        with self._guard:
            self._hold_depth += 1
        try:
            yield
        finally:
            with self._guard:
                self._hold_depth -= 1
                parked = self._parked if self._hold_depth == 0 else None
                if parked is not None:
                    self._parked = None
            if parked is not None:
                _close_parked(parked)

    @contextlib.contextmanager
    def reserve(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock (not the engine) for a reader's whole unit of work.

        Sessions inside the block share the hold. With ``yield_to_writers`` the block
        first steps aside while a writer waits (it neither joins this process's hold
        nor takes the free lock), so the writer's wait is the reads already running.
        ``timeout`` (default ``lock_timeout``) bounds the wait; then
        :class:`DatabaseLockedError` names the holder. Servers: nothing to hold.
        """
        lock_path = self.lock_path
        if lock_path is None:
            yield
            return
        if self.yield_to_writers and writer_waiting(lock_path):
            with self._guard:  # an engine parked between requests: close it now
                parked, self._parked = self._parked, None
            if parked is not None:
                _close_parked(parked)
        with PROCESS_LOCKS.hold(
            lock_path,
            timeout=self.lock_timeout if timeout is None else timeout,
            description=self.url.path,
            yield_to_writers=self.yield_to_writers,
            step_aside=self.yield_to_writers,
        ):
            yield

    @contextlib.contextmanager
    def session(self) -> Iterator[Client]:
        """A connected client for one unit of work; see the module docstring."""
        with self._guard:
            parked, self._parked = self._parked, None
        if parked is not None:
            client, hold = parked
        else:
            lock_path = self.lock_path
            hold = (
                PROCESS_LOCKS.hold(
                    lock_path,
                    timeout=self.lock_timeout,
                    description=self.url.path,
                    yield_to_writers=self.yield_to_writers,
                )
                if lock_path is not None
                else contextlib.nullcontext()
            )
            hold.__enter__()
            try:
                started = time.perf_counter()
                client = open_client(self.url, retry=self.retry, settings=self.settings)
                log.debug("opened %s in %.1f ms", self.url, (time.perf_counter() - started) * 1e3)
            except BaseException:
                hold.__exit__(None, None, None)
                raise
        healthy = False
        try:
            yield client
            healthy = True
        except Exception as exc:
            if _is_driver_error(exc):
                raise translate_clickhouse_error(exc, target=self.url.redacted()) from exc
            raise
        finally:
            if healthy and self._may_park():
                with self._guard:
                    if self._parked is None:
                        self._parked, client = (client, hold), None  # type: ignore[assignment]
            if client is not None:
                _close_parked((client, hold), tidy=healthy and self.lock_path is not None)

    def someone_waiting(self) -> bool:
        """True when another process waits for this embedded database's lock and should
        get it after the current unit of work: always for a yielding database; else when
        the waiter does not yield, or this process has held it for ``WRITER_TURN``."""
        lock_path = self.lock_path
        if lock_path is None or not someone_waiting(lock_path):
            return False
        if self.yield_to_writers or writer_waiting(lock_path):
            return True
        held = PROCESS_LOCKS.held_for(lock_path)
        return held is None or held >= WRITER_TURN

    def writer_waiting(self) -> bool:
        """True when a process that does not yield to writers waits for this database."""
        lock_path = self.lock_path
        return lock_path is not None and writer_waiting(lock_path)

    def _may_park(self) -> bool:
        return self._hold_depth > 0 and self.lock_path is not None and not self.someone_waiting()


def _close_parked(
    parked: tuple[Client, contextlib.AbstractContextManager[Any]], *, tidy: bool = True
) -> None:
    """Close an embedded engine's client and release its lock; ``tidy``: first let the
    engine delete the parts it replaced when many are left (:func:`let_cleanup_run`)."""
    client, hold = parked
    try:
        if tidy:
            let_cleanup_run(client)
        close_client(client)
    finally:
        hold.__exit__(None, None, None)


class _Bridge(Protocol):
    """What :func:`database_exists` needs of an ``EnhancedTokenDatabaseBridge``."""

    database: Database

    def is_initialised(self) -> bool: ...


def database_exists(bridge: _Bridge) -> bool:
    """True when the schema exists; never creates an embedded database's folder to find out."""
    return bridge.database.exists() and bridge.is_initialised()

"""The dashboard's answers while writers use the database: shared, kept, marked stale.

The embedded database is open in one process at a time, and a ``sync`` or
``migrate`` comes first (the dashboard's database yields to writers, see
:mod:`context_cleaner.bridge.lock`). So while a writer waits or writes, a
request may not get the database at once. :class:`Answers` keeps the request's
answer working:

- **one read for concurrent equal requests**: a request that finds the same
  question (path and query) being read already waits for that read and gets
  its answer (as read then: ``as_of``);
- **the last answer per question is kept** (at most ``max_kept`` questions, for
  ``stale_for`` seconds). A request whose question has a kept answer waits at
  most ``patience`` seconds for the database; if a writer still has it, the
  kept answer is served, marked ``"stale": true`` with its ``as_of`` time and
  who holds the database (``busy``). A stale answer was true when it was read
  and says so; nothing is ever computed from a partial read;
- a question never answered before waits for the database as long as any
  reader does (the lock timeout), then fails with 503 (try again).

Every answer carries ``stale`` (false when read for this request or a
concurrent one) and ``as_of`` (ISO time of the read, UTC).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from context_cleaner.bridge import DatabaseLockedError
from context_cleaner.dashboard.health import iso_utc

PATIENCE = 1.0
"""Seconds a request with a kept answer waits for the database before serving that
answer (about one unit of work of a migration: ``COMMIT_EVERY``)."""
STALE_FOR = 600.0
"""Seconds after its read that a kept answer may still be served while the database is busy."""
MAX_KEPT = 256
"""Questions whose last answer is kept (the least recently asked go first)."""

Read = Callable[[float | None], dict[str, Any]]
"""Reads one answer from the source; its argument bounds the wait for the database
(None: the usual lock timeout)."""


@dataclass
class _Kept:
    body: dict[str, Any]
    read_at: float
    """``time.time()`` of the read."""


@dataclass
class _Flight:
    """A read in progress that equal requests wait for."""

    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    error: BaseException | None = None


def busy_text(exc: DatabaseLockedError) -> str:
    """Who has the database, for the page: ``process 123 (context-cleaner sync)``."""
    if exc.holder_pid is None:
        return "another process that writes to the database"
    command = f" ({exc.holder_command})" if exc.holder_command else ""
    return f"process {exc.holder_pid}{command}"


class Answers:
    """Kept and shared answers of one dashboard; thread-safe (see the module docstring)."""

    def __init__(
        self,
        *,
        patience: float = PATIENCE,
        stale_for: float = STALE_FOR,
        max_kept: int = MAX_KEPT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.patience = patience
        self.stale_for = stale_for
        self.max_kept = max_kept
        self.clock = clock
        self._guard = threading.Lock()
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._flights: dict[str, _Flight] = {}

    def get(self, question: str, read: Read) -> dict[str, Any]:
        """The answer to ``question``: read now, shared with a concurrent read, or kept."""
        with self._guard:
            flight = self._flights.get(question)
            leader = flight is None
            if flight is None:
                flight = self._flights[question] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.answer is not None:
                return dict(flight.answer)
            assert flight.error is not None
            return self._instead_of(question, flight.error)
        try:
            kept = self._kept_answer(question)
            try:
                body = read(self.patience if kept is not None else None)
            except DatabaseLockedError as exc:
                flight.error = exc
                return self._instead_of(question, exc)
            except BaseException as exc:
                flight.error = exc
                raise
            read_at = self.clock()
            with self._guard:
                self._kept[question] = _Kept(body, read_at)
                self._kept.move_to_end(question)
                while len(self._kept) > self.max_kept:
                    self._kept.popitem(last=False)
            flight.answer = {**body, "stale": False, "as_of": iso_utc(read_at)}
            return dict(flight.answer)
        finally:
            with self._guard:
                del self._flights[question]
            flight.done.set()

    def _kept_answer(self, question: str) -> _Kept | None:
        with self._guard:
            kept = self._kept.get(question)
        if kept is None or self.clock() - kept.read_at > self.stale_for:
            return None
        return kept

    def _instead_of(self, question: str, error: BaseException) -> dict[str, Any]:
        """The kept answer when the database was busy; else ``error`` again."""
        kept = self._kept_answer(question) if isinstance(error, DatabaseLockedError) else None
        if kept is None:
            raise error
        assert isinstance(error, DatabaseLockedError)
        return {
            **kept.body,
            "stale": True,
            "as_of": iso_utc(kept.read_at),
            "busy": busy_text(error),
        }

"""Keep the embedded engine open while the dashboard is in use and nobody else waits.

Each request is one unit of work on the bridge, and opening the embedded
engine costs 60-150 ms (measured with 1M rows), more than a whole request
should take. The bridge's :meth:`Database.held` lets sessions park their client
between units of work instead of closing it; :class:`EngineKeeper` holds that
block open on a thread of its own while requests keep coming, and leaves it
(closing the engine and releasing the lock) as soon as

- another process waits for the database (``sync``, ``migrate``, ``status``:
  waiters announce themselves, :func:`someone_waiting`), checked every
  ``poll`` seconds, or
- no request came for ``idle`` seconds, or the dashboard stops.

So a waiting sync gets the database within about one request plus ``poll``,
and an idle dashboard holds nothing. Servers (``http(s)://``) need none of it.
"""

from __future__ import annotations

import threading
import time

from context_cleaner.bridge import Database, someone_waiting

DEFAULT_IDLE = 15.0
DEFAULT_POLL = 0.05


class EngineKeeper:
    """Holds :meth:`Database.held` open between the requests of a busy dashboard."""

    def __init__(
        self, database: Database, *, idle: float = DEFAULT_IDLE, poll: float = DEFAULT_POLL
    ) -> None:
        self.database = database
        self.lock_path = database.lock_path
        self.idle = idle
        self.poll = poll
        self._cond = threading.Condition()
        self._last_used = 0.0
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def enabled(self) -> bool:
        return self.lock_path is not None and self.idle > 0

    @property
    def holding(self) -> bool:
        """True while the keeper thread holds the engine open."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def touch(self) -> None:
        """A request is starting: keep (or start keeping) the engine open."""
        if not self.enabled:
            return
        with self._cond:
            self._last_used = time.monotonic()
            if self._stopped or self.holding:
                return
            assert self.lock_path is not None
            if someone_waiting(self.lock_path):
                return  # let the waiter have it; this request opens and closes by itself
            self._thread = threading.Thread(
                target=self._hold, name="dashboard-engine-keeper", daemon=True
            )
            self._thread.start()

    def _hold(self) -> None:
        assert self.lock_path is not None
        with self.database.held():
            while True:
                with self._cond:
                    self._cond.wait(self.poll)
                    if self._stopped or time.monotonic() - self._last_used > self.idle:
                        return
                if someone_waiting(self.lock_path):
                    return

    def close(self) -> None:
        """Stop keeping the engine open (closes it once no request uses it)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

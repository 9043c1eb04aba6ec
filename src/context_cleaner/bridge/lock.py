"""An inter-process lock for the embedded database, with a bounded wait (DESIGN §4).

chDB lets one process at a time open a database directory; a second one fails
with ``Cannot lock file .../status``. So every unit of work takes this lock
first, and a process that cannot get it within the timeout learns which
process holds it instead of failing inside the engine.

The lock is ``fcntl.flock`` on ``<database dir>.lock``, a sibling of the
directory rather than a file inside it, so the directory can be removed or
replaced (schema rollback) while locked. The kernel drops the lock when its
holder dies, so it is never stale. The holder writes a JSON line with its pid,
command line, host and start time into the file; a waiter that times out reads
it and names the holder. The file itself is never deleted (deleting a lock file
that others have open races with them).

Within one process the lock is shared: :class:`ProcessLocks` hands nested or
concurrent users of the same path the one flock (chDB lets any number of
handles in the process that opened the engine use it).

Writers come first. A process that waits announces it with a shared ``flock`` on
``<lock>.wait`` (a holder that sees it lets go after its unit of work and hands
the lock over, see ``_HANDOFF``). A process that *yields to writers* (the
dashboard, whose requests never end while pages poll) takes the lock only while
no other kind of process waits: those also announce themselves on
``<lock>.writer``, and a yielding process neither takes the free lock nor lets a
new request join its own hold while one does. So a ``sync`` or ``migrate``
waits for about one read request however many clients poll the dashboard, and
the dashboard gets its turn between their units of work.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from context_cleaner.bridge.exceptions import DatabaseLockedError
from context_cleaner.errors import FileAccessError

DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds a process waits for another to release the database before giving up."""

_POLL_START = 0.005
_POLL_MAX = 0.05
"""Waiters poll the lock at most this far apart: a free lock is taken within ~50 ms
(a poll is one system call; 20 a second cost nothing measurable)."""

_HANDOFF = 0.5
"""A holder that released the lock while another process waited lets that waiter take
it before taking it again, for up to this long. Waiters poll (at most every
``_POLL_MAX``, later on a loaded machine), so without this a holder working in a loop
wins every race for the lock and a reader could wait for its whole run."""

_GATE_POLL = 0.005
"""How often a yielding user re-checks whether a waiting writer got its turn."""

_handed_off: dict[Path, float] = {}
"""When this process last released each lock while another process waited for it."""


def lock_path_for(database_dir: str | os.PathLike[str]) -> Path:
    """Where the lock for ``database_dir`` lives: ``<database_dir>.lock`` beside it."""
    path = Path(database_dir)
    return path.with_name(path.name + ".lock")


@dataclass(frozen=True)
class LockHolder:
    """What the process holding a lock wrote about itself."""

    pid: int | None
    command: str = ""
    host: str = ""
    since: float | None = None
    """``time.time()`` when the lock was taken."""

    def describe(self) -> str:
        """``process 123 (context-cleaner dashboard) on host, for 12 s`` or a fallback."""
        if self.pid is None:
            return "another process (it has not written its pid yet)"
        text = f"process {self.pid}"
        if self.command:
            text += f" ({self.command})"
        if self.host and self.host != socket.gethostname():
            text += f" on host {self.host}"
        if self.since is not None:
            text += f", holding it for {max(0.0, time.time() - self.since):.0f} s"
        return text


def read_holder(lock_file: str | os.PathLike[str]) -> LockHolder:
    """Read the holder's note from a lock file; unknown fields stay empty."""
    try:
        raw = Path(lock_file).read_text(encoding="utf-8", errors="replace").strip()
        data = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    since = data.get("since")
    return LockHolder(
        pid=pid if isinstance(pid, int) else None,
        command=str(data.get("command", "")),
        host=str(data.get("host", "")),
        since=float(since) if isinstance(since, (int, float)) else None,
    )


def _command_line() -> str:
    argv = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"]
    argv += sys.argv[1:]
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


class FileLock:
    """One exclusive ``flock`` on a file, taken with a bounded wait. Not re-entrant."""

    def __init__(self, path: str | os.PathLike[str], *, description: str = "") -> None:
        self.path = Path(path)
        self.description = description or str(self.path)
        self._fd: int | None = None
        self.taken_at: float | None = None
        """``time.monotonic()`` when this object took the lock (None while not held)."""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self, timeout: float = DEFAULT_LOCK_TIMEOUT, *, yield_to_writers: bool = False
    ) -> None:
        """Take the lock, waiting at most ``timeout`` seconds (0 = try once).

        With ``yield_to_writers`` the free lock is left alone while a process that does
        not yield waits for it (see the module docstring). Raises
        :class:`DatabaseLockedError` naming the holder when the wait runs out.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this object")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FileAccessError(
                f"Cannot create the lock file {self.path}: {exc.strerror}. "
                "Check that its folder is writable or choose another database path."
            ) from exc
        deadline = time.monotonic() + max(0.0, timeout)
        self._let_the_waiter_in(deadline)
        delay = _POLL_START
        announced: list[int] = []  # shared locks on the wait files say "someone waits"
        try:
            while True:
                try:
                    if yield_to_writers and writer_waiting(self.path):
                        raise BlockingIOError
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        announced = _announce_waiting(self.path, writer=not yield_to_writers)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        os.close(fd)
                        raise self.locked_error(timeout) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, _POLL_MAX)
                except OSError as exc:
                    os.close(fd)
                    raise FileAccessError(
                        f"Cannot lock {self.path}: {exc.strerror}. "
                        "Put the database on a local filesystem that supports flock."
                    ) from exc
        finally:
            for waiting in announced:
                os.close(waiting)  # closing drops the shared lock
        self._fd = fd
        self.taken_at = time.monotonic()
        self._write_note()

    def _let_the_waiter_in(self, deadline: float) -> None:
        """After handing the lock to a waiter, give it time to take it (see ``_HANDOFF``)."""
        handed = _handed_off.pop(self.path, None)
        if handed is None:
            return
        until = min(handed + _HANDOFF, deadline)
        while time.monotonic() < until and someone_waiting(self.path):
            time.sleep(0.005)

    def _write_note(self) -> None:
        assert self._fd is not None
        note = {
            "pid": os.getpid(),
            "command": _command_line(),
            "host": socket.gethostname(),
            "since": time.time(),
        }
        payload = (json.dumps(note) + "\n").encode()
        with contextlib.suppress(OSError):  # the note is informative; the flock is the lock
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, payload, 0)

    def locked_error(self, timeout: float, *, giving_way: bool = False) -> DatabaseLockedError:
        """The error a waiter raises after ``timeout`` seconds, naming the current holder
        (``giving_way``: this process holds it but lets a waiting writer go first)."""
        holder = read_holder(self.path)
        if (giving_way or holder.pid is None) and writer_waiting(self.path):
            holder = LockHolder(pid=None)
            who = "another process that is about to write (it waits for its turn)"
        else:
            who = holder.describe()
        return DatabaseLockedError(
            f"The database {self.description} is in use by {who}; "
            f"waited {timeout:g} s. Wait for it to finish (or stop it), then run again, "
            "or allow a longer wait with CONTEXT_CLEANER_LOCK_TIMEOUT=<seconds>.",
            path=self.description,
            holder_pid=holder.pid,
            holder_command=holder.command,
        )

    def release(self) -> None:
        """Release the lock (clearing the holder's note first). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self.taken_at = None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        if someone_waiting(self.path):
            _handed_off[self.path] = time.monotonic()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _wait_path(path: Path, suffix: str = ".wait") -> Path:
    return path.with_name(path.name + suffix)


def _announce_waiting(path: Path, *, writer: bool) -> list[int]:
    """Take shared locks on ``<lock>.wait`` (and ``<lock>.writer`` for a ``writer``) while
    waiting; the descriptors to close when done (fewer if a file cannot be locked)."""
    held: list[int] = []
    for suffix in (".wait", ".writer") if writer else (".wait",):
        try:
            fd = os.open(_wait_path(path, suffix), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        held.append(fd)
    return held


def someone_waiting(path: str | os.PathLike[str]) -> bool:
    """True when another process is waiting for the lock at ``path``.

    Waiters hold a shared lock on ``<lock>.wait``; an exclusive try fails while any does.
    """
    return _announced(_wait_path(Path(path)))


def writer_waiting(path: str | os.PathLike[str]) -> bool:
    """True when a process that does not yield to writers waits for the lock at ``path``."""
    return _announced(_wait_path(Path(path), ".writer"))


def _announced(wait_file: Path) -> bool:
    try:
        fd = os.open(wait_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class _Shared:
    """One path's lock as shared by the threads of this process."""

    def __init__(self, flock: FileLock) -> None:
        self.mutex = threading.Lock()
        self.flock = flock
        self.users = 0


class ProcessLocks:
    """Per-process registry sharing one :class:`FileLock` per path among threads and nesting.

    chDB lets any number of handles in one process use the engine that process
    opened, so within a process the lock is shared, not exclusive: the first
    user takes the flock (others wait for it, within the same timeout), the last
    one to leave releases it.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[Path, _Shared] = {}

    def _entry(self, path: Path, description: str) -> _Shared:
        with self._guard:
            entry = self._entries.get(path)
            if entry is None:
                entry = _Shared(FileLock(path, description=description))
                self._entries[path] = entry
            return entry

    def users(self, path: str | os.PathLike[str]) -> int:
        """How many blocks of this process hold the lock at ``path`` now."""
        entry = self._entries.get(Path(os.path.abspath(path)))
        return entry.users if entry else 0

    def held_for(self, path: str | os.PathLike[str]) -> float | None:
        """Seconds since this process took the lock at ``path`` (None when it does not hold it)."""
        entry = self._entries.get(Path(os.path.abspath(path)))
        taken = entry.flock.taken_at if entry is not None else None
        return None if taken is None else time.monotonic() - taken

    @contextlib.contextmanager
    def hold(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        description: str = "",
        yield_to_writers: bool = False,
        step_aside: bool = False,
    ) -> Iterator[None]:
        """Hold the lock at ``path`` for the block, waiting at most ``timeout`` seconds.

        ``yield_to_writers``: when this process has to take the flock, it leaves it to a
        waiting writer first (:meth:`FileLock.acquire`). ``step_aside`` (for a fresh unit
        of work of a yielding process, never for a nested one): while a writer waits, do
        not join this process's hold either; wait until it is released and the writer has
        had its turn.
        """
        path = Path(os.path.abspath(path))
        entry = self._entry(path, description)
        started = time.monotonic()
        if step_aside:
            while entry.users > 0 and writer_waiting(path):
                if time.monotonic() - started >= timeout:
                    raise entry.flock.locked_error(timeout, giving_way=True)
                time.sleep(_GATE_POLL)
        remaining = max(0.0, timeout - (time.monotonic() - started))
        acquired = (
            entry.mutex.acquire(timeout=remaining) if remaining > 0 else entry.mutex.acquire(False)
        )
        if not acquired:
            raise entry.flock.locked_error(timeout)
        try:
            if entry.users == 0:
                entry.flock.acquire(
                    max(0.0, timeout - (time.monotonic() - started)),
                    yield_to_writers=yield_to_writers,
                )
            entry.users += 1
        finally:
            entry.mutex.release()
        try:
            yield
        finally:
            with entry.mutex:
                entry.users -= 1
                if entry.users == 0:
                    entry.flock.release()

    def forget_after_fork(self) -> None:
        """In a forked child: drop inherited locks without unlocking them.

        The child shares the parent's open lock file; ``LOCK_UN`` there would release
        the parent's lock, so the child only closes its copy of the descriptor.
        """
        self._guard = threading.Lock()
        for entry in self._entries.values():
            fd, entry.flock._fd = entry.flock._fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._entries = {}


PROCESS_LOCKS = ProcessLocks()
"""The process-wide registry every :class:`~context_cleaner.bridge.database.Database` uses."""

os.register_at_fork(after_in_child=PROCESS_LOCKS.forget_after_fork)

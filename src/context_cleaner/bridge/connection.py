"""Open a clickhouse-connect client for a :class:`~context_cleaner.bridge.url.DatabaseURL`.

One client library serves both targets (DESIGN §4): ``chdb://`` gives an
in-process chDB engine (clickhouse-connect >= 1.12 has the backend built in),
``http(s)://`` a server. Server connections are retried with exponential
backoff on errors that may pass (refused, timeout, overload) and then fail with
:class:`DatabaseUnavailableError` naming ``host:port`` but never the password.

Opening the embedded engine does no waiting of its own: callers go through
:meth:`Database.session <context_cleaner.bridge.database.Database.session>`,
which holds the inter-process lock first. If another program opened the
directory without that lock, the engine's own ``status`` file lock tells us
which process it is, and :class:`DatabaseLockedError` names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.exceptions import (
    DAMAGED_FOLDER_HELP,
    DatabaseLockedError,
    DatabaseQueryError,
    DatabaseUnavailableError,
    connection_failure_reason,
    translate_clickhouse_error,
)
from context_cleaner.bridge.snapshot import finish_interrupted_changes
from context_cleaner.bridge.url import DatabaseURL, resolve_url
from context_cleaner.errors import ConfigurationError, MigrationError, TransientError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

MIN_CLICKHOUSE_CONNECT = "1.12"
"""The first clickhouse-connect with the built-in chDB backend used for ``chdb://``."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry connecting to a server."""

    attempts: int = 4
    """Connection attempts in total (1 = no retry)."""
    initial_delay: float = 0.5
    """Seconds before the second attempt; each later wait is ``multiplier`` times longer."""
    multiplier: float = 2.0
    max_delay: float = 8.0
    """Upper bound of one wait."""

    def delays(self) -> Iterator[float]:
        """The waits between attempts (``attempts - 1`` of them)."""
        delay = self.initial_delay
        for _ in range(max(0, self.attempts - 1)):
            yield min(delay, self.max_delay)
            delay *= self.multiplier


#: Optional imports of chDB that nothing here uses: on loading, ``chdb.state`` imports
#: pyarrow when installed (~0.08 s, and numpy with it).
ENGINE_OPTIONAL_IMPORTS = ("pyarrow",)

#: clickhouse-connect's probes for data-frame libraries, each imported on a process's
#: first insert only to ask whether the rows are a DataFrame or an array; ours never are.
#: pandas costs 0.4-1.5 s; numpy ~0.06 s and OpenBLAS threads that spin on a core
#: (~2% of a migration's CPU).
CLIENT_PROBES = {"pandas": ("pd", "pd_time_test"), "numpy": ("np",)}


def import_client_library(*, embedded: bool = False) -> None:
    """Import clickhouse-connect (with ``embedded``, chDB too) without what it never needs.

    The optional imports are hidden only while the libraries load, so a later
    ``import pyarrow`` anywhere still works (chDB's own Arrow output stays off in this
    process); the data-frame probes answer "not installed" unless the library is
    already loaded (nothing here passes DataFrames or arrays).
    """
    wanted = ["clickhouse_connect.driver"]
    if embedded:
        wanted += ["clickhouse_connect.driver._chdbclient", "chdb.state.sqlitelike"]
    wanted = [name for name in wanted if name not in sys.modules]
    if wanted:
        hidden = [name for name in ENGINE_OPTIONAL_IMPORTS if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
        try:
            for name in wanted:
                with contextlib.suppress(ImportError):  # no chDB: chdb_supported() says so
                    importlib.import_module(name)
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
    from clickhouse_connect.driver import options

    for library, probes in CLIENT_PROBES.items():
        if library not in sys.modules:
            for probe in probes:
                options.__dict__.setdefault(probe, None)


def _engine_loads_without_tz() -> bool:
    """Whether chDB, which failed to load here, loads in a Python without ``TZ``: the engine
    refuses a ``TZ`` it does not know with an ImportError that chDB reports as not installed."""
    env = {k: v for k, v in os.environ.items() if k != "TZ"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import chdb"], env=env, capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def chdb_supported() -> bool:
    """True when the installed clickhouse-connect can open ``chdb://`` URLs."""
    import_client_library(embedded=True)
    try:
        import clickhouse_connect.driver._chdbclient  # noqa: F401
    except ImportError:
        return False
    return True


def _require_chdb_backend() -> None:
    if chdb_supported():
        return
    zone = os.environ.get("TZ")
    if zone is not None and _engine_loads_without_tz():
        raise ConfigurationError(
            f"The embedded engine cannot start with TZ={zone!r}: it does not know that time "
            "zone. Set TZ to an IANA name (TZ=Europe/Berlin) or unset it (reports choose "
            "their days with --timezone)."
        )
    try:
        from importlib.metadata import version

        installed = version("clickhouse-connect")
    except Exception:  # pragma: no cover - metadata missing
        installed = "unknown"
    raise ConfigurationError(
        f"The embedded database (chdb://) needs clickhouse-connect >= {MIN_CLICKHOUSE_CONNECT} "
        f"with chdb installed; found clickhouse-connect {installed}. Reinstall context-cleaner "
        f"(pip install -U 'clickhouse-connect>={MIN_CLICKHOUSE_CONNECT}' chdb), or point "
        "CONTEXT_CLEANER_CLICKHOUSE_URL at a ClickHouse server."
    )


def open_client(
    url: str | DatabaseURL | None = None,
    *,
    retry: RetryPolicy | None = None,
    connect_timeout: float = 10.0,
    send_receive_timeout: float = 300.0,
    settings: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Client:
    """A connected clickhouse-connect client for ``url`` (resolved by :func:`resolve_url`).

    Before returning it finishes any change a killed process left half-done (a
    rollback: :func:`~context_cleaner.bridge.snapshot.finish_interrupted_changes`),
    so nothing ever reads a half-rolled-back database.

    For the embedded engine call this only while holding the database's lock
    (use :meth:`Database.session`). Raises :class:`MigrationError` subclasses only.
    """
    target = resolve_url(url)
    import_client_library(embedded=target.is_embedded)
    if target.is_embedded:
        client = _open_embedded(target, settings)
    else:
        client = _open_server(
            target,
            retry or RetryPolicy(),
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            settings=settings,
            sleep=sleep,
        )
    try:
        finished = finish_interrupted_changes(
            client, read_only=bool(settings and settings.get("readonly"))
        )
    except BaseException:
        close_client(client)
        raise
    for description in finished:
        log.warning("finished an interrupted change of %s: %s", target.redacted(), description)
    return client


#: Outdated parts (replaced by a merge or a rebuild, ~17 files each) an embedded engine may
#: leave behind when it closes; above this many, :func:`let_cleanup_run` waits for its
#: cleanup first. An hourly sync adds ~4, so one sync in ~25 waits, ~1 s.
OUTDATED_PARTS_WAIT_ABOVE = 100
#: The longest wait for that cleanup; it runs ~1-1.5 s after the engine starts
#: (``cleanup_delay_period``, sql/007_prompt_cleanup.sql).
OUTDATED_PARTS_WAIT_SECONDS = 3.0
_OUTDATED_PARTS = (
    "SELECT count() FROM system.parts WHERE database = currentDatabase() AND NOT active"
)


def let_cleanup_run(client: Client) -> int:
    """Before an embedded engine closes with more than :data:`OUTDATED_PARTS_WAIT_ABOVE`
    outdated parts, wait (up to :data:`OUTDATED_PARTS_WAIT_SECONDS`) for its own cleanup to
    delete them: an engine that lives for one short command never gets to it, and the
    parts, their files and the engine's start-up time grew with every run. Returns the
    outdated parts left (-1 when they could not be counted)."""
    try:
        left = int(client.command(_OUTDATED_PARTS))
        if left <= OUTDATED_PARTS_WAIT_ABOVE:
            return left
        started = time.monotonic()
        while left and time.monotonic() - started < OUTDATED_PARTS_WAIT_SECONDS:
            time.sleep(0.1)
            left = int(client.command(_OUTDATED_PARTS))
        log.debug(
            "waited %.2f s for the engine's cleanup; %d outdated parts left",
            time.monotonic() - started,
            left,
        )
        return left
    except Exception:  # closing goes on: the next command tries again
        return -1


def close_client(client: Client | None) -> None:
    """Close ``client``, ignoring errors (closing releases the embedded engine)."""
    if client is None:
        return
    with contextlib.suppress(Exception):
        client.close()


def _open_embedded(target: DatabaseURL, settings: Mapping[str, Any] | None) -> Client:
    _require_chdb_backend()
    import clickhouse_connect

    if not target.is_memory:
        try:
            Path(target.path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the database folder {target.path}: {exc.strerror}. "
                "Choose a writable path with --clickhouse-url chdb:///path."
            ) from exc
    try:
        return clickhouse_connect.get_client(dsn=target.dsn, settings=dict(settings or {}))
    except Exception as exc:
        if not target.is_memory:
            holder = engine_holder(target.path)
            if holder is not None:
                pid, command = holder
                who = f"process {pid}" if pid else "another process"
                who += f" ({command})" if command else ""
                raise DatabaseLockedError(
                    f"The embedded database {target.path} is open in {who}, which does not "
                    "use context-cleaner's lock. Stop that process, then run again.",
                    path=target.path,
                    holder_pid=pid,
                    holder_command=command,
                ) from exc
        other = _OTHER_ENGINE_RE.search(str(exc))
        if other:
            raise ConfigurationError(
                f"This process already has the embedded database {other.group(1)} open, and "
                f"chDB allows one database directory per process, so {target.path} cannot be "
                "opened too. Close the other sessions first, or use one --clickhouse-url."
            ) from exc
        if not target.is_memory and _ENGINE_START_RE.search(str(exc)):
            raise DatabaseQueryError(
                f"The embedded engine could not start on {target.path} ({exc}). Its own "
                "message just above names what it could not load, most often a damaged file "
                f"of the folder: {DAMAGED_FOLDER_HELP}"
            ) from exc
        raise translate_clickhouse_error(
            exc, target=target.redacted(), action="opening the embedded database"
        ) from exc


_ENGINE_START_RE = re.compile(r"Error initializing EmbeddedServer")
_STATUS_PID_RE = re.compile(r"^PID:\s*(\d+)", re.MULTILINE)
_OTHER_ENGINE_RE = re.compile(r"already initialized with path '([^']*)'")


def engine_holder(database_dir: str | os.PathLike[str]) -> tuple[int | None, str] | None:
    """Which process has the chDB engine open on ``database_dir``, or None when none does.

    The engine holds an exclusive ``flock`` on ``<dir>/status`` and writes
    ``PID: n`` into it. A process that holds it is reported as
    ``(pid, command line)``; the pid is None when the file could not be read.
    """
    status = Path(database_dir) / "status"
    try:
        fd = os.open(status, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    finally:
        os.close(fd)
    match = _STATUS_PID_RE.search(text)
    pid = int(match.group(1)) if match else None
    return pid, _process_command(pid) if pid else ""


def _process_command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= 200 else text[:197] + "..."


def _open_server(
    target: DatabaseURL,
    retry: RetryPolicy,
    *,
    connect_timeout: float,
    send_receive_timeout: float,
    settings: Mapping[str, Any] | None,
    sleep: Callable[[float], None],
) -> Client:
    import clickhouse_connect

    delays = retry.delays()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return clickhouse_connect.get_client(
                dsn=target.dsn,
                connect_timeout=connect_timeout,
                send_receive_timeout=send_receive_timeout,
                settings=dict(settings or {}),
                autogenerate_session_id=False,
                client_name="context-cleaner",
                **target.tls_options(),
            )
        except Exception as exc:
            error: MigrationError = translate_clickhouse_error(
                exc, target=target.redacted(), action="connecting"
            )
            delay = next(delays, None) if isinstance(error, TransientError) else None
            if delay is None:
                if isinstance(error, TransientError):
                    raise _unavailable(target, attempt, time.monotonic() - started, exc) from exc
                raise error from exc
            log.warning(
                "ClickHouse at %s not reachable (attempt %d of %d): %s; retrying in %.1f s",
                target.endpoint,
                attempt,
                retry.attempts,
                connection_failure_reason(exc)[:300],
                delay,
            )
            sleep(delay)


def _unavailable(
    target: DatabaseURL, attempts: int, elapsed: float, exc: BaseException
) -> DatabaseUnavailableError:
    reason = connection_failure_reason(exc)
    if len(reason) > 400:
        reason = reason[:397] + "..."
    error = DatabaseUnavailableError(
        f"Cannot reach ClickHouse at {target.endpoint} ({target.scheme}) after {attempts} "
        f"attempt{'s' if attempts != 1 else ''} over {elapsed:.1f} s: {reason}. Check that the "
        "server is running and that --clickhouse-url / CONTEXT_CLEANER_CLICKHOUSE_URL is right, "
        "then run again."
    )
    error.code = getattr(exc, "code", None) if isinstance(getattr(exc, "code", None), int) else None
    return error

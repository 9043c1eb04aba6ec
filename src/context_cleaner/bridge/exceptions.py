"""The bridge's errors, and the one place ClickHouse driver errors are translated.

The shared tree lives in :mod:`context_cleaner.errors` (import its classes from
there); the bridge adds the database leaves, whose one home is this module::

    MigrationError
    ├── DatabaseError                    any database failure (never raised bare)
    ├── TransientError                   worth retrying
    │   ├── DatabaseUnavailableError     (DatabaseError) server unreachable, timeout, overload
    │   └── DatabaseLockedError          (DatabaseError) another process holds the embedded db
    └── TerminalError                    retrying cannot help; a person must act
        ├── ConfigurationError           bad URL, credentials, missing database
        │   └── DatabaseConfigurationError  (DatabaseError) auth failed, unknown database
        ├── FileAccessError, AnalysisError, ValidationError, SourceNotFoundError
        ├── ResourceError                out of memory or disk
        │   ├── DiskFullError            (DatabaseError) NOT_ENOUGH_SPACE, ENOSPC
        │   └── DatabaseMemoryError      (DatabaseError) MEMORY_LIMIT_EXCEEDED
        ├── SchemaError                  (DatabaseError) missing table, applied file changed
        └── DatabaseQueryError           (DatabaseError) any other server error

:func:`translate_clickhouse_error` sorts a driver exception into this tree by
ClickHouse error code, so nothing above the bridge sees driver types. Messages
never contain credentials: driver text passes through :func:`redact_text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from context_cleaner import errors

__all__ = [
    "DatabaseConfigurationError",
    "DatabaseError",
    "DatabaseLockedError",
    "DatabaseMemoryError",
    "DatabaseQueryError",
    "DatabaseUnavailableError",
    "DiskFullError",
    "SchemaError",
    "clickhouse_error_code",
    "redact_text",
    "translate_clickhouse_error",
]


class DatabaseError(errors.MigrationError):
    """A database operation failed; concrete errors also sit in a transient or terminal branch."""

    code: int | None = None
    """The ClickHouse error code, when the failure came with one."""


class DatabaseUnavailableError(DatabaseError, errors.TransientError):
    """The server cannot be reached or is overloaded; a retry later may succeed."""


class DatabaseLockedError(DatabaseError, errors.TransientError):
    """The embedded database directory is held by another process."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        holder_pid: int | None = None,
        holder_command: str = "",
    ) -> None:
        super().__init__(message)
        self.path = path
        self.holder_pid = holder_pid
        self.holder_command = holder_command


class DatabaseConfigurationError(DatabaseError, errors.ConfigurationError):
    """The database rejected who we are or where we point: credentials, database name."""


class DiskFullError(DatabaseError, errors.ResourceError):
    """The database has no space left to write."""


class DatabaseMemoryError(DatabaseError, errors.ResourceError):
    """A query hit the database's memory limit."""


class SchemaError(DatabaseError, errors.TerminalError):
    """The schema is missing, or differs from the one this version expects."""


class DatabaseQueryError(DatabaseError, errors.TerminalError):
    """The database refused a statement for a reason retrying does not change."""


# ClickHouse error codes (src/Common/ErrorCodes.cpp) sorted by what the caller should do.
NOT_ENOUGH_SPACE = 243
MEMORY_LIMIT_EXCEEDED = 241
CANNOT_OPEN_FILE = 76
UNKNOWN_TABLE = 60
UNKNOWN_DATABASE = 81
_TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE (connection cut mid-response)
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (server in read-only mode, e.g. during restart)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        473,  # DEADLOCK_AVOIDED
        999,  # KEEPER_EXCEPTION
    }
)
_AUTH_CODES = frozenset(
    {
        192,  # UNKNOWN_USER
        193,  # WRONG_PASSWORD
        194,  # REQUIRED_PASSWORD
        195,  # IP_ADDRESS_NOT_ALLOWED
        497,  # ACCESS_DENIED
        516,  # AUTHENTICATION_FAILED
    }
)
_SCHEMA_CODES = frozenset(
    {UNKNOWN_TABLE, 16, 47}
)  # UNKNOWN_TABLE, NO_SUCH_COLUMN, UNKNOWN_IDENTIFIER
#: The database's own files are damaged (a disk error, a copy taken while it was written).
_DAMAGED_CODES = frozenset(
    {
        32,  # ATTEMPT_TO_READ_AFTER_EOF (a file cut short)
        33,  # CANNOT_READ_ALL_DATA
        39,  # TOO_LARGE_SIZE_COMPRESSED (a block's sizes overwritten)
        40,  # CHECKSUM_DOESNT_MATCH
        226,  # NO_FILE_IN_DATA_PART
        246,  # CORRUPTED_DATA
        271,  # CANNOT_DECOMPRESS
        432,  # UNKNOWN_CODEC (a compressed block's header overwritten)
    }
)
#: The ways back from a damaged embedded database folder, said by every error about one.
DAMAGED_FOLDER_HELP = (
    "restore the folder from a copy taken while no command ran, or move it away and run "
    "`context-cleaner migrate` to build it again from the transcripts still on disk (usage "
    "whose transcripts were deleted is then lost)."
)
#: What the engine says, whatever the code, when it read a damaged file of a table.
_DAMAGED_RE = re.compile(r"corrupted data|While reading or decompressing", re.IGNORECASE)

_CODE_RE = re.compile(r"\bCode:\s*(\d+)")
# scheme://user:<password>@ where the password may hold spaces, slashes or a raw "@": it runs to
# the last "@" on the line before another scheme, so more may be hidden, never less.
_CREDENTIALS_RE = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?:(?!://)[^\n])*@"
)
_VERSION_TRAILER_RE = re.compile(r"\s*\(version\s+[^()]*(?:\([^()]*\)[^()]*)*\)\s*$")
_ENOSPC_RE = re.compile(r"No space left on device|errno:? 28\b|ENOSPC", re.IGNORECASE)
_LOCKED_RE = re.compile(r"Cannot lock file|Another server instance in same directory")


def redact_text(text: str) -> str:
    """Hide any password written into a URL inside ``text`` (``scheme://user:***@``)."""
    return _CREDENTIALS_RE.sub(r"\g<scheme>\g<user>:***@", text)


def clickhouse_error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a driver exception: its ``code`` attribute or ``Code: N``."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE_RE.search(str(exc))
    return int(match.group(1)) if match else None


def _error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then the error it was raised from (or while handling), and so on: the
    driver's error, urllib3's, the socket's."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_failure(exc: BaseException) -> bool:
    """True when the driver never got an answer from the server (refused, DNS, timeout)."""
    for current in _error_chain(exc):
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        module = type(current).__module__
        if module.startswith(("urllib3", "requests", "socket", "ssl")):
            return True
    text = str(exc)
    return "executing HTTP request" in text or "Failed to establish a new connection" in text


def connection_failure_reason(exc: BaseException) -> str:
    """Why connecting failed, in the words of the system call that failed (``Connection
    refused``, ``timed out``, ``Name or service not known``) when the driver's error wraps
    one (clickhouse-connect -> urllib3 -> the socket's error), else the error itself; never
    a password."""
    found: BaseException | None = None
    for current in _error_chain(exc):
        if isinstance(current, OSError) and (current.strerror or isinstance(current, TimeoutError)):
            found = current  # the innermost such error wins: it is the one the others wrap
    if found is not None:
        text = found.strerror if isinstance(found, OSError) and found.strerror else str(found)
        return redact_text(text or type(found).__name__).strip()
    return redact_text(str(exc)).strip()


def _driver_message(exc: BaseException) -> str:
    text = redact_text(str(exc)).strip()
    return _VERSION_TRAILER_RE.sub("", text) or type(exc).__name__


def translate_clickhouse_error(
    exc: BaseException, *, target: str = "", action: str = ""
) -> errors.MigrationError:
    """Sort a ClickHouse driver exception into the tree of :mod:`context_cleaner.errors`.

    ``target`` is the redacted database address (for the message) and ``action``
    what was being done ("inserting 50000 rows into enhanced_token_details").
    Errors that already are :class:`~context_cleaner.errors.MigrationError` pass through unchanged.
    The caller raises the result ``from exc``.
    """
    if isinstance(exc, errors.MigrationError):
        return exc
    code = clickhouse_error_code(exc)
    detail = _driver_message(exc)
    where = f" on {target}" if target else ""
    what = f" while {action}" if action else ""
    head = f"ClickHouse{where} failed{what}: {detail}"

    error: DatabaseError
    if code == NOT_ENOUGH_SPACE or _ENOSPC_RE.search(detail):
        error = DiskFullError(f"{head}. Free disk space on the database volume, then run again.")
    elif code == MEMORY_LIMIT_EXCEEDED:
        error = DatabaseMemoryError(
            f"{head}. Run again with a smaller --batch-size, or raise the server's memory limit."
        )
    elif _LOCKED_RE.search(detail):
        error = DatabaseLockedError(
            f"{head}. Another process has the embedded database open; "
            "wait for it to finish or stop it, then run again."
        )
    elif code in _AUTH_CODES:
        error = DatabaseConfigurationError(
            f"{head}. Check the user and password in CONTEXT_CLEANER_CLICKHOUSE_URL "
            "(or CONTEXT_CLEANER_CLICKHOUSE_PASSWORD)."
        )
    elif code == UNKNOWN_DATABASE:
        error = DatabaseConfigurationError(
            f"{head}. Create the database (CREATE DATABASE <name>) or fix the URL's path."
        )
    elif code in _SCHEMA_CODES:
        error = SchemaError(
            f"{head}. The schema is missing or out of date: "
            "run `context-cleaner migrate` to apply it."
        )
    elif code in _DAMAGED_CODES or _DAMAGED_RE.search(detail):
        error = DatabaseQueryError(
            f"{head}. The database's files are damaged (a disk error, or a copy taken while a "
            f"command wrote to it): {DAMAGED_FOLDER_HELP}"
        )
    elif code in _TRANSIENT_CODES or (code is None and _is_connection_failure(exc)):
        error = DatabaseUnavailableError(f"{head}. Check that the server is up, then run again.")
    else:
        error = DatabaseQueryError(f"{head}.")
    error.code = code
    return error

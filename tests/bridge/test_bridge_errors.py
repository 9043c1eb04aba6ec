"""The error tree, and translation of real driver exceptions by ClickHouse error code."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver import exceptions as driver

from context_cleaner.bridge import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseLockedError,
    DatabaseMemoryError,
    DatabaseQueryError,
    DatabaseUnavailableError,
    DiskFullError,
    SchemaError,
    translate_clickhouse_error,
)
from context_cleaner.bridge.exceptions import clickhouse_error_code, redact_text
from context_cleaner.errors import (
    ConfigurationError,
    MigrationError,
    ResourceError,
    TerminalError,
    TransientError,
    is_transient,
)


@pytest.mark.parametrize(
    ("cls", "transient"),
    [
        (DatabaseUnavailableError, True),
        (DatabaseLockedError, True),
        (DiskFullError, False),
        (DatabaseMemoryError, False),
        (DatabaseConfigurationError, False),
        (SchemaError, False),
        (DatabaseQueryError, False),
    ],
)
def test_every_database_error_sits_in_exactly_one_branch(
    cls: type[DatabaseError], transient: bool
) -> None:
    assert issubclass(cls, DatabaseError) and issubclass(cls, MigrationError)
    assert issubclass(cls, TransientError) is transient
    assert issubclass(cls, TerminalError) is not transient
    assert is_transient(cls("x")) is transient


def test_resource_and_configuration_leaves() -> None:
    assert issubclass(DiskFullError, ResourceError)
    assert issubclass(DatabaseMemoryError, ResourceError)
    assert issubclass(DatabaseConfigurationError, ConfigurationError)


def _server_error(code: int, name: str, text: str) -> Exception:
    """A driver error as clickhouse-connect raises it for a server exception."""
    return driver.DatabaseError(
        f"HTTPDriver for http://h:8123 received ClickHouse error code {code}\n"
        f" Code: {code}. DB::Exception: {text}. ({name}) (version 25.8.1.1 (official build))"
    )


@pytest.mark.parametrize(
    ("code", "name", "cls"),
    [
        (243, "NOT_ENOUGH_SPACE", DiskFullError),
        (241, "MEMORY_LIMIT_EXCEEDED", DatabaseMemoryError),
        (159, "TIMEOUT_EXCEEDED", DatabaseUnavailableError),
        (209, "SOCKET_TIMEOUT", DatabaseUnavailableError),
        (210, "NETWORK_ERROR", DatabaseUnavailableError),
        (252, "TOO_MANY_PARTS", DatabaseUnavailableError),
        (516, "AUTHENTICATION_FAILED", DatabaseConfigurationError),
        (81, "UNKNOWN_DATABASE", DatabaseConfigurationError),
        (60, "UNKNOWN_TABLE", SchemaError),
        (62, "SYNTAX_ERROR", DatabaseQueryError),
    ],
)
def test_translation_by_code(code: int, name: str, cls: type[DatabaseError]) -> None:
    exc = _server_error(code, name, "something went wrong")
    error = translate_clickhouse_error(exc, target="http://h:8123", action="inserting rows")
    assert type(error) is cls
    assert error.code == code
    assert "inserting rows" in str(error) and "http://h:8123" in str(error)
    assert "(version" not in str(error)


def test_cannot_lock_file_is_locked() -> None:
    exc = driver.DatabaseError(
        "Code: 76. DB::Exception: Cannot lock file /x/status. Another server instance in same "
        "directory is already running. (CANNOT_OPEN_FILE)"
    )
    error = translate_clickhouse_error(exc)
    assert isinstance(error, DatabaseLockedError) and is_transient(error)


def test_enospc_without_code_is_disk_full() -> None:
    exc = driver.OperationalError(
        "Cannot write to file /x/data.bin, errno: 28, No space left on device"
    )
    assert isinstance(translate_clickhouse_error(exc), DiskFullError)


def test_connection_refused_is_transient() -> None:
    try:
        raise driver.OperationalError("Error executing HTTP request attempt 1") from (
            ConnectionRefusedError(111, "Connection refused")
        )
    except driver.OperationalError as exc:
        error = translate_clickhouse_error(exc)
    assert isinstance(error, DatabaseUnavailableError)


def test_migration_errors_pass_through() -> None:
    original = SchemaError("already ours")
    assert translate_clickhouse_error(original) is original


def test_credentials_are_scrubbed_from_driver_text() -> None:
    exc = driver.OperationalError("failed for http://bob:hunter2@h:8123/db (Code: 210)")
    error = translate_clickhouse_error(exc)
    assert "hunter2" not in str(error)
    assert "http://bob:***@h:8123/db" in str(error)
    assert redact_text("https://u:p@x/ and http://v:q@y/") == "https://u:***@x/ and http://v:***@y/"


def test_error_code_sources() -> None:
    assert clickhouse_error_code(driver.DatabaseError("Code: 243. DB::Exception")) == 243
    assert clickhouse_error_code(ValueError("no code here")) is None

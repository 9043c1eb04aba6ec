"""ClickHouse side of context_cleaner: where the database is, sessions on it, its schema.

Public API (import from here)::

    Database(url).session()          a client for one unit of work (locked, closed after)
    resolve_url / parse_url / redact where the database is; URLs safe to show
    open_client(url)                 a client without the session's lock (servers, tools)
    setup_schema(client)             apply pending sql/NNN_name.sql files
    insert_details(client, records)  usage records into enhanced_token_details
    snapshot_table / restore_table   O(1) table snapshots for rollback
    exceptions                       the database errors (the shared tree: context_cleaner.errors)

Nothing here imports Prefect; clickhouse-connect is imported only when a client is opened.
"""

from context_cleaner.bridge.connection import (
    RetryPolicy,
    chdb_supported,
    close_client,
    engine_holder,
    open_client,
)
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.details import (
    COUNTED_VIEW,
    DETAIL_COLUMNS,
    DETAILS_TABLE,
    SYNTHETIC_ID_PREFIX,
    detail_columns,
    insert_details,
    storage_message_id,
    synthetic_message_id,
)
from context_cleaner.bridge.exceptions import (
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
from context_cleaner.bridge.lock import DEFAULT_LOCK_TIMEOUT, FileLock, lock_path_for
from context_cleaner.bridge.schema import (
    applied_schema_files,
    load_schema_files,
    pending_schema_files,
    setup_schema,
)
from context_cleaner.bridge.snapshot import (
    drop_table,
    list_snapshots,
    restore_table,
    snapshot_name,
    snapshot_table,
)
from context_cleaner.bridge.url import DatabaseURL, parse_url, redact, resolve_url

__all__ = [
    "COUNTED_VIEW",
    "DEFAULT_LOCK_TIMEOUT",
    "DETAILS_TABLE",
    "DETAIL_COLUMNS",
    "SYNTHETIC_ID_PREFIX",
    "Database",
    "DatabaseConfigurationError",
    "DatabaseError",
    "DatabaseLockedError",
    "DatabaseMemoryError",
    "DatabaseQueryError",
    "DatabaseURL",
    "DatabaseUnavailableError",
    "DiskFullError",
    "FileLock",
    "RetryPolicy",
    "SchemaError",
    "applied_schema_files",
    "chdb_supported",
    "close_client",
    "detail_columns",
    "drop_table",
    "engine_holder",
    "insert_details",
    "list_snapshots",
    "load_schema_files",
    "lock_path_for",
    "open_client",
    "parse_url",
    "pending_schema_files",
    "redact",
    "resolve_url",
    "restore_table",
    "setup_schema",
    "snapshot_name",
    "snapshot_table",
    "storage_message_id",
    "synthetic_message_id",
    "translate_clickhouse_error",
]

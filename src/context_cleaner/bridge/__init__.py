"""ClickHouse side of context_cleaner: the bridge's public face.

Import from here (``from context_cleaner.bridge import EnhancedTokenDatabaseBridge``)::

    EnhancedTokenDatabaseBridge      usage rows, rollups, tracking, runs, reads (token_bridge)
    Database(url).session()          a client for one unit of work (locked, closed after)
    resolve_url / parse_url / redact where the database is; URLs safe to show
    open_client(url)                 a client without the session's lock (servers, tools)
    query_rows / insert_rows         a query or an insert with driver errors translated
    setup_schema(client)             apply pending sql/NNN_name.sql files
    insert_details(client, records)  usage records into enhanced_token_details
    snapshot_table / restore_table   O(1) table snapshots for rollback
    DatabaseError ...                the database's errors (the shared tree: context_cleaner.errors)

The layout: :mod:`.token_bridge` composes :mod:`.writes` (one unit of work: rows,
rollup, tracking, run rows) and :mod:`.reads` (the dashboard's and ``status``'s
questions); :mod:`.details`, :mod:`.summaries` and :mod:`.tracking` own the usage
tables, :mod:`.tables` names the run tables; :mod:`.connection`, :mod:`.database`,
:mod:`.lock` and :mod:`.url` open the database, :mod:`.queries` talks to it;
:mod:`.schema`, :mod:`.snapshot`, :mod:`.generation`, :mod:`.reports` and :mod:`.runs`
do the rest.

Names load on first use (:pep:`562`), so ``import context_cleaner.bridge`` costs
nothing: a command that never opens the database (``context-cleaner analyze``) imports
neither clickhouse-connect nor chDB. Nothing here imports Prefect.
"""

from __future__ import annotations

import importlib

# not ``typing.TYPE_CHECKING``: importing typing would be most of this module's import time
TYPE_CHECKING = False
if TYPE_CHECKING:
    from context_cleaner.bridge.connection import (
        RetryPolicy,
        chdb_supported,
        close_client,
        engine_holder,
        open_client,
    )
    from context_cleaner.bridge.database import Database, database_exists
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
        redact_text,
        translate_clickhouse_error,
    )
    from context_cleaner.bridge.generation import (
        WriteWatch,
        bump_generation,
        note_commits,
        read_generation,
        watch_writes,
    )
    from context_cleaner.bridge.host import default_host
    from context_cleaner.bridge.lock import (
        DEFAULT_LOCK_TIMEOUT,
        FileLock,
        lock_path_for,
        someone_waiting,
    )
    from context_cleaner.bridge.queries import insert_rows, query_rows
    from context_cleaner.bridge.reads import Filters, read_alerts, totals_dict
    from context_cleaner.bridge.reports import database_report, report_from_database
    from context_cleaner.bridge.schema import (
        SCHEMA_TABLE,
        applied_schema_files,
        load_schema_files,
        pending_schema_files,
        setup_schema,
    )
    from context_cleaner.bridge.snapshot import (
        JOURNAL,
        Step,
        drop_table,
        list_snapshots,
        restore_table,
        run_journaled,
        snapshot_name,
        snapshot_table,
        snapshot_tables,
        table_exists,
    )
    from context_cleaner.bridge.summaries import CHANGE_KEYS, SUMMARIES
    from context_cleaner.bridge.tables import EXECUTION_LOG, METADATA
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.bridge.tracking import TRACKING, FileCommit, TrackedFile
    from context_cleaner.bridge.url import DatabaseURL, parse_url, redact, resolve_url
    from context_cleaner.bridge.writes import BridgeWriter, utc

_HOMES = {
    "connection": "RetryPolicy chdb_supported close_client engine_holder open_client",
    "database": "Database database_exists",
    "details": (
        "COUNTED_VIEW DETAILS_TABLE DETAIL_COLUMNS SYNTHETIC_ID_PREFIX "
        "detail_columns insert_details storage_message_id synthetic_message_id"
    ),
    "exceptions": (
        "DatabaseConfigurationError DatabaseError DatabaseLockedError DatabaseMemoryError "
        "DatabaseQueryError DatabaseUnavailableError DiskFullError SchemaError redact_text "
        "translate_clickhouse_error"
    ),
    "generation": "WriteWatch bump_generation note_commits read_generation watch_writes",
    "host": "default_host",
    "lock": "DEFAULT_LOCK_TIMEOUT FileLock lock_path_for someone_waiting",
    "queries": "insert_rows query_rows",
    "reads": "Filters read_alerts totals_dict",
    "reports": "database_report report_from_database",
    "schema": (
        "SCHEMA_TABLE applied_schema_files load_schema_files pending_schema_files setup_schema"
    ),
    "snapshot": (
        "JOURNAL Step drop_table list_snapshots restore_table run_journaled "
        "snapshot_name snapshot_table snapshot_tables table_exists"
    ),
    "summaries": "CHANGE_KEYS SUMMARIES",
    "token_bridge": "EnhancedTokenDatabaseBridge",
    "tracking": "FileCommit TRACKING TrackedFile",
    "url": "DatabaseURL parse_url redact resolve_url",
    "tables": "EXECUTION_LOG METADATA",
    "writes": "BridgeWriter utc",
}
"""Each module and the public names it holds."""

_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names.split()}

__all__ = [
    "CHANGE_KEYS",
    "COUNTED_VIEW",
    "DEFAULT_LOCK_TIMEOUT",
    "DETAILS_TABLE",
    "DETAIL_COLUMNS",
    "EXECUTION_LOG",
    "JOURNAL",
    "METADATA",
    "SCHEMA_TABLE",
    "SUMMARIES",
    "SYNTHETIC_ID_PREFIX",
    "TRACKING",
    "BridgeWriter",
    "Database",
    "DatabaseConfigurationError",
    "DatabaseError",
    "DatabaseLockedError",
    "DatabaseMemoryError",
    "DatabaseQueryError",
    "DatabaseURL",
    "DatabaseUnavailableError",
    "DiskFullError",
    "EnhancedTokenDatabaseBridge",
    "FileCommit",
    "FileLock",
    "Filters",
    "RetryPolicy",
    "SchemaError",
    "Step",
    "TrackedFile",
    "WriteWatch",
    "applied_schema_files",
    "bump_generation",
    "chdb_supported",
    "close_client",
    "database_exists",
    "database_report",
    "default_host",
    "detail_columns",
    "drop_table",
    "engine_holder",
    "insert_details",
    "insert_rows",
    "list_snapshots",
    "load_schema_files",
    "lock_path_for",
    "note_commits",
    "open_client",
    "parse_url",
    "pending_schema_files",
    "query_rows",
    "read_alerts",
    "read_generation",
    "redact",
    "redact_text",
    "report_from_database",
    "resolve_url",
    "restore_table",
    "run_journaled",
    "setup_schema",
    "snapshot_name",
    "snapshot_table",
    "snapshot_tables",
    "someone_waiting",
    "storage_message_id",
    "synthetic_message_id",
    "table_exists",
    "totals_dict",
    "translate_clickhouse_error",
    "utc",
    "watch_writes",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""Snapshots and rollback (DESIGN §6): restore a copy instead of guessing what to delete.

Before each migration, and at its checkpoints, the data tables are copied by
hard links (O(1)); a rollback swaps a copy back in with ``EXCHANGE TABLES``.
The run history (``enhanced_analysis_metadata``, ``migration_execution_log``)
is never rolled back: it records the rollback too.

Modes:

``complete``
    Every change of the migration undone: the data tables as they were just
    before it started (its rows, summaries and file offsets gone; schema kept).
``partial``
    The data tables as they were at one of its checkpoints (``--to-checkpoint``).
``data-only``
    All usage data of every migration removed (tables emptied), schema and run
    history kept; the next ``migrate`` starts from nothing.
``schema``
    Every table of context_cleaner dropped, snapshots and schema record included;
    the next ``migrate`` recreates the schema.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.exceptions import ConfigurationError
from context_cleaner.bridge.schema import SCHEMA_TABLE, load_schema_files
from context_cleaner.bridge.snapshot import drop_table, restore_table, snapshot_table
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge, query_rows, utc
from context_cleaner.migration.models import RollbackResult

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

#: Tables a migration changes and a rollback restores.
DATA_TABLES = (
    "enhanced_token_details",
    "enhanced_token_summaries",
    "migration_file_tracking",
)
HISTORY_TABLES = ("enhanced_analysis_metadata", "migration_execution_log")
SNAPSHOTS = "migration_snapshots"
MODES = ("complete", "partial", "data-only", "schema")
DEFAULT_KEEP = 5


@dataclass(frozen=True, slots=True)
class Snapshot:
    snapshot_id: str
    migration_id: str
    checkpoint: str
    created_at: Any
    tables: dict[str, str]
    row_counts: dict[str, int]


def _row_counts(client: Client, tables: tuple[str, ...]) -> dict[str, int]:
    rows = query_rows(
        client,
        "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
        "AND name IN {names:Array(String)}",
        {"names": list(tables)},
    )
    return {name: int(count or 0) for name, count in rows}


def take_snapshot(client: Client, host: str, migration_id: str, checkpoint: str = "") -> Snapshot:
    """Copy the data tables (hard links) and record the snapshot; caller holds the database."""
    snapshot_id = f"{migration_id}_{checkpoint or 'pre'}"
    tables = {t: snapshot_table(client, t, snapshot_id) for t in DATA_TABLES}
    counts = _row_counts(client, DATA_TABLES)
    _record(client, snapshot_id, migration_id, checkpoint, host, tables, counts)
    return Snapshot(snapshot_id, migration_id, checkpoint, None, tables, counts)


_SNAPSHOT_COLUMNS = (
    "snapshot_id",
    "migration_id",
    "checkpoint",
    "created_at",
    "host",
    "tables",
    "row_counts",
    "ver",
    "is_deleted",
)


def _record(
    client: Client,
    snapshot_id: str,
    migration_id: str,
    checkpoint: str,
    host: str,
    tables: dict[str, str],
    counts: dict[str, int],
    *,
    deleted: bool = False,
) -> None:
    """Write a snapshot's registry row (``deleted`` writes its tombstone)."""
    row = [
        snapshot_id,
        migration_id,
        checkpoint,
        utc(time.time()),
        host,
        tables,
        counts,
        time.time_ns(),
        1 if deleted else 0,
    ]
    client.insert(SNAPSHOTS, [row], column_names=list(_SNAPSHOT_COLUMNS))


def list_snapshots(client: Client, migration_id: str | None = None) -> list[Snapshot]:
    where, params = "1", {}
    if migration_id is not None:
        where, params = "migration_id = {m:String}", {"m": migration_id}
    rows = query_rows(
        client,
        f"SELECT snapshot_id, migration_id, checkpoint, created_at, tables, row_counts "
        f"FROM {SNAPSHOTS} FINAL WHERE {where} ORDER BY created_at, snapshot_id",
        params,
    )
    return [Snapshot(r[0], r[1], r[2], r[3], dict(r[4]), dict(r[5])) for r in rows]


def prune_snapshots(client: Client, keep: int = DEFAULT_KEEP) -> list[str]:
    """Keep the pre-run snapshots of the newest ``keep`` migrations and the newest ``keep``
    checkpoint snapshots; drop the rest. Returns the ids dropped."""
    keep = max(keep, 1)
    snaps = list_snapshots(client)
    pre = [s for s in snaps if not s.checkpoint]
    checkpoints = [s for s in snaps if s.checkpoint]
    doomed = pre[: max(0, len(pre) - keep)] + checkpoints[: max(0, len(checkpoints) - keep)]
    for snap in doomed:
        _drop_snapshot(client, snap)
    return [s.snapshot_id for s in doomed]


def _drop_snapshot(client: Client, snap: Snapshot) -> None:
    for table in snap.tables.values():
        drop_table(client, table)
    _record(client, snap.snapshot_id, snap.migration_id, snap.checkpoint, "", {}, {}, deleted=True)


def _choose(client: Client, migration_id: str, mode: str, checkpoint: str | None) -> Snapshot:
    snaps = list_snapshots(client, migration_id)
    if not snaps:
        known = sorted({s.migration_id for s in list_snapshots(client)})
        hint = f" Known: {', '.join(known[-10:])}." if known else ""
        ran = query_rows(
            client,
            f"SELECT count() FROM {HISTORY_TABLES[0]} WHERE migration_id = {{m:String}}",
            {"m": migration_id},
        )
        if not ran[0][0]:
            raise ConfigurationError(
                f"Unknown migration id {migration_id!r}: no run with this id is recorded in "
                f"this database.{hint} See `context-cleaner status` for the ids of recent runs."
            )
        raise ConfigurationError(
            f"No snapshot of migration {migration_id} is kept (only the last few are);"
            f" nothing to roll back to.{hint} Use --mode data-only to remove all data."
        )
    if mode == "complete":
        pre = [s for s in snaps if not s.checkpoint]
        if not pre:
            raise ConfigurationError(
                f"The snapshot taken before migration {migration_id} was pruned; roll back to "
                f"one of its checkpoints with --mode partial --to-checkpoint "
                f"({', '.join(s.checkpoint for s in snaps)})."
            )
        return pre[0]
    if not checkpoint:
        raise ConfigurationError(
            "--mode partial needs --to-checkpoint; this migration has: "
            + ", ".join(s.checkpoint for s in snaps if s.checkpoint)
        )
    for s in snaps:
        if s.checkpoint == checkpoint or s.snapshot_id == checkpoint:
            return s
    raise ConfigurationError(
        f"Migration {migration_id} has no checkpoint {checkpoint!r}; it has: "
        + (", ".join(s.checkpoint for s in snaps if s.checkpoint) or "none")
    )


def rollback_migration(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    mode: str = "complete",
    rollback_to_checkpoint: str | None = None,
) -> RollbackResult:
    """Roll back in one of :data:`MODES` (see the module docstring)."""
    if mode not in MODES:
        raise ConfigurationError(f"Unknown rollback mode {mode!r}; choose {', '.join(MODES)}.")
    if rollback_to_checkpoint and mode == "complete":
        mode = "partial"
    started = time.perf_counter()
    restored: list[str] = []
    dropped: list[str] = []
    snapshot_id: str | None = None
    with bridge.writer() as w:
        client = w.client
        before = _row_counts(client, DATA_TABLES + HISTORY_TABLES)
        if mode in ("complete", "partial"):
            snap = _choose(client, migration_id, mode, rollback_to_checkpoint)
            snapshot_id = snap.snapshot_id
            for table, copy in snap.tables.items():
                restore_table(client, table, copy)
                restored.append(table)
        elif mode == "data-only":
            for table in DATA_TABLES:
                client.command(f"TRUNCATE TABLE IF EXISTS {table}")
                restored.append(table)
        else:
            views, tables = owned_objects()
            names = [
                r[0]
                for r in query_rows(
                    client,
                    "SELECT name FROM system.tables WHERE database = currentDatabase() "
                    "AND NOT is_temporary AND (name IN {owned:Array(String)} "
                    "OR position(name, '__snapshot_') > 0) ORDER BY name",
                    {"owned": tables},
                )
            ]
            for view in views:
                client.command(f"DROP VIEW IF EXISTS {view}")
                dropped.append(view)
            for name in names:
                drop_table(client, name)
                dropped.append(name)
        after = _row_counts(client, DATA_TABLES + HISTORY_TABLES)
        if mode != "schema":
            w.log(
                migration_id,
                "rollback",
                mode,
                "completed",
                {"snapshot": snapshot_id, "restored": restored},
                (time.perf_counter() - started) * 1000,
            )
    return RollbackResult(
        migration_id=migration_id,
        mode=mode,
        snapshot=snapshot_id,
        tables_restored=restored,
        tables_dropped=dropped,
        rows_before=before,
        rows_after=after,
        duration_seconds=time.perf_counter() - started,
    )


_CREATE_RE = re.compile(
    r"^\s*CREATE\s+(MATERIALIZED\s+VIEW|VIEW|TABLE)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
    re.IGNORECASE | re.MULTILINE,
)


def owned_objects() -> tuple[list[str], list[str]]:
    """(views, tables) the schema files create, plus the schema record: what ``schema`` drops.

    Read from ``sql/NNN_*.sql`` so a table added by a later schema file is dropped too.
    """
    views: list[str] = []
    tables: list[str] = [SCHEMA_TABLE]
    for schema_file in load_schema_files():
        for kind, name in _CREATE_RE.findall(schema_file.sql):
            (tables if kind.upper() == "TABLE" else views).append(name)
    return views, tables

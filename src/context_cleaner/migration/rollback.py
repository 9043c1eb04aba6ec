"""Snapshots and rollback (DESIGN §6): restore a copy instead of guessing what to delete.

Before each migration, and at its checkpoints, the data tables are copied by
hard links (O(1)); a rollback swaps a copy back in with ``EXCHANGE TABLES``.
The run history (``enhanced_analysis_metadata``, ``migration_execution_log``)
is never rolled back: it records the rollback too, and the runs whose data a
rollback removed are marked ``rolled_back``.

Every mode is crash-safe: its steps (restores, truncations, drops, the history
rows) are planned before anything changes and run through the journal of
:func:`~context_cleaner.bridge.snapshot.run_journaled`, which the next open of the
database finishes if the process dies part-way. Every mode refuses an id the
database never recorded, before anything changes.

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

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge import (
    JOURNAL,
    SCHEMA_TABLE,
    EnhancedTokenDatabaseBridge,
    Step,
    drop_table,
    load_schema_files,
    query_rows,
    run_journaled,
    snapshot_tables,
    table_exists,
    utc,
)
from context_cleaner.bridge.buckets import BUCKETS, backfill_sql
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration.models import RollbackResult
from context_cleaner.migration.run_record import record_rollback

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

#: Tables a migration changes and a rollback restores.
DATA_TABLES = (
    "enhanced_token_details",
    "enhanced_token_summaries",
    "enhanced_token_buckets",
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
    tables = snapshot_tables(client, DATA_TABLES, snapshot_id)
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
    """Keep the pre-run snapshots of the newest ``keep`` migrations and every checkpoint
    snapshot of the newest migration; drop the rest. Returns the ids dropped.

    So every checkpoint the latest ``migrate`` listed can be returned to, and the
    checkpoints of a migration go when the next one starts.
    """
    keep = max(keep, 1)
    snaps = list_snapshots(client)
    pre = [s for s in snaps if not s.checkpoint]
    newest = pre[-1].migration_id if pre else None
    checkpoints = [s for s in snaps if s.checkpoint and s.migration_id != newest]
    doomed = pre[: max(0, len(pre) - keep)] + checkpoints
    for snap in doomed:
        _drop_snapshot(client, snap)
    return [s.snapshot_id for s in doomed]


def prune_checkpoints(client: Client, migration_id: str, prefix: str, keep: int) -> list[str]:
    """Drop all but the newest ``keep`` checkpoint snapshots of ``migration_id`` whose
    checkpoint name starts with ``prefix``; returns the ids dropped."""
    snaps = [s for s in list_snapshots(client, migration_id) if s.checkpoint.startswith(prefix)]
    doomed = snaps[: max(0, len(snaps) - keep)]
    for snap in doomed:
        _drop_snapshot(client, snap)
    return [s.snapshot_id for s in doomed]


def _drop_snapshot(client: Client, snap: Snapshot) -> None:
    # The record goes first: killed in between, a table is left over, never a
    # recorded snapshot that lacks one.
    _record(client, snap.snapshot_id, snap.migration_id, snap.checkpoint, "", {}, {}, deleted=True)
    for table in snap.tables.values():
        drop_table(client, table)


def require_known(client: Client, migration_id: str) -> float | None:
    """The run's start (epoch seconds; None when only its snapshots are kept); raises
    :class:`ConfigurationError` naming the id when this database never recorded it."""
    runs: list[tuple] = []
    if table_exists(client, HISTORY_TABLES[0]):
        runs = query_rows(
            client,
            f"SELECT toUnixTimestamp64Milli(min(started_at)) / 1000.0, count() "
            f"FROM {HISTORY_TABLES[0]} WHERE migration_id = {{m:String}}",
            {"m": migration_id},
        )
    if runs and runs[0][1]:
        return float(runs[0][0])
    if table_exists(client, SNAPSHOTS) and list_snapshots(client, migration_id):
        return None
    known = (
        sorted({s.migration_id for s in list_snapshots(client)})
        if table_exists(client, SNAPSHOTS)
        else []
    )
    hint = f" Known: {', '.join(known[-10:])}." if known else ""
    raise ConfigurationError(
        f"Unknown migration id {migration_id!r}: no run with this id is recorded in "
        f"this database; nothing was changed.{hint} See `context-cleaner status` for the "
        "ids of recent runs."
    )


def choose_snapshot(
    client: Client, migration_id: str, mode: str, checkpoint: str | None
) -> Snapshot:
    """The snapshot a rollback of ``migration_id`` in ``mode`` returns to (``checkpoint``:
    that one of its checkpoints); :class:`ConfigurationError` names what is missing."""
    snaps = list_snapshots(client, migration_id)
    if not snaps:
        known = sorted({s.migration_id for s in list_snapshots(client)})
        hint = f" Known: {', '.join(known[-10:])}." if known else ""
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
            + (", ".join(s.checkpoint for s in snaps if s.checkpoint) or "none")
        )
    for s in snaps:
        if s.checkpoint == checkpoint or s.snapshot_id == checkpoint:
            return s
    raise ConfigurationError(
        f"Migration {migration_id} has no checkpoint {checkpoint!r} kept (only the newest "
        "migration's checkpoints are); kept: "
        + (", ".join(s.checkpoint for s in snaps if s.checkpoint) or "none")
        + ". Use --mode complete to undo the whole migration."
    )


def _undone_runs(client: Client, mode: str, migration_id: str, started: float | None) -> list[str]:
    """The runs whose data the rollback removes: the run itself and every migrate or sync
    run that started after it (``data-only``: every migrate or sync run)."""
    where = "run_kind IN ('migrate', 'sync')"
    params: dict[str, Any] = {"m": migration_id}
    if mode != "data-only":
        if started is None:
            return [migration_id]
        where += " AND toUnixTimestamp64Milli(started_at) >= {t:Float64} * 1000"
        params["t"] = started
    rows = query_rows(
        client,
        f"SELECT migration_id FROM {HISTORY_TABLES[0]} FINAL "
        f"WHERE migration_id = {{m:String}} OR ({where}) ORDER BY migration_id",
        params,
    )
    return [r[0] for r in rows]


def _history_steps(
    host: str, migration_id: str, mode: str, runs: list[str], details: dict[str, Any]
) -> list[Step]:
    """Mark ``runs`` ``rolled_back`` and log the rollback (inside the journal, so a finished
    rollback is always recorded)."""
    mark = Step(
        "sql",
        HISTORY_TABLES[0],
        f"INSERT INTO {HISTORY_TABLES[0]} SELECT * REPLACE ('rolled_back' AS status, "
        f"now64(3) AS updated_at) FROM {HISTORY_TABLES[0]} FINAL "
        "WHERE migration_id IN {runs:Array(String)}",  # (`status` here would be the new one)
        {"runs": runs},
    )
    log = Step(
        "sql",
        HISTORY_TABLES[1],
        f"INSERT INTO {HISTORY_TABLES[1]} (migration_id, execution_timestamp, phase, operation, "
        "status, details, processing_time_ms, host) VALUES ({m:String}, now64(3), 'rollback', "
        "{mode:String}, 'completed', {details:String}, 0, {host:String})",
        {"m": migration_id, "mode": mode, "details": json.dumps(details), "host": host},
    )
    return [mark, log]


def rollback_migration(
    bridge: EnhancedTokenDatabaseBridge,
    migration_id: str,
    mode: str = "complete",
    rollback_to_checkpoint: str | None = None,
) -> RollbackResult:
    """Roll back in one of :data:`MODES` (see the module docstring).

    Crash-safe: every change is planned first and run through the journal of
    :func:`~context_cleaner.bridge.snapshot.run_journaled`, so a process killed at any
    moment leaves the database as before or as after once it is next opened. An id this
    database never recorded is refused in every mode, before anything changes.
    """
    if mode not in MODES:
        raise ConfigurationError(f"Unknown rollback mode {mode!r}; choose {', '.join(MODES)}.")
    if rollback_to_checkpoint and mode == "complete":
        mode = "partial"
    started, started_at = time.perf_counter(), time.time()
    runs: list[str] = []
    restored: list[str] = []
    dropped: list[str] = []
    snapshot_id: str | None = None
    with bridge.writer() as w:
        client = w.client
        run_started = require_known(client, migration_id)
        before = _row_counts(client, DATA_TABLES + HISTORY_TABLES)
        steps: list[Step] = []
        if mode in ("complete", "partial"):
            snap = choose_snapshot(client, migration_id, mode, rollback_to_checkpoint)
            snapshot_id = snap.snapshot_id
            missing = [t for t in snap.tables.values() if not table_exists(client, t)]
            if missing:
                raise ConfigurationError(
                    f"Snapshot {snapshot_id} is incomplete ({', '.join(missing)} missing); "
                    "nothing was changed. Roll back to another checkpoint, or use "
                    "--mode data-only to remove all data."
                )
            steps = [Step("restore", table, copy) for table, copy in snap.tables.items()]
            if BUCKETS not in snap.tables:  # taken before the 15-minute rollup existed
                steps += [Step("truncate", BUCKETS), Step("sql", BUCKETS, backfill_sql())]
            restored = list(snap.tables)
        elif mode == "data-only":
            steps = [Step("truncate", table) for table in DATA_TABLES]
            restored = list(DATA_TABLES)
        else:
            views, tables = owned_objects()
            names = [
                r[0]
                for r in query_rows(
                    client,
                    "SELECT name FROM system.tables WHERE database = currentDatabase() "
                    "AND NOT is_temporary AND (name IN {owned:Array(String)} "
                    "OR position(name, '__snapshot_') > 0 OR endsWith(name, '__restoring')) "
                    "ORDER BY name",
                    {"owned": tables},
                )
                if r[0] != JOURNAL
            ]
            steps = [Step("drop_view", view) for view in views]
            steps += [Step("drop_table", name) for name in names]
            steps.append(Step("drop_table", JOURNAL))  # last: the journal goes with it
            dropped = [*views, *names]
        if mode != "schema":
            runs = _undone_runs(client, mode, migration_id, run_started)
            details = {
                "snapshot": snapshot_id,
                "checkpoint": rollback_to_checkpoint,
                "restored": restored,
                "runs_rolled_back": runs,
            }
            steps += _history_steps(bridge.host, migration_id, mode, runs, details)
        run_journaled(
            client,
            f"rollback-{migration_id}-{time.time_ns()}",
            f"rollback --mode {mode} of {migration_id}"
            + (f" to {snapshot_id}" if snapshot_id else ""),
            steps,
        )
        after = _row_counts(client, DATA_TABLES + HISTORY_TABLES)
    result = RollbackResult(
        migration_id=migration_id,
        mode=mode,
        snapshot=snapshot_id,
        tables_restored=restored,
        tables_dropped=dropped,
        rows_before=before,
        rows_after=after,
        duration_seconds=time.perf_counter() - started,
    )
    if mode == "schema":  # the runs table is gone with the rest
        return result
    return record_rollback(bridge, result, started_at, runs)


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

"""Table snapshots by hard links, and restoring them (DESIGN §6).

A snapshot of table ``t`` is a table with the same structure whose parts are
hard links to ``t``'s parts at that moment::

    CREATE TABLE s AS t;
    ALTER TABLE s ATTACH PARTITION ID 'all' FROM t;   -- once per partition

Both statements cost O(1) in the data size (verified in chDB 26.9 via
clickhouse-connect, and on servers). Restoring copies the snapshot the same way
into a scratch table and swaps it in with ``EXCHANGE TABLES`` (atomic), then
drops the scratch table, which now holds the replaced data. The snapshot itself
is left intact, so it can be restored again. Callers hold the database session
(and so the lock) while snapshotting, so no insert runs half-way through.

Changes to several tables are made crash-safe by a journal
(:func:`run_journaled`): the whole plan, every step idempotent, is written as one
row of ``migration_rollback_journal`` before the first change, and the row is
removed after the last. Whoever opens the database next
(:func:`finish_interrupted_changes`, called by ``open_client``) finds the row and
runs the plan again from its start before anything else reads, so a process killed
at any moment leaves the tables as before the plan (killed before the row was
written) or as after it. A single ``EXCHANGE TABLES a AND b, c AND d`` is no
substitute: chDB renames the pairs one after another (SIGKILLed in a loop of such
exchanges, 25 of 60 kills left one pair swapped and the other not).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.exceptions import (
    DatabaseUnavailableError,
    SchemaError,
)
from context_cleaner.bridge.queries import insert_rows, query_rows, run_statement
from context_cleaner.errors import ConfigurationError, MigrationError
from context_cleaner.settings import PAUSE_ENV

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SNAPSHOT_INFIX = "__snapshot_"
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_RE = re.compile(r"[^A-Za-z0-9_]+")


def _ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ConfigurationError(
            f"{name!r} is not a plain table name (letters, digits, underscore); choose another."
        )
    return name


def snapshot_name(table: str, label: str) -> str:
    """The snapshot table name for ``table`` and ``label`` (e.g. a migration or checkpoint id)."""
    clean = _LABEL_RE.sub("_", label).strip("_")
    if not clean:
        raise ConfigurationError(f"Snapshot label {label!r} has no letters or digits.")
    return _ident(f"{table}{SNAPSHOT_INFIX}{clean}")


def _command(client: Client, sql: str, action: str, params: dict[str, Any] | None = None) -> None:
    _pause_point(action)
    run_statement(client, sql, params, action=action)


def table_exists(client: Client, table: str) -> bool:
    """True when ``table`` exists in the client's database."""
    rows = query_rows(client, f"EXISTS TABLE {_ident(table)}", action=f"checking for table {table}")
    return bool(rows and rows[0][0])


def _existing(client: Client, tables: Sequence[str]) -> set[str]:
    """Which of ``tables`` exist in the client's database (one query)."""
    rows = query_rows(
        client,
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND name IN {names:Array(String)}",
        {"names": [_ident(t) for t in tables]},
        action="checking for tables",
    )
    return {row[0] for row in rows}


def _partition_ids(client: Client, tables: Sequence[str]) -> dict[str, list[str]]:
    """Each table's active partitions (one query)."""
    rows = query_rows(
        client,
        "SELECT table, partition_id FROM system.parts WHERE database = currentDatabase() "
        "AND table IN {names:Array(String)} AND active "
        "GROUP BY table, partition_id ORDER BY table, partition_id",
        {"names": [_ident(t) for t in tables]},
        action=f"listing the partitions of {', '.join(tables)}",
    )
    out: dict[str, list[str]] = {t: [] for t in tables}
    for table, pid in rows:
        out[table].append(pid)
    return out


def copy_table(client: Client, source: str, target: str) -> None:
    """Create ``target`` as an O(1) hard-link copy of ``source`` (which must exist; target not)."""
    copy_tables(client, {source: target})


def copy_tables(client: Client, copies: dict[str, str]) -> None:
    """:func:`copy_table` of each source -> target, asking which tables exist and what
    partitions the sources hold once for all (a snapshot of the four data tables: two
    queries instead of twelve)."""
    existing = _existing(client, [*copies, *copies.values()])
    for source, target in copies.items():
        if source not in existing:
            raise SchemaError(
                f"Cannot copy table {source}: it does not exist. Apply the schema first."
            )
        if target in existing:
            raise SchemaError(
                f"Cannot copy {source} to {target}: {target} exists already. "
                "Drop it or choose another snapshot label."
            )
    partitions = _partition_ids(client, list(copies))
    for source, target in copies.items():
        _command(client, f"CREATE TABLE {_ident(target)} AS {_ident(source)}", f"creating {target}")
        try:
            for pid in partitions[source]:
                quoted = pid.replace("\\", "\\\\").replace("'", "\\'")
                _command(
                    client,
                    f"ALTER TABLE {target} ATTACH PARTITION ID '{quoted}' FROM {source}",
                    f"linking partition {pid} of {source} into {target}",
                )
        except MigrationError:
            drop_table(client, target)
            raise


def snapshot_table(client: Client, table: str, label: str) -> str:
    """Snapshot ``table`` as ``<table>__snapshot_<label>``; returns the snapshot's name."""
    return snapshot_tables(client, [table], label)[table]


def snapshot_tables(client: Client, tables: Sequence[str], label: str) -> dict[str, str]:
    """:func:`snapshot_table` of each of ``tables``; returns each one's snapshot name."""
    names = {table: snapshot_name(table, label) for table in tables}
    copy_tables(client, names)
    return names


def restore_table(client: Client, table: str, snapshot: str) -> None:
    """Make ``table`` hold exactly what ``snapshot`` holds (atomic swap); the snapshot is kept."""
    scratch = _ident(f"{table}__restoring")
    drop_table(client, scratch)
    copy_table(client, snapshot, scratch)
    _command(
        client,
        f"EXCHANGE TABLES {_ident(table)} AND {scratch}",
        f"swapping snapshot {snapshot} into {table}",
    )
    drop_table(client, scratch)


def drop_table(client: Client, table: str) -> None:
    """Drop ``table`` if it exists (synchronously, so its name is free again at once)."""
    _command(client, f"DROP TABLE IF EXISTS {_ident(table)} SYNC", f"dropping {table}")


def list_snapshots(client: Client, table: str) -> list[str]:
    """The snapshot tables of ``table``, oldest name first."""
    prefix = _ident(table) + SNAPSHOT_INFIX
    rows = query_rows(
        client,
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        f"AND startsWith(name, '{prefix}') ORDER BY metadata_modification_time, name",
        action=f"listing snapshots of {table}",
    )
    return [row[0] for row in rows]


# -- journaled changes ---------------------------------------------------------------------

JOURNAL = "migration_rollback_journal"
"""One row per plan of changes in progress; empty (or absent) when none is."""

_JOURNAL_DDL = f"""
CREATE TABLE IF NOT EXISTS {JOURNAL}
(
    plan_id String,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3),
    description String,
    steps String COMMENT 'JSON list of idempotent steps, run in order'
)
ENGINE = MergeTree
ORDER BY plan_id
SETTINGS cleanup_delay_period = 1, cleanup_delay_period_random_add = 0
COMMENT 'changes to several tables in progress; the next open of the database finishes them'
"""

# PAUSE_ENV, for crash tests: ``N`` makes this process stop (sleep for an hour) before the N-th
# statement that changes tables made in this module (snapshots, journal, plan steps),
# announcing ``paused before write N: <what>`` on stderr, so a test can SIGKILL it
# between two chosen statements. Unset (always, outside tests): no effect.

_writes = 0


def _pause_point(what: str) -> None:
    global _writes
    _writes += 1
    wanted = os.environ.get(PAUSE_ENV, "").strip()
    if wanted and wanted.isdigit() and int(wanted) == _writes:
        sys.stderr.write(f"paused before write {_writes}: {what}\n")
        sys.stderr.flush()
        time.sleep(3600)


@dataclass(frozen=True, slots=True)
class Step:
    """One idempotent change: running it twice leaves what running it once does."""

    kind: str
    """``restore`` (``table`` from snapshot ``source``), ``truncate``, ``drop_table``,
    ``drop_view``, or ``sql`` (``source`` run with ``params``)."""
    table: str = ""
    source: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def _run_step(client: Client, step: Step) -> None:
    if step.kind == "restore":
        scratch = _ident(f"{step.table}__restoring")
        _command(client, f"DROP TABLE IF EXISTS {scratch} SYNC", f"dropping {scratch}")
        copy_table(client, step.source, scratch)
        _command(
            client,
            f"EXCHANGE TABLES {_ident(step.table)} AND {scratch}",
            f"swapping snapshot {step.source} into {step.table}",
        )
        _command(client, f"DROP TABLE IF EXISTS {scratch} SYNC", f"dropping {scratch}")
    elif step.kind == "truncate":
        _command(client, f"TRUNCATE TABLE IF EXISTS {_ident(step.table)}", f"emptying {step.table}")
    elif step.kind == "drop_table":
        _command(
            client, f"DROP TABLE IF EXISTS {_ident(step.table)} SYNC", f"dropping {step.table}"
        )
    elif step.kind == "drop_view":
        _command(client, f"DROP VIEW IF EXISTS {_ident(step.table)} SYNC", f"dropping {step.table}")
    elif step.kind == "sql":
        if not table_exists(client, step.table):  # e.g. its table was dropped by this plan
            return
        _command(client, step.source, f"updating {step.table}", step.params)
    else:
        raise SchemaError(f"Unknown journal step {step.kind!r}; upgrade context-cleaner.")


def run_journaled(client: Client, plan_id: str, description: str, steps: Sequence[Step]) -> None:
    """Run ``steps`` so that a crash at any moment leaves all of them done or none.

    The plan is journaled first; if this process dies part-way, the next open of the
    database (:func:`finish_interrupted_changes`) runs the plan again. A plan that
    drops the journal table itself (dropping everything) ends with that step.
    """
    _command(client, _JOURNAL_DDL, f"creating {JOURNAL}")
    _pause_point(f"journaling {description}")
    insert_rows(
        client,
        JOURNAL,
        [[plan_id, description, json.dumps([asdict(s) for s in steps])]],
        ["plan_id", "description", "steps"],
        action=f"writing to {JOURNAL}",
    )
    _finish(client, [(plan_id, steps)])


def _finish(client: Client, plans: Sequence[tuple[str, Sequence[Step]]]) -> None:
    for _, steps in plans:
        for step in steps:
            _run_step(client, step)
    if table_exists(client, JOURNAL):
        _command(client, f"TRUNCATE TABLE IF EXISTS {JOURNAL}", f"clearing {JOURNAL}")


def finish_interrupted_changes(client: Client, *, read_only: bool = False) -> list[str]:
    """Finish the journaled plans a killed process left (see :func:`run_journaled`).

    Called on every new connection, before anything reads: one cheap look at
    ``system.tables`` when there is nothing to do. Returns the plans' descriptions.
    A ``read_only`` connection (the dashboard's) cannot finish them: it raises
    :class:`DatabaseUnavailableError` (transient: try again) and leaves the plans to
    the next command that can write, so nothing ever reads a half-changed database.
    """
    rows = query_rows(
        client,
        "SELECT total_rows FROM system.tables WHERE database = currentDatabase() "
        f"AND name = '{JOURNAL}'",
        action=f"looking for unfinished changes in {JOURNAL}",
    )
    if not rows or not rows[0][0]:
        return []
    entries = query_rows(
        client,
        f"SELECT plan_id, description, steps FROM {JOURNAL} ORDER BY written_at, plan_id",
        action=f"reading {JOURNAL}",
    )
    if read_only:
        raise DatabaseUnavailableError(
            f"An interrupted change of this database ({'; '.join(e[1] for e in entries)}) "
            "waits to be finished by the next command that writes; run `context-cleaner "
            "status` (or any sync) to finish it, then try again."
        )
    plans = [(pid, [Step(**s) for s in json.loads(steps)]) for pid, _, steps in entries]
    try:
        _finish(client, plans)
    except MigrationError as exc:
        raise SchemaError(
            f"An interrupted change of this database ({'; '.join(e[1] for e in entries)}) "
            f"could not be finished: {exc} Fix the cause and run the command again: the "
            "change is retried whenever the database is opened."
        ) from exc
    return [e[1] for e in entries]

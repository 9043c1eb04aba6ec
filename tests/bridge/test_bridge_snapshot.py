"""Snapshots by hard links and restore by EXCHANGE TABLES, row for row (DESIGN §6)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client

from context_cleaner.bridge import (
    Database,
    SchemaError,
    list_snapshots,
    restore_table,
    snapshot_name,
    snapshot_table,
)
from context_cleaner.bridge.snapshot import table_exists
from context_cleaner.errors import ConfigurationError

TABLE = "enhanced_token_details"
ALL_ROWS = f"SELECT * FROM {TABLE} ORDER BY message_id, request_id, ver"


def _insert(client: Client, first: int, count: int, migration: str) -> None:
    client.command(
        f"INSERT INTO {TABLE} (message_id, request_id, ver, session_id, timestamp, model, "
        "output_tokens, cost_usd, migration_id) "
        f"SELECT concat('msg_', toString(number)), 'r', toUInt256(number), "
        f"concat('s', toString(number % 7)), toDateTime64(1760000000 + number, 3, 'UTC'), "
        f"'m', number, number / 1000, '{migration}' FROM numbers({first}, {count})"
    )


@pytest.mark.slow
def test_snapshot_and_restore_round_trip(database: Database) -> None:
    with database.session() as client:
        _insert(client, 0, 5000, "m1")
        _insert(client, 5000, 5000, "m1")  # two parts
        before = client.query(ALL_ROWS).result_rows
        name = snapshot_table(client, TABLE, "m2-before")
        assert name == f"{TABLE}__snapshot_m2_before"
        assert client.query(f"SELECT count() FROM {name}").result_rows == [(len(before),)]
        # the migration that goes wrong: new rows, replaced rows, then worse
        _insert(client, 9000, 3000, "m2")
        client.command(
            f"ALTER TABLE {TABLE} DELETE WHERE message_id = 'msg_1' SETTINGS mutations_sync = 1"
        )
        assert client.query(ALL_ROWS).result_rows != before
        restore_table(client, TABLE, name)
        assert client.query(ALL_ROWS).result_rows == before
        # the snapshot is still there and restores again
        client.command(f"TRUNCATE TABLE {TABLE}")
        restore_table(client, TABLE, name)
        assert client.query(ALL_ROWS).result_rows == before
        assert list_snapshots(client, TABLE) == [name]
        assert not table_exists(client, f"{TABLE}__restoring")
    with database.session() as client:  # survives closing and reopening the engine
        assert client.query(ALL_ROWS).result_rows == before
        assert client.query(f"SELECT count() FROM {name}").result_rows == [(len(before),)]


def test_snapshot_of_an_empty_table(database: Database) -> None:
    with database.session() as client:
        name = snapshot_table(client, TABLE, "empty")
        _insert(client, 0, 10, "m")
        restore_table(client, TABLE, name)
        assert client.query(f"SELECT count() FROM {TABLE}").result_rows == [(0,)]


def test_snapshot_names_and_refusals(database: Database) -> None:
    assert snapshot_name("t", "mig 2026-01-01/ck#3") == "t__snapshot_mig_2026_01_01_ck_3"
    with pytest.raises(ConfigurationError):
        snapshot_name("t", "///")
    with pytest.raises(ConfigurationError):
        snapshot_name("t; DROP TABLE x", "a")
    with database.session() as client:
        snapshot_table(client, TABLE, "a")
        with pytest.raises(SchemaError, match="exists already"):
            snapshot_table(client, TABLE, "a")
        with pytest.raises(SchemaError, match="does not exist"):
            snapshot_table(client, "no_such_table", "a")

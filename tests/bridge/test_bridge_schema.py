"""Schema files: found, split, applied in order once, recorded, and guarded against edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from context_cleaner.bridge import (
    Database,
    SchemaError,
    applied_schema_files,
    load_schema_files,
    pending_schema_files,
    setup_schema,
)
from context_cleaner.bridge.schema import SchemaFile, split_statements, sql_dir

CORE_TABLES = {
    "enhanced_token_details",
    "enhanced_token_summaries",
    "enhanced_analysis_metadata",
    "migration_execution_log",
    "migration_file_tracking",
    "schema_migrations",
}


def test_schema_files_are_found_and_ordered() -> None:
    files = load_schema_files()
    names = [f.name for f in files]
    assert names == sorted(names)
    assert names[:2] == ["001_core_tables.sql", "002_migration_tracking.sql"]
    assert Path(str(sql_dir())).name == "sql"
    for f in files:
        assert f.statements, f"{f.name} has no statements"
        assert len(f.checksum) == 64


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String COMMENT 'it''s; here') ENGINE = Memory;
    /* block; comment */
    SELECT 'a\\';b', "c;d", `e;f`;
    -- trailing comment only;
    """
    parts = split_statements(sql)
    assert len(parts) == 2
    assert parts[0].endswith("ENGINE = Memory")
    assert "'it''s; here'" in parts[0]
    assert parts[1].endswith("`e;f`")
    assert split_statements("  -- nothing\n ; ;") == []


def test_checksum_ignores_line_endings() -> None:
    assert (
        SchemaFile("001_a.sql", "A;\r\nB;\r\n").checksum
        == SchemaFile("001_a.sql", "A;\nB;\n").checksum
    )


def test_setup_applies_everything_once_and_records_it(db_url: str) -> None:
    expected = [f.name for f in load_schema_files()]
    with Database(db_url).session() as client:
        assert applied_schema_files(client) == {}
        assert [f.name for f in pending_schema_files(client)] == expected
        assert setup_schema(client) == expected
        tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
        assert tables >= CORE_TABLES
        applied = applied_schema_files(client)
        assert sorted(applied) == expected
        by_name = {f.name: f for f in load_schema_files()}
        for name, row in applied.items():
            assert row.checksum == by_name[name].checksum
        assert pending_schema_files(client) == []
    with Database(db_url).session() as client:  # a later run, after reopening
        assert setup_schema(client) == []
        count = client.query("SELECT count() FROM schema_migrations FINAL").result_rows[0][0]
        assert count == len(expected)


def test_details_engine_and_key(db_url: str) -> None:
    with Database(db_url).session() as client:
        setup_schema(client)
        engine, sorting, partition = client.query(
            "SELECT engine_full, sorting_key, partition_key FROM system.tables "
            "WHERE database = currentDatabase() AND name = 'enhanced_token_details'"
        ).result_rows[0]
    assert engine.startswith("ReplacingMergeTree(ver)")
    assert sorting == "message_id, request_id"
    assert partition == ""  # no time partitioning (DESIGN §4)


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_upgrade_applies_only_new_files_and_refuses_edited_ones(
    db_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "sql"
    _write(
        folder, "001_a.sql", "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x;"
    )
    with Database(db_url).session() as client:
        assert setup_schema(client, load_schema_files(folder)) == ["001_a.sql"]
        _write(folder, "002_b.sql", "CREATE TABLE IF NOT EXISTS b (y UInt8) ENGINE = Memory;")
        assert [f.name for f in pending_schema_files(client, load_schema_files(folder))] == [
            "002_b.sql"
        ]
        assert setup_schema(client, load_schema_files(folder)) == ["002_b.sql"]
        _write(folder, "001_a.sql", "CREATE TABLE IF NOT EXISTS a (x UInt16) ENGINE = Memory;")
        with pytest.raises(SchemaError, match=r"001_a\.sql was changed after it was applied"):
            setup_schema(client, load_schema_files(folder))


def test_a_file_failing_half_way_stays_pending_and_reruns(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    good = "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory;\n"
    _write(folder, "001_a.sql", good + "CREATE TABLE b (y NoSuchType) ENGINE = Memory;")
    with Database(db_url).session() as client:
        with pytest.raises(SchemaError) as info:
            setup_schema(client, load_schema_files(folder))
        assert "statement 2 of schema file 001_a.sql" in str(info.value)
        assert applied_schema_files(client) == {}
        _write(
            folder, "001_a.sql", good + "CREATE TABLE IF NOT EXISTS b (y UInt8) ENGINE = Memory;"
        )
        assert setup_schema(client, load_schema_files(folder)) == ["001_a.sql"]


def test_files_applied_before_a_failing_one_stay_recorded(db_url: str, tmp_path: Path) -> None:
    """The files applied are recorded together, also when a later one fails: only the
    failing file (and those after it) run again."""
    folder = tmp_path / "sql"
    _write(folder, "001_a.sql", "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory;")
    _write(folder, "002_b.sql", "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = Memory;")
    _write(folder, "003_c.sql", "CREATE TABLE c (y NoSuchType) ENGINE = Memory;")
    with Database(db_url).session() as client:
        with pytest.raises(SchemaError, match=r"schema file 003_c\.sql"):
            setup_schema(client, load_schema_files(folder))
        assert sorted(applied_schema_files(client)) == ["001_a.sql", "002_b.sql"]
        _write(folder, "003_c.sql", "CREATE TABLE IF NOT EXISTS c (y UInt8) ENGINE = Memory;")
        assert setup_schema(client, load_schema_files(folder)) == ["003_c.sql"]
        assert sorted(applied_schema_files(client)) == ["001_a.sql", "002_b.sql", "003_c.sql"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["1_a.sql"], "is not named NNN_lowercase_name.sql"),
        (["001_a.sql", "001_b.sql"], "share the number 001"),
    ],
)
def test_bad_file_names_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        _write(tmp_path / "sql", name, "SELECT 1;")
    with pytest.raises(SchemaError, match=message):
        load_schema_files(tmp_path / "sql")

"""Session and message ids bound as one set of lines read back exactly as they were."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from context_cleaner.bridge import Database
from context_cleaner.bridge.queries import (
    BoundRows,
    StringSet,
    bound_rows,
    bound_set,
    insert_rows,
    query_rows,
)

#: What needs escaping (backslash, tab, newline, carriage return) and its neighbours.
_TRICKY = "ab-0\\'`\t\n\"é☃ \r\x00"
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY), max_size=12) | st.text()


@pytest.mark.slow  # a fresh engine and schema: ~1-2.5 s
def test_a_string_set_reads_back_as_bound(database: Database) -> None:
    """Every value (empty, escapes, NUL, unicode, a TSV ``\\N``), once per line, in order."""
    rng = random.Random(11)
    values = ["", "\\N", "msg_01Plain", *(_TRICKY[i] for i in range(len(_TRICKY)))]
    values += ["".join(rng.choices(_TRICKY, k=rng.randint(1, 12))) for _ in range(300)]
    sql = f"SELECT groupArray(k) FROM {bound_set('s')}"
    with database.session() as client:
        for sample in (values, [""], ["plain", "plain2"], []):
            (row,) = query_rows(client, sql, {"s": StringSet(sample)})
            assert list(row[0]) == sample
        (row,) = query_rows(client, f"SELECT 'a\\tb' IN {bound_set('s')}", {"s": StringSet(values)})
        assert row[0] == int("a\tb" in values)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """An embedded engine without a schema (the statements read no table)."""
    return Database(f"chdb://{tmp_path_factory.mktemp('sets') / 'db'}")


@pytest.mark.slow  # ~0.5 s engine start, then ~15 ms an example
@settings(max_examples=40)
@given(st.lists(_TEXT, max_size=20))
def test_a_string_set_reads_back_as_bound_any_text(engine: Database, values: list[str]) -> None:
    with engine.session() as client:
        (row,) = query_rows(
            client, f"SELECT groupArray(k) FROM {bound_set('s')}", {"s": StringSet(values)}
        )
    assert list(row[0]) == values


@pytest.mark.slow  # ~15 ms an example, on the module's engine
@settings(max_examples=25)
@given(st.lists(st.tuples(_TEXT, st.integers(0, 2**64 - 1)), max_size=12))
def test_bound_rows_read_back_as_bound(engine: Database, rows: list[tuple[str, int]]) -> None:
    """Rows of a path and a number, every character of the path kept (the places a
    validation binds)."""
    sql = f"SELECT groupArray((path, n)) FROM {bound_rows('r', 'path String, n UInt64')}"
    with engine.session() as client:
        (row,) = query_rows(client, sql, {"r": BoundRows(rows)})
    assert [tuple(r) for r in row[0]] == rows


@pytest.mark.slow  # a fresh engine: ~0.5 s
def test_an_insert_asks_the_columns_types_once_and_again_after_a_schema_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``insert_rows`` asks the database for the columns' types on its first insert into a
    table only; a schema file applied through the client makes it ask again, and the rows
    inserted after it take the new type."""
    from context_cleaner.bridge.schema import SchemaFile, setup_schema

    database = Database(f"chdb://{tmp_path / 'db'}")
    with database.session() as client:
        asked: list[str] = []
        run = client._query_with_context

        def counting(context: Any) -> Any:
            if str(context.query).lstrip().upper().startswith("DESCRIBE"):
                asked.append(str(context.query).split()[2].strip("`"))
            return run(context)

        monkeypatch.setattr(client, "_query_with_context", counting)
        first = SchemaFile(
            "001_t.sql", "CREATE TABLE t (a UInt8, b String) ENGINE = MergeTree ORDER BY b"
        )
        setup_schema(client, [first])
        for n in range(3):
            insert_rows(client, "t", [[n, "x"]], ["a", "b"], action="test")
        assert asked == ["t"]
        wider = SchemaFile("002_t.sql", "ALTER TABLE t MODIFY COLUMN a UInt32")
        setup_schema(client, [first, wider])
        insert_rows(client, "t", [[70_000, "y"]], ["a", "b"], action="test")
        assert asked == ["t", "t"]
        assert query_rows(client, "SELECT max(a), count() FROM t") == [(70_000, 4)]

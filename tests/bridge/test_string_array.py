"""Session ids bound as one formatted array literal read back exactly as they were."""

from __future__ import annotations

import random

import pytest
from clickhouse_connect.driver.binding import format_bind_value
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.bridge import Database
from context_cleaner.bridge.queries import StringArray, query_rows

#: What the driver escapes (backslash, quote, backtick, tab, newline) and its neighbours.
_TRICKY = "ab-0\\'`\t\n\"é☃ \r\x00"
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY), max_size=12) | st.text()


@given(st.lists(_TEXT, max_size=20))
def test_literal_is_the_drivers(values: list[str]) -> None:
    """The same literal the driver builds for a list (up to the spaces between items)."""
    assert str(StringArray(values)) == format_bind_value(values).replace("', '", "','")


@pytest.mark.slow  # a fresh engine and schema: ~1-2.5 s
def test_round_trip_through_the_engine(database: Database) -> None:
    rng = random.Random(7)
    values = ["", "plain-uuid-like-0", *(_TRICKY[i] for i in range(len(_TRICKY)))]
    values += ["".join(rng.choices(_TRICKY, k=rng.randint(1, 12))) for _ in range(300)]
    with database.session() as client:
        for sample in (values, values[:2], []):
            (row,) = query_rows(client, "SELECT {a:Array(String)}", {"a": StringArray(sample)})
            assert list(row[0]) == sample

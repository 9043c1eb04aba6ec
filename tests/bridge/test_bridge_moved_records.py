"""A record a later unit takes to another session leaves both rollups exact, merges or not.

Rule 3 moves a key's record from session A to session B when B's copy arrives later and is
preferred. The rollups of A must then be recomputed, but once B's row is in, a background
merge of the usage rows may drop A's row at any moment, and with it every trace that A
held the key. Here the merge is forced between a unit's insert and its refresh (the moment
a Prefect run with small batches hit): the writer must have found A before the insert.
Real embedded ClickHouse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge import Database, queries
from context_cleaner.bridge.buckets import rollup_differences
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge, query_rows


def _record(n: int, session: str, **over: Any) -> UsageRecord:
    fields: dict[str, Any] = {
        "message_id": f"msg_{n}",
        "request_id": f"req_{n}",
        "session_id": session,
        "line_session_id": session,
        "project": "-home-u-p",
        "file_path": f"-home-u-p/{session}.jsonl",
        "line_number": n + 1,
        "byte_offset": n * 100,
        "timestamp_ms": 1_764_000_000_000 + n * 60_000,
        "model": "claude-opus-4-6",
        "is_sidechain": False,
        "speed": "",
        "from_progress": False,
        "input_tokens": 10,
        "output_tokens": 100 + n,
        "cache_creation_5m_tokens": 0,
        "cache_creation_1h_tokens": 0,
        "cache_read_tokens": 1000,
        "cost_usd": None,
    }
    fields.update(over)
    return UsageRecord(**fields)


def _rows_of_exact_rollups(db_url: str, sql: str) -> list[tuple]:
    """What ``sql`` selects, once both rollups are found equal to the counted rows."""
    with Database(db_url).session() as client:
        assert rollup_differences(client) == {
            "enhanced_token_summaries": [],
            "enhanced_token_buckets": [],
        }
        return query_rows(client, sql)


@pytest.mark.slow
@pytest.mark.parametrize("move", ["better-copy", "main-chain-copy"])
@pytest.mark.parametrize("parts", ["one statement", "a statement per session"])
def test_a_record_taken_by_a_later_unit_leaves_no_trace_in_its_first_session(
    db_url: str, move: str, parts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if parts != "one statement":  # large sets are bound in parts: here one id a part
        monkeypatch.setattr(queries, "BOUND_CHARS", 1)
    bridge = EnhancedTokenDatabaseBridge(db_url, host="h")
    bridge.setup_migration_infrastructure()
    first = [_record(0, "a"), _record(1, "a", is_sidechain=move == "main-chain-copy")]
    taken = first[1]
    if move == "better-copy":  # the same key, more output: rule 3 prefers it
        again = _record(1, "b", output_tokens=taken.output_tokens + 5)
    else:  # the main-chain copy of a side-chain record
        again = _record(1, "b")
    for n, records in enumerate([first, [again, _record(2, "b")]]):
        with bridge.writer() as w:
            w.insert_records(records, f"m{n}")
            w.client.command("OPTIMIZE TABLE enhanced_token_details FINAL")  # A's row gone
            w.refresh_summaries({r.session_id for r in records}, f"m{n}")
    counted = _rows_of_exact_rollups(
        db_url,
        "SELECT session_id, count() FROM counted_token_details "
        "GROUP BY session_id ORDER BY session_id",
    )
    assert counted == [("a", 1), ("b", 2)]
    assert bridge.summary_totals()["records"] == 3


@pytest.mark.slow
def test_a_bucket_holding_two_days_still_gives_exact_day_rollups(db_url: str) -> None:
    """The day rollup is summed from the 15-minute rows, except where a 15-minute row holds
    two days: its bucket (a DateTime) stops at 2106-02-07 06:28:15, so every later record of
    a session and model falls in that one bucket."""
    bridge = EnhancedTokenDatabaseBridge(db_url, host="h")
    bridge.setup_migration_infrastructure()
    days_ms = [
        int(datetime(year, 6, 6, 0, 0, 1, tzinfo=UTC).timestamp() * 1000) for year in (2120, 2149)
    ]
    records = [_record(n, "a", timestamp_ms=ms) for n, ms in enumerate(days_ms)]
    with bridge.writer() as w:
        w.insert_records(records, "m0")
        w.refresh_summaries({"a"}, "m0")
    days = _rows_of_exact_rollups(
        db_url,
        "SELECT toString(day), record_count FROM enhanced_token_summaries FINAL "
        "WHERE is_deleted = 0 ORDER BY day",
    )
    assert days == [("2120-06-06", 1), ("2149-06-06", 1)]
    buckets = _rows_of_exact_rollups(db_url, "SELECT count() FROM enhanced_token_buckets FINAL")
    assert buckets == [(1,)]  # both in the last bucket

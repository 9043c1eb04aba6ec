"""Usage records through the database: every token kept, duplicates decided by the key.

Property (STYLE 10): records -> insert (any order, any batches, replayed) -> the
``counted_token_details`` view holds exactly what the analysis layer's collector keeps.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.dedup import UsageCollector
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge import (
    DETAIL_COLUMNS,
    Database,
    detail_columns,
    insert_details,
    setup_schema,
    storage_message_id,
    synthetic_message_id,
)

T0 = 1_760_000_000_000


def record(
    message_id: str = "msg_1",
    request_id: str = "req_1",
    *,
    session: str = "s1",
    path: str = "p/s1.jsonl",
    offset: int = 0,
    ts: int = T0,
    sidechain: bool = False,
    speed: str = "",
    output: int = 10,
    cost: float | None = None,
) -> UsageRecord:
    return UsageRecord(
        message_id=message_id,
        request_id=request_id,
        session_id=session,
        line_session_id=session,
        project="p",
        file_path=path,
        line_number=offset // 100 + 1,
        byte_offset=offset,
        timestamp_ms=ts,
        model="claude-sonnet-4-5",
        is_sidechain=sidechain,
        speed=speed,
        from_progress=False,
        input_tokens=3,
        output_tokens=output,
        cache_creation_5m_tokens=100,
        cache_creation_1h_tokens=7,
        cache_read_tokens=1000,
        cost_usd=cost,
    )


def price(r: UsageRecord) -> float:
    return r.total_tokens * 1e-6


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One schema'd database for the module (Hypothesis examples truncate it)."""
    url = f"chdb://{tmp_path_factory.mktemp('details')}/db"
    with Database(url).session() as c:
        setup_schema(c)
        yield c


def counted(c: Client) -> list[tuple]:
    return sorted(
        c.query(
            "SELECT message_id, request_id, file_path, byte_offset, output_tokens, total_tokens, "
            "is_sidechain FROM counted_token_details"
        ).result_rows
    )


def expected(records: list[UsageRecord]) -> list[tuple]:
    collector = UsageCollector()
    collector.add_all(records)
    return sorted(
        (
            storage_message_id(r),
            r.request_id,
            r.file_path,
            r.byte_offset,
            r.output_tokens,
            r.total_tokens,
            r.is_sidechain,
        )
        for r in collector.records()
    )


def test_columns_match_the_table(client: Client) -> None:
    names = {row[0] for row in client.query("DESCRIBE TABLE enhanced_token_details").result_rows}
    assert set(DETAIL_COLUMNS) <= names
    cols = detail_columns([record(cost=0.5)], price=price, migration_id="m", host="h", user="u")
    assert len(cols) == len(DETAIL_COLUMNS)
    row = dict(zip(DETAIL_COLUMNS, (c[0] for c in cols), strict=True))
    assert row["ver"] == record(cost=0.5).version
    assert (row["cost_usd"], row["cost_from_line"]) == (0.5, True)
    assert row["timestamp"] == T0


def test_rows_read_back_exactly(client: Client) -> None:
    client.command("TRUNCATE TABLE enhanced_token_details")
    recs = [record(cost=0.25), record("", "", offset=500, speed="fast", sidechain=True)]
    assert insert_details(client, recs, price=price, migration_id="m1", host="h", user="u") == 2
    rows = client.query(
        "SELECT message_id, toUnixTimestamp64Milli(timestamp), cost_usd, cost_from_line, speed, "
        "total_tokens, cache_creation_tokens, host, user, migration_id, ver "
        "FROM enhanced_token_details FINAL ORDER BY message_id"
    ).result_rows
    assert rows == [
        ("msg_1", T0, 0.25, True, "", 1120, 107, "h", "u", "m1", recs[0].version),
        (
            synthetic_message_id("p/s1.jsonl", 500),
            T0,
            pytest.approx(price(recs[1])),
            False,
            "fast",
            1120,
            107,
            "h",
            "u",
            "m1",
            recs[1].version,
        ),
    ]


def test_lines_without_message_id_never_collapse_but_replays_do(client: Client) -> None:
    client.command("TRUNCATE TABLE enhanced_token_details")
    recs = [record("", "", offset=o) for o in (0, 100, 200)]
    for _ in range(2):  # the same byte range twice: a replay after a crash
        insert_details(client, recs, price=price, migration_id="m", host="h", user="u")
    assert len(counted(client)) == 3


keys = st.sampled_from(["msg_a", "msg_b", "msg_c", ""])
requests = st.sampled_from(["req_1", "req_2"])
records_strategy = st.lists(
    st.builds(
        record,
        message_id=keys,
        request_id=requests,
        path=st.sampled_from(["p/s1.jsonl", "p/s1/subagents/agent-1.jsonl"]),
        offset=st.integers(0, 5).map(lambda i: i * 100),
        ts=st.integers(0, 3).map(lambda i: T0 + i),
        sidechain=st.booleans(),
        speed=st.sampled_from(["", "fast"]),
        output=st.sampled_from([1, 10, 500]),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.slow
@given(recs=records_strategy, seed=st.integers(0, 2**16), batch=st.integers(1, 7))
def test_database_keeps_what_the_collector_keeps(
    client: Client,
    recs: list[UsageRecord],
    seed: int,
    batch: int,
) -> None:
    # One line per (file, offset), as in real files; the collector sees each line once.
    lines = list({(r.file_path, r.byte_offset): r for r in recs}.values())
    shuffled = lines[:]
    random.Random(seed).shuffle(shuffled)
    client.command("TRUNCATE TABLE enhanced_token_details")
    meta = {"price": price, "migration_id": "m", "host": "h", "user": "u"}
    insert_details(client, shuffled, batch_size=batch, **meta)
    insert_details(client, lines[: len(lines) // 2], **meta)  # a replayed range changes nothing
    assert counted(client) == expected(lines)

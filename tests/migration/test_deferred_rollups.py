"""A migration into a database that holds no usage rows builds both rollups whole, at its
checkpoints and its end, instead of refreshing them unit by unit; any other run refreshes
unit by unit. Either way the rollups equal the counted rows whenever a run has ended,
however it ended (completed, failed, killed). Real embedded ClickHouse, generated corpora.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge import SUMMARIES, Database, query_rows, rebuild, writes
from context_cleaner.bridge.buckets import BUCKETS, rollup_differences
from context_cleaner.bridge.summaries import CHANGE_KEYS
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import MigrationError
from context_cleaner.migration import migrate, pipeline
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.testing.transcripts import TOKEN_KEYS, generate_corpus

from .helpers import analyse, assert_database_equals, bridge

EXACT = {SUMMARIES: [], BUCKETS: []}


def _differences(url: str) -> dict[str, list[tuple]]:
    with Database(url, lock_timeout=30).session() as client:
        return rollup_differences(client)


def _counting_refreshes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the unit-by-unit refreshes and the whole rebuilds the runs make."""
    calls = [0, 0]
    refresh, rebuilt = writes.BridgeWriter.refresh_summaries, writes.BridgeWriter.rebuild_rollups

    def counted_refresh(self: writes.BridgeWriter, *args: Any, **kwargs: Any) -> int:
        calls[0] += 1
        return refresh(self, *args, **kwargs)

    def counted_rebuild(self: writes.BridgeWriter, *args: Any, **kwargs: Any) -> None:
        calls[1] += 1
        rebuilt(self, *args, **kwargs)

    monkeypatch.setattr(writes.BridgeWriter, "refresh_summaries", counted_refresh)
    monkeypatch.setattr(writes.BridgeWriter, "rebuild_rollups", counted_rebuild)
    return calls


def _migrator(url: str, **kw: Any) -> HistoricalDataMigrator:
    return HistoricalDataMigrator(url, parallel_workers=1, batch_size=2, **kw)


@pytest.mark.slow  # ~3 s
def test_a_first_migration_builds_the_rollups_once_and_later_runs_refresh_them(
    corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, manifest = corpus_small
    url = f"chdb://{tmp_path / 'db'}"
    calls = _counting_refreshes(monkeypatch)
    migrator = _migrator(url, checkpoint_interval=0)
    migrator.commit_every = 0.0  # a unit per batch: several units
    first = asyncio.run(migrator.migrate_all_historical_data(str(source)))
    assert first.success and first.validation_passed, first.errors
    assert calls == [0, 1]  # no unit refreshed; one rebuild at the end
    b = bridge(url)
    assert_database_equals(b, analyse(source))
    # The run's net change is its counted rows: the whole table, as the run row says.
    totals = b.get_migration_totals()
    assert (
        first.total_tokens_migrated == totals["total_tokens"] == manifest["totals"]["total_tokens"]
    )
    assert first.total_records_inserted == totals["records"]
    assert first.database_totals == totals  # read with the run's own sums, at its end
    (row,) = b.migration_runs(1)
    assert row["total_tokens"] == totals["total_tokens"]

    # The database holds rows now: a run that adds to it refreshes unit by unit.
    grown = tmp_path / "grown"
    _copy_with_an_appended_session(source, grown)
    second = asyncio.run(_migrator(url).migrate_all_historical_data(str(grown)))
    assert second.success and second.validation_passed, second.errors
    assert calls[0] > 0 and calls[1] == 1
    assert_database_equals(b, analyse(grown))
    assert (
        second.total_tokens_migrated
        == b.get_migration_totals()["total_tokens"] - totals["total_tokens"]
    )


def _copy_with_an_appended_session(source: Path, out: Path) -> None:
    """``source`` copied to ``out``, with three more sessions' files in its projects."""
    shutil.copytree(source, out)
    more = generate_corpus(out.with_name("more"), 0, seed=9, target_files=3)
    assert more["files"] == 3
    for path in (out.with_name("more") / "projects").rglob("*.jsonl"):
        place = out / "projects" / path.relative_to(out.with_name("more") / "projects")
        assert not place.exists()
        place.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, place)


@pytest.mark.slow  # ~3 s
def test_a_long_first_migration_rebuilds_its_rollups_now_and_then(
    corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilt every CATCH_UP_EVERY seconds (0 here) or four times the last rebuild's time,
    so a long first migration's rollups lag its rows by about that much; all exact."""
    source, _ = corpus_small
    url = f"chdb://{tmp_path / 'db'}"
    calls = _counting_refreshes(monkeypatch)
    monkeypatch.setattr(migrate, "CATCH_UP_EVERY", 0.0)
    units: list[str] = []
    commit = pipeline.commit_scan

    def counted_commit(*args: Any, **kwargs: Any) -> Any:
        units.append(args[2])
        return commit(*args, **kwargs)

    monkeypatch.setattr(pipeline, "commit_scan", counted_commit)
    migrator = _migrator(url, checkpoint_interval=0, validation_enabled=False)
    migrator.commit_every = 0.0
    result = asyncio.run(migrator.migrate_all_historical_data(str(source), checkpoint_interval=0))
    assert result.success, result.errors
    # The first unit's rebuild, then one whenever four times the last one's time has passed
    # (units here are quicker than that), and one at the end.
    assert len(units) >= 3 and calls[0] == 0 and 2 <= calls[1] <= len(units) + 1, calls
    assert _differences(url) == EXACT
    assert_database_equals(bridge(url), analyse(source))


@pytest.mark.slow  # ~3 s
def test_each_checkpoint_of_a_first_migration_holds_rollups_equal_to_its_rows(
    corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    source, _ = corpus_small
    url = f"chdb://{tmp_path / 'db'}"
    migrator = _migrator(url, validation_enabled=False)
    result = asyncio.run(migrator.migrate_all_historical_data(str(source), checkpoint_interval=2))
    assert result.success and len(result.checkpoints) >= 2, result
    for label in result.checkpoints[:2]:
        migrator.rollback(result.migration_id, label)
        assert _differences(url) == EXACT, label
        b = bridge(url)
        assert b.summary_totals()["total_tokens"] == b.get_migration_totals()["total_tokens"] > 0


@pytest.mark.slow  # ~4 s
def test_a_first_migration_whose_rebuild_is_refused_is_closed_by_the_next_run(
    corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the rebuild at the end (as a full disk would): the run fails
    saying so, its failed row is kept beside the database (the database's row still says
    ``running``), and the next run closes it and brings the rollups level with the rows."""
    source, _ = corpus_small
    url = f"chdb://{tmp_path / 'db'}"

    def refused(*args: Any, **kwargs: Any) -> None:
        raise MigrationError("the database refused the rebuild (no space left on device)")

    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = {"pid": ended.pid, "started": round(time.time(), 3)}
    with monkeypatch.context() as patched:
        patched.setattr(writes, "rebuild_rollups", refused)
        patched.setattr(writes, "this_process", lambda: dead)  # its rows name an ended process
        with pytest.raises(MigrationError, match="refused the rebuild"):
            _migrator(url).run(str(source))
    assert _differences(url) != EXACT  # the rows are in, the rollups are not
    (left,) = bridge(url).migration_runs(1)  # shown failed (its row kept beside the database)
    assert left["status"] == "failed" and "refused the rebuild" in str(left["details"])

    again = asyncio.run(_migrator(url).migrate_all_historical_data(str(source)))
    assert again.success and again.validation_passed, again.errors
    runs = {r["migration_id"]: r for r in bridge(url).migration_runs(5)}
    assert runs[left["migration_id"]]["status"] == "failed"
    assert "refused the rebuild" in str(runs[left["migration_id"]]["details"])
    assert_database_equals(bridge(url), analyse(source))


@pytest.fixture(scope="module")
def rebuilt_db(tmp_path_factory: pytest.TempPathFactory) -> EnhancedTokenDatabaseBridge:
    path = tmp_path_factory.mktemp("rebuild")
    b = EnhancedTokenDatabaseBridge(Database(f"chdb://{path}/db", lock_timeout=30), host="h")
    b.setup_migration_infrastructure()
    return b


DAY_MS = 86_400_000


def _record(
    n: int, session: str, *, output_tokens: int, day: int = 0, at: int | None = None, **kw: Any
) -> UsageRecord:
    """A record of message ``n`` in ``session``, ``day`` days later (or ``at``, in ms)."""
    at = 1_764_000_000_000 + day * DAY_MS + n * 450_000 if at is None else at
    return UsageRecord(
        message_id=f"msg_{n}", session_id=session, line_session_id=session,
        project="-home-u-p", file_path=f"-home-u-p/{session}.jsonl", line_number=n + 1,
        byte_offset=n * 100, timestamp_ms=at,
        model="claude-opus-4-6", speed="", from_progress=False, input_tokens=10,
        output_tokens=output_tokens, cache_creation_5m_tokens=0, cache_creation_1h_tokens=0,
        cache_read_tokens=1000, cost_usd=None, **kw,
    )  # fmt: skip


@pytest.mark.slow  # ~10 s
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 7),  # message
            st.sampled_from(["a", "b", "c", "d"]),  # session
            st.booleans(),  # side chain
            st.integers(1, 500),  # output tokens
            st.booleans(),  # refreshed unit by unit
            st.integers(0, 2),  # days later
        ),
        min_size=1,
        max_size=10,
    ),
    part_rows=st.sampled_from([2, 10**6]),
    seed=st.integers(0, 2**16),
    lost=st.sampled_from(["a", "b", None]),
)
def test_a_rebuild_equals_the_counted_rows_in_any_number_of_parts(
    rebuilt_db: EnhancedTokenDatabaseBridge,
    rows: list[tuple[int, str, bool, int, bool, int]],
    part_rows: int,
    seed: int,
    lost: str | None,
) -> None:
    """Records moving between sessions, side-chain replays, rollup rows left behind by
    refreshes of an older state, and a session whose rows are gone after its rollups were
    written (``lost``): after a rebuild (in one part or many) every rollup group equals its
    counted rows, and the groups that lost their records are deleted."""
    b = rebuilt_db
    with b.database.held():  # one open engine for the example
        measured = _build_and_rebuild(b, rows, part_rows, seed, lost)
    with b.database.session() as client:
        assert rollup_differences(client) == EXACT
        assert _day_rows_differ(client) == []
        live = query_rows(
            client,
            f"SELECT count() FROM {SUMMARIES} FINAL WHERE is_deleted = 0 AND record_count = 0",
        )
    assert live[0][0] == 0  # a group without records is deleted, not kept at zero
    totals = b.get_migration_totals()
    assert {k: b.summary_totals()[k] for k in TOKEN_KEYS} == {k: totals[k] for k in TOKEN_KEYS}
    assert {k: b.bucket_totals()[k] for k in TOKEN_KEYS} == {k: totals[k] for k in TOKEN_KEYS}
    # Every change of the counted totals was measured once, by the refresh or the rebuild
    # that brought it into the rollups: what they measured adds up to the totals (runs at
    # the same time each count what they levelled, and add up).
    kinds = CHANGE_KEYS[:5]  # the five token kinds, then cost and records
    assert {k: measured.get(k, 0) for k in kinds} == {k: totals[k] for k in kinds}
    assert measured.get("records", 0) == totals["records"]
    assert measured.get("cost_usd", 0) == pytest.approx(totals["cost_usd"])


_ROLLED_DAYS = (
    "SELECT session_id, day, model, project, host, first_timestamp, last_timestamp "
    f"FROM {SUMMARIES} FINAL WHERE is_deleted = 0"
)
_COUNTED_DAYS = (
    "SELECT session_id, toDate(timestamp) AS day, model, groupUniqArray(project), "
    "groupUniqArray(host), min(timestamp), max(timestamp) "
    "FROM counted_token_details GROUP BY session_id, day, model"
)


def _day_rows_differ(client: Any) -> list[tuple]:
    """The day rollup's groups whose first or last time differs from their counted records',
    or whose project or host is none of theirs (sums: ``rollup_differences``)."""
    counted = {tuple(r[:3]): r[3:] for r in query_rows(client, _COUNTED_DAYS)}
    rolled = {tuple(r[:3]): r[3:] for r in query_rows(client, _ROLLED_DAYS)}
    differ = []
    for key in sorted(counted.keys() | rolled.keys(), key=repr):
        got, want = rolled.get(key), counted.get(key)
        same = got is not None and want is not None and got[2:] == want[2:]
        if not (same and got[0] in want[0] and got[1] in want[1]):
            differ.append((*key, got, want))
    return differ


def _empty(b: EnhancedTokenDatabaseBridge) -> None:
    with b.writer() as w:
        for table in ("enhanced_token_details", SUMMARIES, BUCKETS):
            w.client.command(f"TRUNCATE TABLE {table}")


def _build_and_rebuild(
    b: EnhancedTokenDatabaseBridge,
    rows: list[tuple[int, str, bool, int, bool, int]],
    part_rows: int,
    seed: int,
    lost: str | None,
) -> dict[str, float]:
    """Insert ``rows`` (some refreshed unit by unit), lose a session's rows, rebuild; returns
    the changes every refresh and the rebuild measured, added up."""
    _empty(b)
    rng = random.Random(seed)
    measured: dict[str, float] = {}
    for n, (message, session, side, output, refresh, day) in enumerate(rows):
        record = _record(
            message,
            session,
            is_sidechain=side,
            output_tokens=output,
            request_id=f"req_{n % 3}",
            day=day,
        )
        with b.writer() as w:
            w.insert_records([record], f"m{n}", rollups=refresh)
            if refresh or rng.random() < 0.3:
                w.refresh_summaries({session}, f"m{n}", measured)
    if lost is not None:
        with b.writer() as w:
            w.refresh_summaries({lost}, "before", measured)
            w.client.command(
                f"ALTER TABLE enhanced_token_details DELETE WHERE session_id = '{lost}' "
                "SETTINGS mutations_sync = 2"
            )
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(rebuild, "PART_ROWS", part_rows)
        with b.writer() as w:
            w.rebuild_rollups("rebuild", measured)
    return measured


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the rebuild runs (their SQL), from now on."""
    statements: list[str] = []
    run = rebuild.run_statement

    def recorded(client: Any, sql: str, *args: Any, **kwargs: Any) -> None:
        statements.append(sql)
        run(client, sql, *args, **kwargs)

    monkeypatch.setattr(rebuild, "run_statement", recorded)
    return statements


@pytest.mark.slow  # ~1 s
def test_a_first_rebuild_writes_no_deleted_rows_and_sums_the_days_from_its_buckets(
    rebuilt_db: EnhancedTokenDatabaseBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into empty rollups no key can be left behind, so no deleted-row statement runs, and
    the day rollup is summed from the 15-minute rows just written (not from the usage rows
    again); a later rebuild, over rollups that hold rows, writes the deleted rows."""
    b = rebuilt_db
    _empty(b)
    statements = _recording(monkeypatch)
    # Two records a bucket (a minute apart), two buckets a day, two days.
    at = [1_764_000_001_000 + n // 4 * DAY_MS + n * 60_000 for n in range(6)]
    records = [
        _record(n, "ab"[n // 2 % 2], output_tokens=n + 1, at=t, request_id="r", is_sidechain=False)
        for n, t in enumerate(at)
    ]
    with b.writer() as w:
        w.insert_records(records, "first", rollups=False)
        w.rebuild_rollups("first")
    deleted = [s for s in statements if "ver < {ver:UInt64}" in s]
    from_rows = [s for s in statements if "FROM counted_token_details" in s]
    assert len(statements) == 2 and not deleted and len(from_rows) == 1, statements
    assert f"INSERT INTO {BUCKETS}" in from_rows[0]
    with b.database.session() as client:
        assert rollup_differences(client) == EXACT and _day_rows_differ(client) == []

    # Session b loses its records: the next rebuild must delete its rollup rows.
    statements.clear()
    with b.writer() as w:
        w.client.command(
            "ALTER TABLE enhanced_token_details DELETE WHERE session_id = 'b' "
            "SETTINGS mutations_sync = 2"
        )
        w.rebuild_rollups("second")
    assert len([s for s in statements if "ver < {ver:UInt64}" in s]) == 2, statements
    with b.database.session() as client:
        assert rollup_differences(client) == EXACT and _day_rows_differ(client) == []


@pytest.mark.slow  # ~1 s
def test_a_rebuild_puts_records_after_2106_on_their_own_days(
    rebuilt_db: EnhancedTokenDatabaseBridge,
) -> None:
    """After 2106-02-07 06:28:15 every record falls in the 15-minute rollup's last bucket
    (``bucket`` is a ``DateTime``), which then holds several days: the day rollup is summed
    from the counted records instead, each record on its own UTC day."""
    b = rebuilt_db
    _empty(b)
    days = ("2120-03-01T10:00:00+00:00", "2120-03-02T10:00:00+00:00")
    records = [
        _record(n, "a", output_tokens=10**n, at=_ms(t), request_id="r", is_sidechain=False)
        for n, t in enumerate(days)
    ] + [_record(2, "b", output_tokens=100, day=1, request_id="r", is_sidechain=False)]
    with b.writer() as w:
        w.insert_records(records, "far", rollups=False)
        w.rebuild_rollups("far")
    with b.database.session() as client:
        assert rollup_differences(client) == EXACT and _day_rows_differ(client) == []
        rows = query_rows(
            client,
            f"SELECT session_id, toString(day), output_tokens FROM {SUMMARIES} FINAL "
            "WHERE is_deleted = 0 ORDER BY session_id, day",
        )
    assert rows == [("a", "2120-03-01", 1), ("a", "2120-03-02", 10), ("b", "2025-11-25", 100)]

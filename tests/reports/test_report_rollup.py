"""Reports read from the 15-minute rollup equal reports read from the usage rows.

Real embedded ClickHouse (chDB). The usage rows (``report_cells(..., rollup=False)``) are
the reference; the rollup is kept by the same writes as the pipeline's (insert, then the
two rollups refreshed for the batch's sessions), across batches that move records between
sessions (rule 3) and replay them on side chains (rule 4).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.periods import REPORTS, ReportQuery
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.report_rows import build_report
from context_cleaner.bridge.buckets import BUCKETS, TOTALS_SQL
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.queries import query_columns
from context_cleaner.bridge.schema import load_schema_files, setup_schema
from context_cleaner.bridge.summaries import refresh_summaries, widen_sessions
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge, query_rows
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.validator import validate_migration_integrity

pytestmark = pytest.mark.slow

NOW_MS = int(datetime(2026, 2, 11, 9, 53, tzinfo=UTC).timestamp() * 1000)
QUARTER = 900_000
ZONES = (
    "UTC",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/St_Johns",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Africa/Monrovia",  # -0:44:30 until 1972: the rollup cannot split those days
)
PROJECTS = ("-home-u-alpha", "-home-u-beta")
MODELS = ("claude-opus-4-6", "claude-sonnet-4-5", "<synthetic>")
HOSTS = ("host-a", "host-b")
#: Starts of the generated times: DST changes in both hemispheres, a year end, 1971.
STARTS = (
    datetime(2025, 3, 30, 0, tzinfo=UTC),
    datetime(2025, 10, 5, 12, tzinfo=UTC),
    datetime(2025, 12, 31, 10, tzinfo=UTC),
    datetime(2026, 2, 10, 0, tzinfo=UTC),
    datetime(1971, 6, 1, 0, tzinfo=UTC),
)


def _ts(rng: random.Random) -> int:
    start = int(rng.choice(STARTS).timestamp() * 1000)
    quarter = start + rng.randrange(0, 3 * 96) * QUARTER
    jitter = rng.choice([0, 0, 1, -1, 1000, -1000, rng.randrange(-QUARTER, QUARTER)])
    return max(0, quarter + jitter)


def _record(rng: random.Random, i: int, **over: Any) -> UsageRecord:
    session = over.pop("session", f"s{rng.randrange(8)}")
    fields: dict[str, Any] = {
        "message_id": f"msg_{i}",
        "request_id": f"req_{i}",
        "session_id": session,
        "line_session_id": session,
        "project": PROJECTS[int(session[1:]) % 2],
        "file_path": f"p/{session}.jsonl",
        "line_number": i + 1,
        "byte_offset": i * 100,
        "timestamp_ms": _ts(rng),
        "model": rng.choice(MODELS),
        "is_sidechain": False,
        "speed": "",
        "from_progress": False,
        "input_tokens": rng.randrange(0, 5000),
        "output_tokens": rng.randrange(1, 64_000),
        "cache_creation_5m_tokens": rng.randrange(0, 400_000),
        "cache_creation_1h_tokens": rng.randrange(0, 2000),
        "cache_read_tokens": rng.randrange(0, 400_000),
        "cost_usd": None,
    }
    fields.update(over)
    return UsageRecord(**fields)


def _batches(seed: int, n: int) -> list[tuple[str, list[UsageRecord]]]:
    """Three batches of ``n`` records; later ones re-send earlier message ids from other
    sessions (rule 3 moves a record when its copy is preferred) and as side-chain replays."""
    rng = random.Random(seed)
    first = [_record(rng, i) for i in range(n)]
    second = [_record(rng, n + i) for i in range(n)]
    replays = [
        _record(rng, n * 2 + i, message_id=r.message_id, is_sidechain=True, session="s7")
        for i, r in enumerate(rng.sample(first, n // 5))
    ]
    moved = [
        _record(
            rng,
            n * 3 + i,
            message_id=r.message_id,
            request_id=r.request_id,
            session=f"s{(int(r.session_id[1:]) + 1) % 7}",
            timestamp_ms=r.timestamp_ms + rng.choice([0, 1, QUARTER]),
        )
        for i, r in enumerate(rng.sample(first, n // 5))
    ]
    return [("host-a", first), ("host-b", second + replays), ("host-a", moved)]


def _write(url: str, batches: list[tuple[str, list[UsageRecord]]], *, buckets: bool) -> None:
    """The pipeline's writes; without ``buckets``, those of a version before the rollup."""
    for i, (host, records) in enumerate(batches):
        bridge = EnhancedTokenDatabaseBridge(url, host=host)
        with bridge.writer() as w:
            w.insert_records(records, f"m{i}")
            sessions = {r.session_id for r in records}
            if buckets:
                w.refresh_summaries(sessions, f"m{i}")
            else:
                refresh_summaries(w.client, widen_sessions(w.client, sessions), f"m{i}")


def _close(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-6 (costs are summed in another order: the same to the cent)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-6), (where, a, b)
    else:
        assert a == b, (where, a, b)


def _same_report(client: Any, query: ReportQuery) -> dict[str, Any]:
    from context_cleaner.bridge.reports import (
        _COUNT,
        _SPLIT,
        _cells,
        bucket_cells_sql,
        report_cells,
    )

    fast = build_report(query, report_cells(client, query), source="database", now_ms=NOW_MS)
    raw = build_report(
        query, report_cells(client, query, rollup=False), source="database", now_ms=NOW_MS
    )
    _close(fast, raw, f"{query.kind} {query.timezone}")
    columns = query_columns(client, *bucket_cells_sql(query))  # UTC days read the per-day rollup
    if columns and not any(columns[_SPLIT]):
        cells = _cells(columns, keep=columns[_COUNT])
        quarter = build_report(query, cells, source="database", now_ms=NOW_MS)
        _close(quarter, raw, f"{query.kind} {query.timezone} (15-minute rollup)")
    return fast


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"chdb://{tmp_path_factory.mktemp('rollup')}/db"
    EnhancedTokenDatabaseBridge(url).setup_migration_infrastructure()
    # Midnight in Monrovia on 1971-06-02 was 00:44:30 UTC, inside a quarter hour.
    midnight = int(datetime(1971, 6, 2, 0, 44, 30, tzinfo=UTC).timestamp() * 1000)
    rng = random.Random(3)
    monrovia = [
        _record(rng, 10_000 + i, session="s1", model=MODELS[0], timestamp_ms=midnight + d)
        for i, d in enumerate((-20_000, 20_000))
    ]
    _write(url, [*_batches(seed=7, n=400), ("host-a", monrovia)], buckets=True)
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Any]:
    """A session of the module's database (chDB opens one folder per process at a time)."""
    with Database(db_url).session() as client:
        yield client


queries = st.builds(
    ReportQuery,
    kind=st.sampled_from(REPORTS),
    timezone=st.sampled_from(ZONES),
    since=st.sampled_from([None, date(1971, 6, 2), date(2025, 3, 30), date(2026, 2, 11)]),
    until=st.sampled_from([None, date(1971, 6, 2), date(2025, 10, 6), date(2026, 2, 12)]),
    project=st.sampled_from([None, *PROJECTS]),
    model=st.sampled_from([None, *MODELS]),
    host=st.sampled_from([None, *HOSTS]),
    breakdown=st.booleans(),
    start_of_week=st.integers(0, 6),
    token_limit=st.sampled_from([None, "max", 500_000]),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries)
def test_the_rollup_gives_the_usage_rows_report_for_any_kind_zone_and_filter(
    db: Any, query: ReportQuery
) -> None:
    _same_report(db, query)


def test_every_kind_in_every_zone_and_the_rollup_is_read(db: Any) -> None:
    from context_cleaner.bridge.reports import _SPLIT, bucket_cells_sql

    for zone in ZONES:
        totals = set()
        for kind in REPORTS:
            report = _same_report(db, ReportQuery(kind=kind, timezone=zone, breakdown=True))
            totals.add(report["totals"]["total_tokens"])
        assert len(totals) == 1, zone
    # Every zone but one with a pre-1972 offset that is not whole quarters reads the rollup.
    for zone in ZONES:
        sql, params = bucket_cells_sql(ReportQuery(kind="daily", timezone=zone))
        split = sum(r[_SPLIT] for r in query_rows(db, sql, params))
        assert (split > 0) == (zone == "Africa/Monrovia"), zone


def test_the_rollup_equals_the_counted_rows(db: Any) -> None:
    counted = query_rows(
        db,
        "SELECT sum(input_tokens), sum(output_tokens), sum(cache_creation_5m_tokens), "
        "sum(cache_creation_1h_tokens), sum(cache_read_tokens), count() FROM counted_token_details",
    )[0]
    mine = query_rows(db, TOTALS_SQL)[0]
    assert [*mine[:5], mine[6]] == list(counted)


def test_upgrade_from_the_previous_schema_fills_the_rollup(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/db"
    previous = [f for f in load_schema_files() if f.name < "006"]
    with Database(url).session() as client:
        setup_schema(client, previous)
        assert not query_rows(client, f"EXISTS TABLE {BUCKETS}")[0][0]
    _write(url, _batches(seed=11, n=200), buckets=False)
    applied = EnhancedTokenDatabaseBridge(url).setup_migration_infrastructure()
    assert [n for n in applied if n.startswith("006")], applied
    with Database(url).session() as client:
        assert query_rows(client, f"SELECT count() FROM {BUCKETS}")[0][0] > 0
        test_the_rollup_equals_the_counted_rows(client)
        for zone in ("UTC", "Asia/Kathmandu", "America/St_Johns"):
            for kind in REPORTS:
                _same_report(client, ReportQuery(kind=kind, timezone=zone, breakdown=True))
        # Later writes replace the backfilled rows.
    _write(url, _batches(seed=12, n=100), buckets=True)
    with Database(url).session() as client:
        test_the_rollup_equals_the_counted_rows(client)
        _same_report(client, ReportQuery(kind="blocks", timezone="Pacific/Chatham"))


_KILLED_RUN = """
import os, signal, sys
from context_cleaner.bridge import writes
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

setattr(writes, sys.argv[3], die)
HistoricalDataMigrator(sys.argv[1], parallel_workers=1).run(sys.argv[2])
"""


@pytest.mark.parametrize(
    "dies_in",
    [
        "rebuild_rollups",  # a first migration, which builds the rollups whole at its end
        "refresh_buckets",  # a later one, which refreshes them unit by unit
    ],
)
def test_a_kill_between_the_usage_rows_and_the_rollup_is_repaired_by_the_next_run(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    url = f"chdb://{tmp_path}/db"
    env = {**os.environ, "CONTEXT_CLEANER_HOST": "host-a"}
    monkeypatch.setenv("CONTEXT_CLEANER_HOST", "host-a")
    if dies_in == "refresh_buckets":  # the database holds rows already: one transcript's
        first = tmp_path / "first" / "projects" / "p"
        first.mkdir(parents=True)
        shutil.copy(sorted(fixtures_dir.rglob("*.jsonl"))[0], first)
        assert HistoricalDataMigrator(url, parallel_workers=1).run(str(first.parent)).success
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, url, str(fixtures_dir), dies_in],
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with Database(url).session() as client:
        counted = query_rows(client, "SELECT count() FROM counted_token_details")[0][0]
        rolled = query_rows(client, TOTALS_SQL)[0][6]
        assert counted > 0 and rolled != counted  # the unit died between the two
    result = HistoricalDataMigrator(url, parallel_workers=1).run(str(fixtures_dir))
    assert result.success
    with Database(url).session() as client:
        test_the_rollup_equals_the_counted_rows(client)
        for kind in REPORTS:
            report = _same_report(client, ReportQuery(kind=kind, timezone="Asia/Kolkata"))
            assert report["totals"]["total_tokens"] == 15_537_336


def test_validation_fails_when_the_rollup_diverges(fixtures_dir: Path, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/db"
    bridge = EnhancedTokenDatabaseBridge(url, host="host-a")
    assert HistoricalDataMigrator(url, parallel_workers=1).run(str(fixtures_dir)).success
    assert validate_migration_integrity(bridge, [str(fixtures_dir)]).summaries_agree
    with Database(url).session() as client:
        client.command(
            f"INSERT INTO {BUCKETS} SELECT * REPLACE (input_tokens + 1 AS input_tokens, "
            f"ver + 1 AS ver) FROM {BUCKETS} FINAL WHERE is_deleted = 0 LIMIT 1"
        )
    result = validate_migration_integrity(bridge, [str(fixtures_dir)])
    assert not result.summaries_agree and not result.passed
    assert bridge.bucket_totals()["input_tokens"] == bridge.summary_totals()["input_tokens"] + 1


def test_a_rollback_to_a_snapshot_older_than_the_rollup_rebuilds_it(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot taken by a version before sql/006 holds no copy of the rollup: the
    rollback refills it from the restored usage rows."""
    import shutil

    from context_cleaner.migration import rollback

    source = tmp_path / "projects"
    shutil.copytree(fixtures_dir / "projects", source)
    later = sorted(source.rglob("*.jsonl"))[1::2]
    kept = {p: p.read_bytes() for p in later}
    for path in later:
        path.unlink()
    url = f"chdb://{tmp_path}/db"
    monkeypatch.setenv("CONTEXT_CLEANER_HOST", "host-a")
    assert HistoricalDataMigrator(url, parallel_workers=1).run(str(source)).success
    with Database(url).session() as client:
        first = query_rows(client, TOTALS_SQL)[0][6]
    for path, data in kept.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    old_tables = tuple(t for t in rollback.DATA_TABLES if t != BUCKETS)
    with monkeypatch.context() as mp:
        mp.setattr(rollback, "DATA_TABLES", old_tables)  # what an older version copied
        second = HistoricalDataMigrator(url, parallel_workers=1).run(str(source))
    assert second.success
    bridge = EnhancedTokenDatabaseBridge(url, host="host-a")
    rollback.rollback_migration(bridge, second.migration_id)
    with Database(url).session() as client:
        test_the_rollup_equals_the_counted_rows(client)
        assert query_rows(client, TOTALS_SQL)[0][6] == first > 0


def test_sessions_in_any_zone_read_the_per_day_rollup_unless_days_are_asked() -> None:
    from context_cleaner.bridge.reports import summary_cells_sql

    # A session's cells do not depend on the zone; its days do.
    assert summary_cells_sql(ReportQuery(kind="session", timezone="Asia/Kolkata")) is not None
    for extra in ({"since": date(2025, 6, 1)}, {"until": date(2025, 6, 1)}, {"host": "h"}):
        query = ReportQuery(kind="session", timezone="Asia/Kolkata", **extra)  # type: ignore[arg-type]
        assert summary_cells_sql(query) is None, extra
    assert summary_cells_sql(ReportQuery(kind="daily", timezone="Asia/Kolkata")) is None

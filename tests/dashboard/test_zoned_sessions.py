"""Sessions, counts and project rankings in a timezone: the dashboard agrees with the reports.

A small corpus whose sessions straddle Kathmandu's midnight (UTC+05:45, 18:15 UTC), one
record exactly on it, is migrated into a real chDB database. For date filters whose edge
splits sessions, ``/api/sessions`` (every page), its ``total``, ``/api/overview``'s session
count and project ranking and ``/api/totals`` must equal ``/api/report/session`` asked
with the same zone and days, from the database and from the transcripts (direct mode).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.dashboard.app import create_app
from context_cleaner.dashboard.database_source import DatabaseSource
from context_cleaner.dashboard.direct_source import DirectSource
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.testing.transcripts.lines import assistant, dumps, usage

pytestmark = pytest.mark.slow

ZONE = "Asia/Kathmandu"
OPUS, SONNET = "claude-opus-4-6", "claude-sonnet-4-5-20250929"

#: (project, session, UTC time, model, output tokens); Kathmandu's 2026-03-11 starts at
#: 2026-03-10T18:15:00Z.
RECORDS = [
    ("alpha", "edge-a", "2026-03-10T18:00:00.000Z", OPUS, 700),
    ("alpha", "edge-a", "2026-03-10T18:30:00.000Z", SONNET, 300),
    ("beta", "edge-b", "2026-03-10T18:14:59.999Z", OPUS, 410),
    ("beta", "edge-b", "2026-03-10T18:15:00.000Z", OPUS, 590),
    ("alpha", "early", "2026-03-10T10:00:00.000Z", SONNET, 1200),
    ("beta", "late", "2026-03-10T23:50:00.000Z", OPUS, 90),
    ("beta", "late", "2026-03-11T00:10:00.000Z", SONNET, 2000),
    ("gamma", "next", "2026-03-11T19:00:00.000Z", OPUS, 50),
    ("gamma", "next", "2026-03-09T18:20:00.000Z", SONNET, 5),
    # Monrovia was UTC-00:44:30 until 1972: one 15-minute bucket holds two of its days
    ("delta", "monrovia", "1971-06-01T00:40:00.000Z", OPUS, 30),
    ("delta", "monrovia", "1971-06-01T00:44:50.000Z", OPUS, 40),
]

#: date filters (start, end), each edge splitting some session in Kathmandu
WINDOWS = [
    (None, None),
    ("2026-03-10", "2026-03-10"),
    ("2026-03-11", "2026-03-11"),
    ("2026-03-11", None),
    (None, "2026-03-10"),
    ("2026-03-12", "2026-03-12"),
]


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def zoned_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The corpus's projects folder and a database migrated from it."""
    root = tmp_path_factory.mktemp("zoned")
    for i, (project, session, ts, model, out) in enumerate(RECORDS):
        folder = root / "projects" / f"-home-u-projects-{project}"
        folder.mkdir(parents=True, exist_ok=True)
        line = assistant(
            msg_id=f"msg_{i}",
            request_id=f"req_{i}",
            usage_obj=usage(10 + i, out, cache_5m=100, cache_read=1000 * (i + 1)),
            ts_ms=_ms(ts),
            model=model,
            session=session,
        )
        with (folder / f"{session}.jsonl").open("ab") as f:
            f.write(dumps(line) + b"\n")
    url = f"chdb://{root / 'db'}"
    migrator = HistoricalDataMigrator(
        bridge_service=EnhancedTokenDatabaseBridge(url), parallel_workers=1
    )
    result = migrator.run(str(root / "projects"))
    assert result.success, result.errors
    return root / "projects", url


@pytest.fixture(scope="module", params=["database", "direct"])
def zoned_client(request: pytest.FixtureRequest, zoned_corpus: Any) -> Iterator[TestClient]:
    projects, url = zoned_corpus
    if request.param == "direct":
        with TestClient(create_app(DirectSource([str(projects)], workers=1))) as c:
            yield c
        return
    source = DatabaseSource(url, keep_warm=0)
    with source.database.held(), TestClient(create_app(source)) as c:  # one engine opening
        yield c


def _get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    got = client.get(path, params={k: v for k, v in params.items() if v is not None})
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]


def _all_pages(client: TestClient, size: int, **params: Any) -> tuple[list[dict], set[int]]:
    """Every session, a page of ``size`` at a time, and the totals the pages reported."""
    items: list[dict] = []
    totals = set()
    while True:
        page = _get(client, "/api/sessions", limit=size, offset=len(items), **params)
        totals.add(page["total"])
        items += page["items"]
        if len(page["items"]) < size:
            return items, totals


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _row(item: dict[str, Any], key: str) -> tuple:
    return (
        item[key],
        item["project"],
        item["models"],
        _instant(item["first_timestamp"]),
        _instant(item["last_timestamp"]),
        *(item[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens")),
        item["total_tokens"],
        round(item["cost_usd"], 9),
    )


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [(ZONE, start, end) for start, end in WINDOWS]
    # the zones furthest from UTC (+14 h, -12 h): each splits a session at these edges
    + [(zone, "2026-03-10", "2026-03-11") for zone in ("Pacific/Kiritimati", "Etc/GMT+12")],
)
def test_sessions_counts_and_projects_agree_with_the_session_report(
    zoned_client: TestClient, zone: str, start: str | None, end: str | None
) -> None:
    report = _get(
        zoned_client, "/api/report/session", timezone=zone, since=start, until=end, breakdown=0
    )
    want = sorted(report["rows"], key=lambda r: (-r["total_tokens"], r["session_id"]))
    filters = {"timezone": zone, "start": start, "end": end}
    items, totals = _all_pages(zoned_client, 2, **filters)
    assert totals == {len(want)}
    assert [_row(i, "session") for i in items] == [_row(r, "session_id") for r in want]
    overview = _get(zoned_client, "/api/overview", **filters)
    assert overview["sessions"] == len(want)
    assert _get(zoned_client, "/api/totals", **filters)["sessions"] == len(want)
    for key in ("input_tokens", "output_tokens", "cache_read_tokens", "total_tokens"):
        assert overview["totals"][key] == report["totals"][key]
    assert overview["totals"]["cost_usd"] == pytest.approx(report["totals"]["cost_usd"], abs=1e-9)
    ranking: dict[str, int] = {}
    for r in report["rows"]:
        ranking[r["project"]] = ranking.get(r["project"], 0) + r["total_tokens"]
    assert [(p["project"], p["total_tokens"]) for p in overview["projects"]] == sorted(
        ranking.items(), key=lambda kv: (-kv[1], kv[0])
    )
    days = [(d["day"], d["total_tokens"]) for d in overview["days"]]
    daily = _get(zoned_client, "/api/report/daily", timezone=zone, since=start, until=end)
    assert days == [(r["date"], r["total_tokens"]) for r in daily["rows"]]
    # newest first, then oldest first: the same sessions, turned round
    by_last = _all_pages(zoned_client, 3, order="last_timestamp", **filters)[0]
    assert [i["session"] for i in by_last] == [r["session_id"] for r in report["rows"]][::-1]
    up = _all_pages(zoned_client, 4, order="last_timestamp", direction="asc", **filters)[0]
    assert up == by_last[::-1]


def test_the_zone_moves_sessions_across_the_edge(zoned_client: TestClient) -> None:
    """In UTC the same day holds other sessions and other sums (so the zone is used)."""
    day = {"start": "2026-03-11", "end": "2026-03-11"}
    kathmandu = _all_pages(zoned_client, 10, timezone=ZONE, **day)[0]
    utc = _all_pages(zoned_client, 10, **day)[0]
    assert {i["session"] for i in kathmandu} == {"edge-a", "edge-b", "late"}
    assert {i["session"] for i in utc} == {"late", "next"}
    edge_b = next(i for i in kathmandu if i["session"] == "edge-b")
    first, last = _instant(edge_b["first_timestamp"]), _instant(edge_b["last_timestamp"])
    assert first == last == datetime(2026, 3, 10, 18, 15, tzinfo=UTC)
    assert _get(zoned_client, "/api/sessions", timezone="UTC", **day)["total"] == 2
    compact = {"start": "20260311", "end": "20260311"}  # as the reports take days too
    assert _get(zoned_client, "/api/sessions", timezone=ZONE, **compact)["total"] == 3
    assert json.dumps(_get(zoned_client, "/api/overview", timezone=ZONE, **day)["filters"])
    bad = zoned_client.get("/api/sessions", params={"timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "timezone" in bad.json()["error"]


def test_a_bucket_split_by_an_old_offset_is_read_from_the_usage_rows(
    zoned_client: TestClient,
) -> None:
    """A zone whose offset is not a multiple of 15 minutes (before 1972) splits a rollup
    row across two days: the dashboard then reads what the report reads."""
    for day in ("1971-05-31", "1971-06-01"):
        filters = {"timezone": "Africa/Monrovia", "start": day, "end": day}
        report = _get(
            zoned_client, "/api/report/session", since=day, until=day, timezone="Africa/Monrovia"
        )
        items, totals = _all_pages(zoned_client, 5, **filters)
        # the database has a record on each day; the transcripts give each record its
        # 15-minute bucket's day (``periods.day_of``), both on the first
        assert totals == {len(report["rows"])}
        assert len(report["rows"]) == (1 if report["source"] == "database" else day < "1971-06")
        assert [_row(i, "session") for i in items] == [
            _row(r, "session_id") for r in report["rows"]
        ]

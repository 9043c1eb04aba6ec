"""The JSON API against a real chDB database holding the migrated fixtures.

Numbers must equal ccusage's for the same transcripts (15,537,336 tokens), per
day and per model; the ``direct`` source must give the same numbers as the
database for any filter; every bad filter is a 400 naming the parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.dashboard.app import create_app
from context_cleaner.dashboard.database_source import DatabaseSource
from context_cleaner.dashboard.direct_source import BANNER, DirectSource
from context_cleaner.dashboard.filters import Page, QueryFilters
from context_cleaner.errors import MigrationError

TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
)
_CCUSAGE = {
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "cache_creation_tokens": "cacheCreationTokens",
    "cache_read_tokens": "cacheReadTokens",
}


def tokens(d: dict[str, Any]) -> dict[str, int]:
    return {k: d[k] for k in TOKEN_KEYS}


@pytest.fixture
def db_source(migrated_url: str) -> DatabaseSource:
    return DatabaseSource(migrated_url, keep_warm=0)


@pytest.fixture
def client(db_source: DatabaseSource) -> Iterator[TestClient]:
    with TestClient(create_app(db_source)) as c:
        yield c


@pytest.fixture(scope="module")
def direct_source(projects_dir: Path) -> DirectSource:
    return DirectSource([str(projects_dir)], workers=1)


@pytest.fixture(scope="module")
def warm_db_source(migrated_url: str) -> Iterator[DatabaseSource]:
    """A database source whose engine stays open between examples (closed after the module)."""
    source = DatabaseSource(migrated_url, keep_warm=0)
    with source.database.held():
        yield source


def test_totals_equal_ccusage(client: TestClient, expected_totals: dict[str, int]) -> None:
    body = client.get("/api/totals").json()
    assert tokens(body["totals"]) == expected_totals
    assert body["totals"]["total_tokens"] == 15_537_336
    assert body["totals"]["cost_usd"] > 0
    assert body["sessions"] == 3


def test_days_equal_ccusage(client: TestClient, expected_daily: dict[str, Any]) -> None:
    items = client.get("/api/breakdown/day").json()["items"]
    want = [
        {"day": d["date"], "total_tokens": d["totalTokens"]}
        | {k: d[c] for k, c in _CCUSAGE.items()}
        for d in expected_daily["daily"]
    ]
    assert [{"day": i["day"], **tokens(i)} for i in items] == want


def test_models_equal_ccusage(client: TestClient, expected_daily: dict[str, Any]) -> None:
    want: dict[str, int] = {}
    for d in expected_daily["daily"]:
        for m in d["modelBreakdowns"]:
            total = sum(m[c] for c in _CCUSAGE.values())
            want[m["modelName"]] = want.get(m["modelName"], 0) + total
    items = client.get("/api/breakdown/model").json()["items"]
    assert {i["model"]: i["total_tokens"] for i in items} == want


def test_filters_change_the_numbers(client: TestClient, expected_daily: dict[str, Any]) -> None:
    day = expected_daily["daily"][1]
    body = client.get("/api/totals", params={"start": day["date"]}).json()
    assert body["totals"]["total_tokens"] == day["totalTokens"]
    assert body["filters"]["start"] == day["date"]
    sonnet = client.get("/api/totals", params={"model": "claude-sonnet-4-5-20250929"}).json()
    assert sonnet["totals"]["total_tokens"] == 42176 + 34159 + 15 + 3
    nothing = client.get("/api/totals", params={"project": "no-such-project"}).json()
    assert nothing["totals"]["total_tokens"] == 0 and nothing["sessions"] == 0


@pytest.mark.slow
def test_overview_adds_up(client: TestClient) -> None:
    body = client.get("/api/overview").json()
    total = body["totals"]["total_tokens"]
    for key in ("days", "models", "projects", "hosts"):
        assert sum(i["total_tokens"] for i in body[key]) == total, key
    assert body["options"]["models"] == sorted(i["model"] for i in body["models"])
    assert body["sessions"] == 3
    assert [i["day"] for i in body["days"]] == ["2026-02-10", "2026-02-11"]
    assert {i["model"]: i["sessions"] for i in body["models"]} == {
        "claude-opus-4-6": 3,
        "claude-sonnet-4-5-20250929": 1,
    }
    for dim in ("day", "model", "project", "host"):
        items = client.get(f"/api/breakdown/{dim}").json()["items"]
        assert [tokens(i) for i in items] == [tokens(i) for i in body[dim + "s"]], dim


@pytest.mark.slow
def test_sessions_search_and_paging(client: TestClient) -> None:
    first = client.get("/api/sessions", params={"limit": 1}).json()
    second = client.get("/api/sessions", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == second["total"] == 3
    assert first["items"][0]["session"] != second["items"][0]["session"]
    assert first["items"][0]["total_tokens"] >= second["items"][0]["total_tokens"]
    everything = client.get("/api/sessions", params={"limit": 10}).json()["items"]
    assert sum(s["total_tokens"] for s in everything) == 15_537_336
    found = client.get("/api/sessions", params={"search": "SHORT"}).json()
    assert found["total"] == 1 and found["items"][0]["session"] == "short"
    by_project = client.get("/api/sessions", params={"search": "spotter"}).json()
    assert by_project["total"] == 3
    latest = client.get("/api/sessions", params={"order": "last_timestamp"}).json()["items"]
    stamps = [s["last_timestamp"] for s in latest]
    assert stamps == sorted(stamps, reverse=True) and stamps[0].endswith("Z")


@pytest.mark.slow
def test_sessions_are_paged_sorted_and_searched_by_the_server(client: TestClient) -> None:
    everything = client.get("/api/sessions", params={"limit": 500}).json()
    assert everything["total"] == 3 and len(everything["items"]) == 3
    ids = [i["session"] for i in everything["items"]]
    pages = [
        client.get("/api/sessions", params={"limit": 2, "offset": o}).json() for o in (0, 2, 4)
    ]
    assert [[i["session"] for i in p["items"]] for p in pages] == [ids[:2], ids[2:], []]
    assert {p["total"] for p in pages} == {3}
    up = client.get("/api/sessions", params={"direction": "asc", "order": "cost_usd"}).json()
    costs = [i["cost_usd"] for i in up["items"]]
    assert costs == sorted(costs) and up["direction"] == "asc"
    down = client.get("/api/sessions", params={"order": "cost_usd"}).json()["items"]
    assert [i["session"] for i in down] == [i["session"] for i in up["items"]][::-1]
    assert all(i["models"] and i["models"] == sorted(i["models"]) for i in down)
    # searches are bound parameters: quotes and SQL are only text that matches nothing
    for needle in ("' OR 1=1 --", "x') OR ('1'='1", "%"):
        got = client.get("/api/sessions", params={"search": needle}).json()
        assert got["total"] == 0 and got["items"] == [], needle
    short = client.get("/api/sessions", params={"search": "hor", "limit": 1}).json()
    assert short["total"] == 1 and short["items"][0]["session"] == "short"


@pytest.mark.slow
@pytest.mark.parametrize(
    "filters",
    [{}, {"timezone": "Asia/Kathmandu", "start": "2026-02-12"}, {"timezone": "Pacific/Apia"}],
)
def test_every_page_of_sessions_adds_up_to_the_totals(
    db_source: DatabaseSource, client: TestClient, filters: dict[str, str]
) -> None:
    """The fixtures a page of one or two sessions at a time: the pages hold every session
    once, and their sums are the totals and the session count of the same filters."""
    with db_source.database.held():  # one opening of the engine for all the requests
        _pages_add_up(client, filters)


def _pages_add_up(client: TestClient, filters: dict[str, str]) -> None:
    want = client.get("/api/totals", params=filters).json()
    for size in (1, 2):
        seen: list[dict[str, Any]] = []
        while True:
            params = {**filters, "limit": size, "offset": len(seen), "order": "last_timestamp"}
            page = client.get("/api/sessions", params=params).json()
            assert page["total"] == want["sessions"]
            seen += page["items"]
            if len(page["items"]) < size:
                break
        assert len({i["session"] for i in seen}) == len(seen) == want["sessions"] > 0
        for key in TOKEN_KEYS:
            assert sum(i[key] for i in seen) == want["totals"][key], key
        assert sum(i["cost_usd"] for i in seen) == pytest.approx(want["totals"]["cost_usd"])
    if not filters:
        assert want["totals"]["total_tokens"] == 15_537_336


@pytest.mark.slow
def test_runs_validation_freshness_alerts(client: TestClient) -> None:
    health = client.get("/api/health").json()
    runs = client.get("/api/runs").json()["runs"]
    assert runs == health["runs"]
    migrate = [r for r in runs if r["run_kind"] == "migrate"]
    assert migrate and migrate[-1]["status"] == "completed"
    assert migrate[-1]["progress"] == 1.0
    assert migrate[-1]["validation_passed"] is True
    assert migrate[-1]["files_done"] == migrate[-1]["files_found"] == 5
    validation = client.get("/api/validation").json()["validation"]
    assert validation["passed"] is True
    freshness = client.get("/api/freshness").json()["freshness"]
    assert freshness["files_tracked"] == 5
    assert freshness["files_behind"] == 0 and freshness["files_missing"] == 0
    assert freshness["newest_record_at"].startswith("2026-02-11T21:46:25")
    assert freshness["newest_record_age_seconds"] > 0
    assert freshness["data_lag_seconds"] == 0  # every usage line on disk is in the database
    alerts = client.get("/api/alerts").json()["alerts"]
    assert isinstance(alerts, list)
    assert all(a["level"] in ("error", "warning", "info") for a in alerts)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/api/totals?start=2026-13-01", "start"),
        ("/api/totals?start=yesterday", "YYYY-MM-DD"),
        ("/api/overview?end=2026-02-10&start=2026-02-11", "after end"),
        ("/api/totals?modle=x", "modle"),
        ("/api/sessions?limit=0", "limit"),
        ("/api/sessions?limit=abc", "whole number"),
        ("/api/sessions?offset=-1", "offset"),
        ("/api/sessions?order=tokens;DROP", "order"),
        ("/api/sessions?timezone=Mars/Olympus", "timezone"),
        ("/api/overview?timezone=UTC%27)%20OR%201", "timezone"),
        ("/api/sessions?order=total_tokens%20DESC", "order"),
        ("/api/sessions?direction=desc;DROP%20TABLE%20x", "direction"),
        ("/api/sessions?direction=DESC", "asc or desc"),
        ("/api/sessions?limit=501", "1 to 500"),
        ("/api/sessions?offset=10000001", "offset"),
        ("/api/totals?model=a&model=b", "repeated"),
        ("/api/totals?project=" + "x" * 201, "at most 200"),
        ("/api/sessions?search=a%00b", "control characters"),
        ("/api/breakdown/user", "day, model, project, host, session"),
        ("/api/health?start=2026-01-01", "start"),
        ("/api/runs?limit=100000", "limit"),
    ],
)
def test_invalid_filters_are_400(client: TestClient, path: str, fragment: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


@pytest.mark.slow
def test_no_transcript_content_in_any_response(
    client: TestClient, projects_dir: Path, direct_source: DirectSource
) -> None:
    texts = []
    for path in sorted(projects_dir.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            message = json.loads(line).get("message")
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                texts += [b["text"] for b in content if b.get("type") == "text"]
            elif isinstance(content, str):
                texts.append(content)
    snippets = {t.strip()[:40] for t in texts if len(t.strip()) >= 40}
    assert len(snippets) > 5
    paths = ["/api/overview", "/api/sessions?limit=50", "/api/health", "/api/info"]
    with TestClient(create_app(direct_source)) as direct:
        bodies = [c.get(p).text for c in (client, direct) for p in paths]
    for body in bodies:
        assert not [s for s in snippets if s in body]


def test_database_reads_are_read_only(db_source: DatabaseSource) -> None:
    with pytest.raises(MigrationError), db_source.database.session() as c:
        c.command("CREATE TABLE dashboard_probe (a UInt8) ENGINE = Memory")


def test_missing_database_is_empty_and_not_created(tmp_path: Path) -> None:
    target = tmp_path / "nothing-here"
    with TestClient(create_app(DatabaseSource(f"chdb://{target}", keep_warm=0))) as c:
        assert c.get("/api/totals").json()["totals"]["total_tokens"] == 0
        assert c.get("/api/info").json()["initialised"] is False
        alerts = c.get("/api/alerts").json()["alerts"]
        assert "context-cleaner migrate" in alerts[0]["message"]
    assert not target.exists()


@pytest.mark.slow
def test_direct_source_shows_the_banner_and_the_same_numbers(
    client: TestClient, direct_source: DirectSource, expected_totals: dict[str, int]
) -> None:
    with TestClient(create_app(direct_source)) as direct:
        info = direct.get("/api/info").json()
        assert info["immediate_rollback"] is True and info["banner"] == BANNER
        assert tokens(direct.get("/api/totals").json()["totals"]) == expected_totals
        for path in ("/api/breakdown/day", "/api/breakdown/model", "/api/sessions?limit=5"):
            assert direct.get(path).json()["items"] == client.get(path).json()["items"], path
        got, want = direct.get("/api/overview").json(), client.get("/api/overview").json()
        for key in ("days", "models", "projects", "hosts"):
            assert [tokens(i) | {"sessions": i["sessions"]} for i in got[key]] == [
                tokens(i) | {"sessions": i["sessions"]} for i in want[key]
            ], key
        assert direct.get("/api/alerts").json()["alerts"][0]["message"] == BANNER


_DAYS = [None, date(2026, 2, 9), date(2026, 2, 10), date(2026, 2, 11), date(2026, 2, 12)]


@given(
    start=st.sampled_from(_DAYS),
    end=st.sampled_from(_DAYS),
    model=st.sampled_from([None, "claude-opus-4-6", "claude-sonnet-4-5-20250929", "x"]),
    search=st.sampled_from([None, "short", "258C", "spotter", "zzz", "_"]),
    order=st.sampled_from(["total_tokens", "cost_usd", "last_timestamp"]),
    descending=st.sampled_from([None, True, False]),
    limit=st.sampled_from([None, 1, 2]),
    offset=st.sampled_from([0, 1, 5]),
    timezone=st.sampled_from(["UTC", "Asia/Kathmandu", "America/New_York"]),
)
@pytest.mark.slow
def test_direct_and_database_agree_for_any_filter(
    warm_db_source: DatabaseSource,
    direct_source: DirectSource,
    start: date | None,
    end: date | None,
    model: str | None,
    search: str | None,
    order: str,
    descending: bool | None,
    limit: int | None,
    offset: int,
    timezone: str,
) -> None:
    f = QueryFilters(start=start, end=end, model=model, search=search, timezone=timezone)
    page = Page(limit, offset if limit else 0, order, descending)  # no limit: everything
    db = warm_db_source
    with db.unit():
        assert tokens(db.totals(f)) == tokens(direct_source.totals(f))
        assert db.count_sessions(f) == direct_source.count_sessions(f)
        for dim in ("day", "model", "project", "host", "session"):
            got = db.breakdown(dim, f, page)
            want = direct_source.breakdown(dim, f, page)
            assert [(i[dim], tokens(i), i["models"], i["project"]) for i in got] == [
                (i[dim], tokens(i), i["models"], i["project"]) for i in want
            ]
        got_all, want_all = db.overview(f, 100), direct_source.overview(f, 100)
        assert got_all["sessions"] == want_all["sessions"]
        for dim in ("day", "model", "project", "host"):
            assert [(i[dim], tokens(i), i["sessions"]) for i in got_all[dim + "s"]] == [
                (i[dim], tokens(i), i["sessions"]) for i in want_all[dim + "s"]
            ], dim

"""``/api/report/{kind}`` against the CLI's ``report KIND --json`` on the real fixtures.

Both sources: a real chDB database migrated from the fixtures, and the transcripts
themselves (direct mode). The endpoint's document must be the CLI's, key for key
(``stale`` and ``as_of`` aside), for every kind, in UTC and in other timezones, with
since/until and the other options; a bad parameter is a 400 naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import run_cli
from fastapi.testclient import TestClient

from context_cleaner.dashboard.app import create_app
from context_cleaner.dashboard.database_source import DatabaseSource
from context_cleaner.dashboard.direct_source import DirectSource

KINDS = ("daily", "weekly", "monthly", "session", "blocks")
OPUS = "claude-opus-4-6"

#: query string of the API -> the same as CLI flags
VARIANTS: dict[str, dict[str, str]] = {
    "plain": {},
    "new-york-range": {
        "timezone": "America/New_York",
        "since": "20260210",
        "until": "2026-02-11",
        "breakdown": "1",
        "start_of_week": "monday",
    },
    "kolkata-last": {
        "timezone": "Asia/Kolkata",
        "since": "2026-02-11",
        "order": "desc",
        "last": "1",
        "model": OPUS,
    },
    "berlin-all": {"timezone": "Europe/Berlin", "breakdown": "yes"},
    "tokyo-project": {
        "timezone": "Asia/Tokyo",
        "until": "2026-02-12",
        "project": "-home-USER-projects-spotter",
        "breakdown": "true",
    },
}


def cli_flags(params: dict[str, str]) -> list[str]:
    flags = []
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if name == "breakdown":
            flags.append(flag)
        else:
            flags.append(f"{flag}={value}")  # a project folder starts with '-'
    return flags


def answer(client: TestClient, kind: str, params: dict[str, str]) -> dict[str, Any]:
    got = client.get(f"/api/report/{kind}", params=params)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body.pop("stale") is False
    assert body.pop("as_of")
    return body


@pytest.fixture(scope="module")
def database_client(migrated_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(DatabaseSource(migrated_url, keep_warm=0))) as c:
        yield c


@pytest.fixture(scope="module")
def direct_client(projects_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(DirectSource([str(projects_dir)], workers=1))) as c:
        yield c


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_database_report_equals_the_cli(
    database_client: TestClient, migrated_url: str, kind: str, variant: str
) -> None:
    params = dict(VARIANTS[variant])
    if kind == "blocks" and variant == "kolkata-last":
        params["token_limit"] = "max"
    done = run_cli("report", kind, "--clickhouse-url", migrated_url, "--json", *cli_flags(params))
    assert done.returncode == 0, done.stderr
    expected = json.loads(done.stdout)
    assert expected["rows"], "every variant selects some usage"
    assert answer(database_client, kind, params) == expected


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_direct_report_equals_the_cli_from_transcripts(
    direct_client: TestClient, projects_dir: Path, kind: str, variant: str
) -> None:
    params = VARIANTS[variant]
    done = run_cli(
        "report", kind, "--source", "transcripts", "--source-dir", str(projects_dir), "--json",
        *cli_flags(params),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert answer(direct_client, kind, params) == json.loads(done.stdout)


@pytest.mark.slow
def test_every_report_adds_up_to_the_dashboard_totals(database_client: TestClient) -> None:
    totals = database_client.get("/api/totals").json()["totals"]
    for kind in KINDS:
        got = answer(database_client, kind, {"timezone": "Pacific/Chatham"})["totals"]
        assert got["total_tokens"] == totals["total_tokens"] == 15_537_336, kind


def test_an_empty_database_is_an_empty_report(tmp_path: Path) -> None:
    source = DatabaseSource(f"chdb://{tmp_path / 'none'}", keep_warm=0)
    with TestClient(create_app(source)) as client:
        body = answer(client, "daily", {})
    assert body["rows"] == [] and body["totals"]["total_tokens"] == 0
    assert body["source"] == "database"
    assert not (tmp_path / "none").exists()


BAD = [
    ("weekly", {"since": "2026-13-01"}, "since"),
    ("daily", {"until": "yesterday"}, "until"),
    ("daily", {"timezone": "Mars/Olympus"}, "timezone"),
    ("weekly", {"start_of_week": "someday"}, "start_of_week"),
    ("daily", {"last": "0"}, "last"),
    ("daily", {"last": "many"}, "last"),
    ("blocks", {"token_limit": "-5"}, "token_limit"),
    ("daily", {"token_limit": "1000"}, "token_limit"),
    ("daily", {"order": "newest"}, "order"),
    ("daily", {"breakdown": "perhaps"}, "breakdown"),
    ("daily", {"since": "2026-02-12", "until": "2026-02-10"}, "since"),
    ("daily", {"project": "x" * 500}, "project"),
    ("daily", {"model": "a\x01b"}, "model"),
    ("daily", {"modle": OPUS}, "modle"),
    ("hourly", {}, "hourly"),
]


@pytest.mark.parametrize(("kind", "params", "named"), BAD)
def test_a_bad_parameter_is_a_400_naming_it(
    database_client: TestClient, kind: str, params: dict[str, str], named: str
) -> None:
    got = database_client.get(f"/api/report/{kind}", params=params)
    assert got.status_code == 400, got.text
    assert named in got.json()["error"]


def test_a_repeated_parameter_is_a_400(database_client: TestClient) -> None:
    got = database_client.get("/api/report/daily?since=2026-02-10&since=2026-02-11")
    assert got.status_code == 400 and "since" in got.json()["error"]


def test_equal_questions_share_one_answer(database_client: TestClient) -> None:
    first = database_client.get("/api/report/daily", params={"since": "20260211"}).json()
    second = database_client.get("/api/report/daily", params={"since": "2026-02-11"}).json()
    assert first["rows"] == second["rows"] and len(first["rows"]) == 1


def test_the_readme_report_examples_answer(database_client: TestClient) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    examples = re.findall(r"curl '(?:http://127\.0\.0\.1:8110)(/api/report/[^']+)'", readme)
    assert len(examples) >= 2
    for path in examples:
        got = database_client.get(path)
        assert got.status_code == 200, (path, got.text)
        assert got.json()["rows"], path

"""Reports from the database equal reports from the transcripts, and add up across kinds.

Real embedded ClickHouse (chDB) in a temporary folder, filled by the real migration.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.periods import REPORTS, ReportQuery
from context_cleaner.analysis.report_rows import build_report
from context_cleaner.analysis.transcript_report import report_from_transcripts
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.reports import database_report, report_cells
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.testing.transcripts.lines import Corpus
from context_cleaner.testing.transcripts.strategies import corpora

from .helpers import cli_env, run_cli, sums, tokens

pytestmark = pytest.mark.slow

NOW_MS = 1_770_800_000_000  # 2026-02-11T09:53:20Z: inside the fixtures' and corpora's days
HOST = "host-a"


def migrate(source: Path, url: str, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTEXT_CLEANER_HOST", host)
    result = HistoricalDataMigrator(url, parallel_workers=1).run(str(source))
    assert result is not None


def both(source: Path, url: str, query: ReportQuery) -> tuple[dict[str, Any], dict[str, Any]]:
    mine = report_from_transcripts(query, [source], host=HOST, workers=1, now_ms=NOW_MS)
    stored = database_report(Database(url), query, now_ms=NOW_MS)
    with Database(url).session() as client:  # the usage rows, never the rollup
        rows = build_report(
            query, report_cells(client, query, rollup=False), source="database", now_ms=NOW_MS
        )
    assert rows == stored
    return mine, stored


def same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["source"] == "transcripts" and b["source"] == "database"
    assert {**a, "source": "-"} == {**b, "source": "-"}


QUERIES = [
    ReportQuery(kind=k, breakdown=True, timezone=tz, token_limit=lim, start_of_week=sow)
    for k in REPORTS
    for tz, lim, sow in (("UTC", None, 6), ("Asia/Kolkata", "max", 0))
]


def test_database_and_transcripts_give_the_same_json_on_the_fixtures(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"chdb://{tmp_path}/db"
    migrate(fixtures_dir, url, HOST, monkeypatch)
    for query in QUERIES:
        mine, stored = both(fixtures_dir, url, query)
        same(mine, stored)
        assert stored["totals"]["total_tokens"] == 15_537_336
    one = ReportQuery(kind="daily", since=date(2026, 2, 11), model="claude-opus-4-6")
    mine, stored = both(fixtures_dir, url, one)
    same(mine, stored)
    assert [r["date"] for r in stored["rows"]] == ["2026-02-11"]


def test_a_missing_database_is_an_error_naming_the_next_step(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="context-cleaner migrate"):
        database_report(Database(f"chdb://{tmp_path}/none"), ReportQuery())
    assert not (tmp_path / "none").exists()
    out = run_cli("report", "daily", "--clickhouse-url", f"chdb://{tmp_path}/none")
    assert out.returncode == 1 and "context-cleaner migrate" in out.stderr


filters = st.fixed_dictionaries(
    {
        "timezone": st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Kathmandu"]),
        "since": st.sampled_from([None, date(2026, 2, 11)]),
        "until": st.sampled_from([None, date(2026, 2, 11), date(2026, 2, 12)]),
        "project": st.sampled_from([None, "-home-u-alpha", "-home-u-beta"]),
        "model": st.sampled_from([None, "claude-opus-4-6", "<synthetic>"]),
        "start_of_week": st.integers(0, 6),
        "order": st.sampled_from(["asc", "desc"]),
    }
)


def check_reports_add_up(reports: dict[str, dict[str, Any]]) -> None:
    totals = {tokens(r["totals"]) for r in reports.values()}
    assert len(totals) == 1, {k: tokens(r["totals"]) for k, r in reports.items()}
    costs = {k: r["totals"]["cost_usd"] for k, r in reports.items()}
    assert max(costs.values()) - min(costs.values()) < 1e-6, costs
    for r in reports.values():
        assert sums(r["rows"]) == tokens(r["totals"])
        for row in r["rows"]:
            if "breakdown" in row:
                assert sums(row["breakdown"]) == tokens(row)


@given(corpus=corpora(max_units=20), f=filters)
def test_all_five_reports_add_up_to_the_same_totals(corpus: Corpus, f: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="cc-report-") as name:
        corpus.write(Path(name))
        reports = {
            kind: report_from_transcripts(
                ReportQuery(kind=kind, breakdown=True, **f), [name], host=HOST, workers=1
            )
            for kind in REPORTS
        }
    check_reports_add_up(reports)


@settings(
    max_examples=8,
    phases=[Phase.explicit, Phase.generate],  # each example migrates into a new database
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(corpus=corpora(max_units=20), f=filters)
def test_database_and_transcripts_agree_on_any_corpus_and_filter(
    corpus: Corpus, f: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory(prefix="cc-report-db-") as name:
        root = Path(name) / "projects"
        corpus.write(root)
        root.mkdir(exist_ok=True)
        url = f"chdb://{name}/db"
        migrate(root, url, HOST, monkeypatch)
        stored = {}
        for kind in REPORTS:
            query = ReportQuery(kind=kind, breakdown=True, **f)
            mine, stored[kind] = both(root, url, query)
            same(mine, stored[kind])
    check_reports_add_up(stored)


def test_two_hosts_in_one_database_never_double_count(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host A has the fixtures; host B has a copy of one session (a transcript copied between
    machines) and a session of its own. Every response counts once; --host reports add up."""
    url = f"chdb://{tmp_path}/db"
    session = "258c7280-ae70-4798-800f-63464d01a85d"
    b_root = tmp_path / "b" / "projects"
    project = next(fixtures_dir.rglob(f"{session}.jsonl")).parent
    copied = b_root / "-home-bob-spotter"
    copied.mkdir(parents=True)
    (copied / f"{session}.jsonl").write_bytes((project / f"{session}.jsonl").read_bytes())
    own = b_root / "-home-bob-other"
    own.mkdir()
    own_lines = [
        line
        for line in (project / f"{session}.jsonl").read_text().splitlines()
        if '"usage"' in line
    ][:3]
    (own / "99999999-bbbb.jsonl").write_text(
        "\n".join(line.replace("msg_", "msg_bob_") for line in own_lines) + "\n"
    )
    migrate(fixtures_dir, url, "host-a", monkeypatch)
    bob_own = report_from_transcripts(
        ReportQuery(project="-home-bob-other"), [b_root], host="host-b", workers=1
    )
    migrate(b_root, url, "host-b", monkeypatch)

    a_only = report_from_transcripts(ReportQuery(), [fixtures_dir], host="host-a", workers=1)
    whole = database_report(Database(url), ReportQuery())
    by_host = {h: database_report(Database(url), ReportQuery(host=h)) for h in ("host-a", "host-b")}
    bob_tokens = bob_own["totals"]["total_tokens"]  # the copied session counts once
    assert bob_tokens > 0
    assert whole["totals"]["total_tokens"] == a_only["totals"]["total_tokens"] + bob_tokens
    assert (
        sum(r["totals"]["total_tokens"] for r in by_host.values())
        == whole["totals"]["total_tokens"]
    )
    assert all(r["totals"]["total_tokens"] > 0 for r in by_host.values())
    for kind in REPORTS:
        per_kind = database_report(Database(url), ReportQuery(kind=kind))
        assert tokens(per_kind["totals"]) == tokens(whole["totals"])
    out = run_cli(
        "report", "daily", "--host", "host-b", "--json", "--clickhouse-url", url, env=cli_env()
    )
    assert out.returncode == 0, out.stderr

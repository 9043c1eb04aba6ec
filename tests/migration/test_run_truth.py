"""Runs tell the truth: crashed runs, failed runs, net numbers, skipped lines, the error alert.

Real processes (SIGKILL), the real embedded engine, real files:

- a migration killed with SIGKILL is shown ``crashed`` by ``status`` with nothing else
  done (its process is gone), with the files, records and tokens it committed (its row
  was written only at its start); the next migration says it resumes its work and closes
  it, writing those counts into its row (the two runs add up to the corpus);
  ``status`` of the crashed run then names the later run instead of advising a resume;
- ``tokens_added`` / ``records_inserted`` are the database's net change: a sync of lines
  repeating stored responses adds 0, a first sync into an empty database adds exactly
  what the database then holds, and two concurrent migrations add up to the total;
- the error-rate alert needs a sample: a first batch of 4 lines with one bad line is no
  alert; a run with half its lines malformed fires it, exits 3 and lists the skipped lines.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge import Database
from context_cleaner.bridge.token_bridge import query_rows
from context_cleaner.dashboard import health
from context_cleaner.migration.alerts import AlertEvaluator, RunSample, alert_rules
from context_cleaner.migration.status import get_migration_status
from context_cleaner.testing.transcripts import generate_corpus

from .helpers import analyse, bridge, cli_command, cli_env, run_cli, run_json
from .test_disk_full import small_volume  # noqa: F401 (a fixture)
from .test_kill_resume import REPO, Watched, migrate_args

pytestmark = pytest.mark.slow

# -- transcripts ---------------------------------------------------------------------------


def assistant_line(message_id: str, output_tokens: int, *, session: str = "s1") -> bytes:
    doc = {
        "type": "assistant",
        "sessionId": session,
        "isSidechain": False,
        "timestamp": "2026-01-05T10:00:00.000Z",
        "requestId": f"req_{message_id}",
        "message": {
            "id": f"msg_{message_id}",
            "model": "claude-sonnet-4-5-20250929",
            "role": "assistant",
            "content": [{"type": "text", "text": "x" * 40}],
            "usage": {
                "input_tokens": 10,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 1000,
            },
        },
    }
    return json.dumps(doc).encode() + b"\n"


def malformed_line(n: int) -> bytes:
    """A line that could carry usage but is cut short (``malformed_json``)."""
    return b'{"type":"assistant","message":{"id":"msg_bad%d","usage":{"input_tokens":1,\n' % n


def project(root: Path) -> Path:
    folder = root / "projects" / "-home-u-proj"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def database_totals(url: str) -> dict[str, Any]:
    return bridge(url).get_migration_totals()


def held_by(url: str, run_id: str) -> tuple[int, int, int]:
    """Files completed, counted records and their tokens that the database holds under
    ``run_id`` (its tracking rows; its usage rows the counted view keeps)."""
    with Database(url).session() as client:
        files = query_rows(
            client,
            "SELECT uniqExact(source_root, file_path) FROM migration_file_tracking "
            "WHERE migration_id = {m:String} AND processing_status = 'completed'",
            {"m": run_id},
        )[0][0]
        records, tokens = query_rows(
            client,
            "SELECT count(), sum(total_tokens) FROM counted_token_details "
            "WHERE migration_id = {m:String}",
            {"m": run_id},
        )[0]
    return int(files), int(records), int(tokens)


def counts_of(run: dict[str, Any]) -> tuple[int, int, int]:
    """A runs-list row's files, records and tokens (``migration_runs``, ``status --json``)."""
    return run["files_processed"], run["records_inserted"], run["total_tokens"]


# -- crashed runs --------------------------------------------------------------------------


def test_process_state_tells_gone_reused_alive_and_other_hosts() -> None:
    from context_cleaner.bridge.runs import ALIVE, GONE, UNKNOWN, process_state, this_process

    me = this_process()
    assert process_state(me, "h", "h") == ALIVE
    assert process_state({**me, "started": me["started"] - 3600}, "h", "h") == GONE  # pid reused
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert process_state({"pid": dead.pid, "started": me["started"]}, "h", "h") == GONE
    assert process_state(me, "other-host", "h") == UNKNOWN
    assert process_state(None, "h", "h") == UNKNOWN


def test_a_killed_migration_is_crashed_and_the_next_run_closes_it(
    tmp_path: Path, corpus_6mb: tuple[Path, dict[str, Any]]
) -> None:
    source, manifest = corpus_6mb
    url = f"chdb://{tmp_path}/db"
    # No checkpoints (the command line's default): the row is written only at the start.
    args = migrate_args(source)
    at = args.index("--checkpoint-interval") + 1
    args = (*args[:at], "0", *args[at + 1 :])
    run = Watched(args, url)
    try:
        assert run.wait_for_progress(2), run.seen[-2000:]
        assert run.kill()
    finally:
        run.kill()

    # Nothing else happened: status alone finds the run's process gone.
    status = run_json("status", url=url)
    crashed = status["migration"]
    assert crashed["status"] == "crashed" and crashed["phase"] == "crashed", crashed
    assert f"pid {run.proc.pid} " in crashed["reason"]
    assert "resumes this run's work" in crashed["advice"] and crashed["finished_by"] is None
    assert not crashed["alerts"]  # no stall advice for a run known to be dead
    assert status["runs"][0]["status"] == "crashed"  # the runs list (and the dashboard's)
    crashed_id = crashed["migration_id"]
    # It shows what it committed, as the database holds it under its id.
    held = held_by(url, crashed_id)
    assert held[0] >= 2 and held[1] > 0, held
    assert counts_of(status["runs"][0]) == held
    shown = (crashed["files_completed"], crashed["records_inserted"], crashed["tokens_processed"])
    assert shown == held and crashed["bytes_completed"] > 0
    in_process = get_migration_status(bridge(url), crashed_id)
    assert in_process is not None and in_process.phase == "crashed"
    assert in_process.records_inserted == held[1]
    runs = bridge(url).migration_runs()  # what the dashboard's runs panel and alerts read
    assert health.present_run(runs[0])["status"] == "crashed"
    said = [a["message"] for a in health.alerts(runs, {}, None) if crashed_id in a["message"]]
    assert said and "crashed" in said[0] and "Run the command again" in said[0]

    final = run_json(*args, url=url)
    assert final["success"] and final["validation_passed"]
    assert [c["migration_id"] for c in final["closed_runs"]] == [crashed_id]
    assert final["closed_runs"][0]["resumed"] is True
    assert counts_of(final["closed_runs"][0]["committed"]) == held
    assert any(
        crashed_id in w
        and f"it had committed {held[0]:,} file(s), {held[1]:,} records" in w
        and f"Run {final['migration_id']} resumes its work" in w
        for w in final["warnings"]
    ), final["warnings"]
    assert database_totals(url)["total_tokens"] == manifest["totals"]["total_tokens"]

    closed = run_json("status", "--migration-id", crashed_id, url=url)["migration"]
    assert closed["status"] == "crashed" and closed["finished_at"] is not None
    assert closed["closed_by"] == final["migration_id"]
    # Never "run again" for work a later run finished.
    assert closed["finished_by"] == final["migration_id"]
    assert "Nothing to do" in closed["advice"] and "again" not in closed["advice"]
    rows = {r["migration_id"]: r for r in bridge(url).migration_runs()}
    assert rows[crashed_id]["status"] == "crashed" and rows[crashed_id]["finished_at"]
    assert rows[final["migration_id"]]["status"] == "completed"
    # Its row now holds what it had committed when it was closed (nothing ran in between),
    # and the two runs add up to the corpus.
    assert counts_of(rows[crashed_id]) == held
    assert (closed["files_completed"], closed["records_inserted"]) == held[:2]
    both = [counts_of(rows[crashed_id]), counts_of(rows[final["migration_id"]])]
    assert [sum(c) for c in zip(*both, strict=True)] == [
        manifest["files"],
        manifest["kept_records"],
        manifest["totals"]["total_tokens"],
    ]
    said = [
        a["message"]
        for a in health.alerts(bridge(url).migration_runs(), {}, None)
        if crashed_id in a["message"]
    ]
    assert said and f"run {final['migration_id']} finished its work" in said[0]
    assert "Run the command again" not in said[0]
    text = run_cli("status", "--migration-id", crashed_id, url=url).stdout
    assert "crashed" in text and "Nothing to do" in text and "run again" not in text.lower()


# -- net numbers ---------------------------------------------------------------------------


def test_a_sync_of_repeated_responses_adds_nothing(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/db"
    folder = project(tmp_path)
    lines = [assistant_line(f"m{i}", 1000 + i) for i in range(20)]
    (folder / "s1.jsonl").write_bytes(b"".join(lines))
    first = run_json("sync", "--source-dir", str(tmp_path / "projects"), url=url)
    assert first["tokens_added"] == database_totals(url)["total_tokens"] > 0
    before = database_totals(url)

    # 20 lines repeating stored responses (another file of the session), and one new one.
    (folder / "s1-copy.jsonl").write_bytes(b"".join(lines))
    again = run_json("sync", "--source-dir", str(tmp_path / "projects"), url=url)
    assert again["tokens_added"] == 0 and again["records_inserted"] == 0
    assert database_totals(url) == before
    with (folder / "s1-copy.jsonl").open("ab") as out:
        out.write(assistant_line("new", 7))
    more = run_json("sync", "--source-dir", str(tmp_path / "projects"), url=url)
    after = database_totals(url)
    assert more["tokens_added"] == after["total_tokens"] - before["total_tokens"] == 1017
    assert more["records_inserted"] == after["records"] - before["records"] == 1


def test_a_first_sync_into_an_empty_database_adds_what_it_holds(
    tmp_path: Path, corpus_small: tuple[Path, dict[str, Any]]
) -> None:
    source, _manifest = corpus_small  # resumed sessions: copies of responses in other files
    url = f"chdb://{tmp_path}/db"
    done = run_json(
        "sync", "--source-dir", str(source), "--batch-size", "1", "--commit-every", "0", url=url
    )
    totals = database_totals(url)
    assert done["tokens_added"] == totals["total_tokens"]
    assert done["records_inserted"] == totals["records"]
    with Database(url).session() as client:  # the records it read held more (the copies)
        read = query_rows(
            client,
            "SELECT sum(JSONExtractInt(details, 'tokens_read')) FROM migration_execution_log "
            "WHERE migration_id = {m:String}",
            {"m": done["migration_id"]},
        )[0][0]
    assert read > totals["total_tokens"]


def test_concurrent_migrations_add_up_to_the_database_total(
    tmp_path: Path, corpus_6mb: tuple[Path, dict[str, Any]]
) -> None:
    source, manifest = corpus_6mb
    url = f"chdb://{tmp_path}/db"
    args = (
        "migrate",
        "--source-dir",
        str(source),
        "--batch-size",
        "2",
        "--commit-every",
        "0",
        "--parallel-workers",
        "1",
        "--no-validate",
        "--json",
    )
    procs = [
        subprocess.Popen(
            cli_command(*args),
            env=cli_env(url),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out))
    totals = database_totals(url)
    assert totals["total_tokens"] == manifest["totals"]["total_tokens"]
    # Both committed work (they ran at the same time), and neither counted the other's.
    assert all(r["files_processed"] > 0 for r in results), [r["files_processed"] for r in results]
    assert sum(r["total_tokens_migrated"] for r in results) == totals["total_tokens"]
    assert sum(r["total_records_inserted"] for r in results) == totals["records"]
    rows = {r["migration_id"]: r for r in bridge(url).migration_runs()}
    assert sum(rows[r["migration_id"]]["total_tokens"] for r in results) == totals["total_tokens"]


# -- skipped lines and the error-rate alert -------------------------------------------------


def test_the_error_rate_needs_a_sample() -> None:
    evaluator = AlertEvaluator("m", "sync", alert_rules(environ={}))
    four = RunSample(1.0, 0.1, lines_read=4, skipped_lines=1, files_failed=0, tokens=1,
                     memory_usage_ratio=0.1, seconds_without_progress=0.0)  # fmt: skip
    assert evaluator.values(four)["high_error_rate"] is None
    assert evaluator.observe(four) == []
    big = RunSample(2.0, 1.1, lines_read=200, skipped_lines=20, files_failed=0, tokens=1,
                    memory_usage_ratio=0.1, seconds_without_progress=0.0)  # fmt: skip
    assert [e.alert for e in evaluator.observe(big)] == ["high_error_rate"]


def test_one_bad_line_in_a_first_batch_of_four_is_no_alert(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/db"
    folder = project(tmp_path)
    (folder / "s1.jsonl").write_bytes(
        assistant_line("a", 5) + assistant_line("b", 6) + malformed_line(1) + assistant_line("c", 7)
    )
    out = run_cli("sync", "--source-dir", str(tmp_path / "projects"), "--json", url=url)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["skipped_lines"] == 1 and result["alerts_fired"] == []
    assert result["skipped_lines_by_reason"] == {"malformed_json": 1}
    assert bridge(url).migration_alerts() == []


@pytest.fixture
def half_malformed(tmp_path: Path) -> Path:
    """240 lines: 120 responses and 120 malformed lines that could have carried usage."""
    folder = project(tmp_path / "src")
    body = b"".join(assistant_line(f"g{i}", 10 + i) + malformed_line(i) for i in range(120))
    (folder / "s1.jsonl").write_bytes(body)
    return tmp_path / "src" / "projects"


@pytest.mark.parametrize("command", ["sync", "migrate"])
def test_half_the_lines_malformed_fires_the_alert_exits_3_and_lists_them(
    tmp_path: Path, half_malformed: Path, command: str
) -> None:
    url = f"chdb://{tmp_path}/db"
    out = run_cli(command, "--source-dir", str(half_malformed), "--json", url=url)
    assert out.returncode == 3, (out.stdout[-2000:], out.stderr[-2000:])
    result = json.loads(out.stdout)
    assert result["success"] and "high_error_rate" in result["alerts_fired"]
    assert result["skipped_lines"] == 120
    assert result["skipped_lines_by_reason"] == {"malformed_json": 120}
    assert len(result["skipped_line_examples"]) == 20
    assert "s1.jsonl:2 (byte " in result["skipped_line_examples"][0]
    assert "120 line(s) could not be counted (malformed_json 120)" in result["warnings"][0]
    # The good half is in the database all the same.
    assert database_totals(url)["total_tokens"] == analyse(half_malformed).totals.total_tokens

    shown = run_json("status", url=url)["migration"]
    assert shown["migration_id"] == result["migration_id"] and shown["lines_skipped"] == 120
    assert "high_error_rate" in {a["alert"] for a in shown["alert_history"]}


def test_the_human_summary_lists_the_skipped_lines(tmp_path: Path, half_malformed: Path) -> None:
    url = f"chdb://{tmp_path}/db"
    out = run_cli("sync", "--source-dir", str(half_malformed), url=url)
    assert out.returncode == 3, out.stderr
    text = " ".join(out.stdout.split())
    assert "120 line(s) skipped" in text
    assert "120 line(s) could not be counted (malformed_json 120)" in text
    assert "skipped: " in text and "s1.jsonl:2 (byte" in text
    assert "alerts fired: high_error_rate" in text


def test_exit_codes_are_documented() -> None:
    from context_cleaner.cli import build_parser
    from context_cleaner.cli.common import EXIT_ALERTED

    assert EXIT_ALERTED == 3
    assert "3 migrate/sync" in (build_parser().epilog or "")
    docs = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for code in ("| `0` |", "| `1` |", "| `2` |", "| `3` |", "| `130` |"):
        assert code in docs, code
    assert os.path.exists(REPO / "docs" / "operations.md")


# -- a failed run --------------------------------------------------------------------------


def test_a_run_failing_on_a_full_disk_ends_failed_with_its_reason(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    volume: Path = request.getfixturevalue("small_volume")  # a 5 MB tmpfs (root only)
    generate_corpus(tmp_path / "corpus", 100_000_000, seed=5)
    source = str(tmp_path / "corpus" / "projects")
    url = f"chdb://{volume}/db"
    full = run_cli(
        "migrate", "--source-dir", source, "--batch-size", "20", "--commit-every", "0",
        "--no-validate", url=url,
    )  # fmt: skip
    assert full.returncode == 1 and "not enough space" in full.stderr.lower()

    shown = run_json("status", url=url)
    failed = shown["migration"]
    assert failed["status"] == "failed" and failed["phase"] == "failed", failed
    assert "not enough space" in failed["reason"].lower()
    assert "resumes this run's work" in failed["advice"]
    assert shown["runs"][0]["status"] == "failed"
    text = " ".join(run_cli("status", url=url).stdout.split())
    assert "Failed: ClickHouse failed while" in text and "not enough space" in text.lower()

    subprocess.run(["mount", "-o", "remount,size=400m", str(volume)], check=True)
    done = run_json("migrate", "--source-dir", source, "--no-validate", url=url)
    after = run_json("status", "--migration-id", failed["migration_id"], url=url)["migration"]
    assert after["status"] == "failed" and "not enough space" in after["reason"].lower()
    assert after["finished_by"] == done["migration_id"] and "Nothing to do" in after["advice"]
    assert all(c["status"] == "failed" for c in done["closed_runs"])


# -- a run stopped once its row is written -------------------------------------------------


def _interrupt(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["before-reading", "in-validation"])
def test_a_run_stopped_after_its_row_is_written_is_recorded_failed(
    tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C (or any error) once the run's row says ``running``, before its reading starts
    or while it validates: the row says ``failed``, not a run still going or crashed, and
    the next migration has nothing to close and ends at the fixtures' totals."""
    from context_cleaner.migration import migrate
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

    url = f"chdb://{tmp_path / 'db'}"
    if where == "before-reading":  # the ledger is made right before the first batch
        monkeypatch.setattr(migrate, "Ledger", _interrupt)
    else:
        monkeypatch.setattr(migrate.MigrationRun, "_validate", _interrupt)
    migrator = HistoricalDataMigrator(bridge_service=bridge(url), parallel_workers=2)
    with pytest.raises(KeyboardInterrupt):
        migrator.run(str(fixtures_dir))
    monkeypatch.undo()
    [stopped] = bridge(url).migration_runs()
    assert stopped["status"] == "failed" and stopped["finished_at"], stopped
    assert run_json("status", url=url)["runs"][0]["status"] == "failed"
    again = run_json("migrate", "--source-dir", str(fixtures_dir), url=url)
    assert again["validation_passed"] and again["database_totals"]["total_tokens"] == 15_537_336
    rows = {r["migration_id"]: r["status"] for r in bridge(url).migration_runs()}
    assert rows == {stopped["migration_id"]: "failed", again["migration_id"]: "completed"}

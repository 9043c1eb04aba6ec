"""One way to record a run: migrate, sync, validate and rollback each leave one run row.

Against the real embedded engine: every row is written by the one run writer
(``run_record.write_run``), its id comes from the one id maker (``run_record.new_run_id``),
and the result the run returns names that row (``RunResult.run_id``), which the runs
views (``migration_runs``, what ``status`` and the dashboard read) list.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.token_bridge import BridgeWriter
from context_cleaner.migration import run_record
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.models import RunResult

from .test_run_truth import assistant_line, project

KINDS = ("migrate", "sync", "validate", "rollback")


def id_pattern(kind: str) -> re.Pattern[str]:
    """The shape of :func:`run_record.new_run_id`'s ids for ``kind`` (its first four letters)."""
    sample = run_record.new_run_id(kind[:4])
    shape = re.sub(r"\d", r"\\d", re.escape(sample[: -6 - 1]))
    return re.compile(rf"^{shape}-[0-9a-f]{{6}}$")


@pytest.fixture
def watched_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], str]]:
    """Every run row saved, with the function that asked the writer to save it."""
    saved: list[tuple[dict[str, Any], str]] = []
    save = BridgeWriter.save_run

    def spy(self: BridgeWriter, run: dict[str, Any]) -> None:
        caller = inspect.stack()[1]
        saved.append((dict(run), f"{Path(caller.filename).name}:{caller.function}"))
        save(self, run)

    monkeypatch.setattr(BridgeWriter, "save_run", spy)
    return saved


def transcripts(root: Path, lines: int, start: int = 0) -> Path:
    with (project(root) / "s1.jsonl").open("ab") as f:
        for n in range(start, start + lines):
            f.write(assistant_line(f"m{n}", 10 + n))
    return root / "projects"


def run_kind(kind: str, tmp_path: Path) -> tuple[HistoricalDataMigrator, Callable[[], RunResult]]:
    """A database as the run of ``kind`` finds it, and that run (not run yet)."""
    source = transcripts(tmp_path, 5)
    migrator = HistoricalDataMigrator(f"chdb://{tmp_path / 'db'}", parallel_workers=1)
    if kind == "migrate":
        return migrator, lambda: migrator.run(str(source))
    first = migrator.run(str(source))
    assert first.success
    if kind == "sync":
        transcripts(tmp_path, 3, start=5)
        return migrator, lambda: migrator.sync(str(source))
    if kind == "validate":
        return migrator, lambda: asyncio.run(
            migrator.validate_migration_integrity(source_directory=str(source))
        )
    return migrator, lambda: asyncio.run(migrator.rollback_migration(first.migration_id))


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_leaves_one_row_by_the_one_writer_with_an_id_from_the_one_maker(
    kind: str, tmp_path: Path, watched_writes: list[tuple[dict[str, Any], str]]
) -> None:
    migrator, run = run_kind(kind, tmp_path)
    migrator.bridge.setup_migration_infrastructure()
    before = {r["migration_id"] for r in migrator.bridge.migration_runs()}
    watched_writes.clear()

    result = run()

    assert isinstance(result, RunResult) and result.run_kind == kind
    assert result.outcome().success, result
    new = [r for r in migrator.bridge.migration_runs() if r["migration_id"] not in before]
    assert [(r["migration_id"], r["run_kind"], r["status"]) for r in new] == [
        (result.run_id, kind, "completed")
    ]
    assert id_pattern(kind).match(result.run_id), result.run_id
    assert watched_writes, "the run wrote no row"
    assert {caller for _, caller in watched_writes} == {"run_record.py:write_run"}
    assert {row["migration_id"] for row, _ in watched_writes} == {result.run_id}
    if kind in ("migrate", "sync"):
        assert result.run_id == getattr(result, "migration_id", None)


def test_the_ids_of_runs_differ(tmp_path: Path) -> None:
    ids = {run_record.new_run_id(kind[:4]) for kind in KINDS for _ in range(50)}
    assert len(ids) == 4 * 50


def test_a_closed_crashed_row_shows_its_committed_counts_not_its_last_progress_note() -> None:
    from context_cleaner.migration.alerts import alert_rules
    from context_cleaner.migration.status import build_status

    started = 1_800_000_000.0
    note = {"at": started + 5, "files_completed": 2, "files_total": 10, "bytes_completed": 20,
            "bytes_total": 100, "tokens_processed": 7, "records_inserted": 1}  # fmt: skip
    log = [
        (started, "migrate", "start", "started", json.dumps({"pending_files": 10})),
        (started + 5, "migrate", "checkpoint", "completed", json.dumps({"progress": note})),
    ]
    closed = {"crash_reason": "killed", "closed_by": "migr-next",
              "committed_bytes": 60, "last_commit_at": started + 30}  # fmt: skip
    run = {"source_roots": ["/r"], "migration_id": "migr-x", "run_kind": "migrate",
           "status": "crashed", "host": "h", "started": started, "updated": started + 99,
           "finished": started + 99, "files_found": 10, "files_processed": 6,
           "files_failed": 1, "records_inserted": 40, "lines_skipped": 3,
           "total_tokens": 5000, "details": json.dumps(closed)}  # fmt: skip
    shown = build_status(run, log, [], "h", alert_rules(environ={}), now=started + 200)
    assert (shown.files_completed, shown.files_failed, shown.bytes_completed) == (7, 1, 60)
    assert (shown.records_inserted, shown.tokens_processed, shown.lines_skipped) == (40, 5000, 3)
    assert shown.progress == 0.6 and shown.tokens_per_second == round(
        5000 / 30, 3
    )  # to its last commit
    # A row closed without them (before counts were written on closing): its last note.
    old = {**run, "details": json.dumps({"crash_reason": "killed"})}
    shown = build_status(old, log, [], "h", alert_rules(environ={}), now=started + 200)
    assert (shown.files_completed, shown.bytes_completed, shown.tokens_processed) == (2, 20, 7)

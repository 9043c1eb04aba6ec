"""Read batches gathered into fewer commits (``--commit-every``): same database, fewer units.

A commit gathers the batches read within ``commit_every`` seconds, and commits at once
when another process waits for the database. Whatever the grouping, the database must
equal the analyser to the token, and progress and checkpoints follow the commits.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from context_cleaner.bridge.token_bridge import query_rows
from context_cleaner.errors import MigrationError
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.models import MigrationProgress

from .conftest import Target
from .helpers import analyse, assert_database_equals, bridge

pytestmark = pytest.mark.slow

FIXTURE_FILES = 5


def _migrate(
    url: str, source: Path, commit_every: float
) -> tuple[list[int], HistoricalDataMigrator]:
    migrator = HistoricalDataMigrator(
        bridge_service=bridge(url),
        batch_size=1,
        parallel_workers=1,
        checkpoint_interval=0,  # a unit ends at each checkpoint: none here
        min_snapshot_interval=0.0,
        commit_every=commit_every,
    )
    seen: list[MigrationProgress] = []
    result = migrator.run(str(source), progress_callback=seen.append)
    assert result.success and result.validation_passed
    assert result.files_processed == FIXTURE_FILES
    return [p.files_completed for p in seen], migrator


def test_gathered_commits_equal_one_commit_per_batch(target: Target, fixtures_dir: Path) -> None:
    one_each, first = _migrate(target.new_url(), fixtures_dir, 0.0)
    gathered, second = _migrate(target.new_url(), fixtures_dir, 600.0)
    assert one_each == [1, 2, 3, 4, 5]  # a commit (and its progress) per read batch
    assert gathered == [5]  # every batch read within the interval: one commit
    report = analyse(fixtures_dir)
    assert_database_equals(first.bridge, report)
    assert_database_equals(second.bridge, report)
    assert _counted(first) == _counted(second)


def _counted(m: HistoricalDataMigrator) -> tuple[list[tuple], list[tuple]]:
    """The counted records and the rollup, without what differs between runs (ids, times)."""
    with m.bridge.database.session() as client:
        details = query_rows(
            client,
            "SELECT message_id, request_id, session_id, model, input_tokens, output_tokens, "
            "cache_creation_tokens, cache_read_tokens, cost_usd "
            "FROM counted_token_details ORDER BY ALL",
        )
        summaries = query_rows(
            client,
            "SELECT session_id, day, model, input_tokens, output_tokens, cache_read_tokens, "
            "record_count FROM enhanced_token_summaries FINAL WHERE NOT is_deleted ORDER BY ALL",
        )
    return [tuple(r) for r in details], [tuple(r) for r in summaries]


def test_a_waiting_process_gets_a_commit_at_once(target: Target, fixtures_dir: Path) -> None:
    if target.kind != "chdb":
        pytest.skip("only the embedded database has a lock to wait for")
    url = target.new_url()
    lock = bridge(url).database.lock_path
    assert lock is not None
    lock.parent.mkdir(parents=True, exist_ok=True)
    # announced as a waiting command (not a dashboard, which yields) for the whole run
    waiting = [
        os.open(f"{lock}.{end}", os.O_RDWR | os.O_CREAT, 0o644) for end in ("wait", "writer")
    ]
    for fd in waiting:
        fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        progress, _ = _migrate(url, fixtures_dir, 600.0)
    finally:
        for fd in waiting:
            os.close(fd)
    assert progress == [1, 2, 3, 4, 5]  # no gathering while someone waits


def test_a_negative_commit_interval_is_refused() -> None:
    with pytest.raises(MigrationError, match="--commit-every"):
        HistoricalDataMigrator("chdb:///nonexistent-never-opened", commit_every=-1)


def test_a_fresh_database_filled_meanwhile_is_planned_again(
    tmp_path: Path, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that does not exist yet is read before the engine starts (nothing can
    be committed in it); if another run fills it in the meantime, the plan is made again
    from what that run committed and the early reads are dropped."""
    url = f"chdb://{tmp_path}/db"
    first = HistoricalDataMigrator(bridge_service=bridge(url), parallel_workers=2)
    other = HistoricalDataMigrator(bridge_service=bridge(url), parallel_workers=1)
    setup = first.bridge.setup_migration_infrastructure
    done: list[int] = []

    def another_run_first() -> list[str]:
        done.append(other.run(str(fixtures_dir)).total_records_inserted)
        return setup()

    monkeypatch.setattr(first.bridge, "setup_migration_infrastructure", another_run_first)
    result = first.run(str(fixtures_dir))
    assert done and done[0] > 0  # the other run migrated everything ...
    assert result.success and result.validation_passed
    assert result.files_processed == 0 and result.total_records_inserted == 0  # ... so: nothing
    assert_database_equals(first.bridge, analyse(fixtures_dir))

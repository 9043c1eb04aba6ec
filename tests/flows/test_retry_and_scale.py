"""A transient error inside a task is retried; hundreds of batches stay within ~200 task runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.database import Database
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.orchestration.resume_keys import MAX_BATCH_TASKS

from .helpers import analysed_totals, batch_states, database_totals, task_runs

pytestmark = pytest.mark.slow

#: Holds the database's lock from another process until someone waits, then a while longer.
HOLDER = """
import sys, time
from context_cleaner.bridge.lock import FileLock, someone_waiting
lock = FileLock(sys.argv[1])
lock.acquire(10)
print("held", flush=True)
while not someone_waiting(sys.argv[1]):
    time.sleep(0.01)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def test_a_locked_database_is_retried_until_it_is_free(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from context_cleaner.orchestration.flows import validation_flow

    source = str(fixtures_dir / "projects")
    url = f"chdb://{tmp_path}/db"
    HistoricalDataMigrator(url).run(source)
    monkeypatch.setenv("CONTEXT_CLEANER_LOCK_TIMEOUT", "0.5")
    lock_path = Database(url).lock_path
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path), "1.5"], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        state = validation_flow(source_dirs=[source], clickhouse_url=url, return_state=True)
    assert state.name == "Completed" and state.result().passed
    runs = task_runs(state.state_details.flow_run_id, expected=1)
    (validate,) = [r for r in runs if r.name.startswith("validate")]
    assert validate.state.name == "Completed"
    assert validate.run_count >= 2  # the first attempt found the database locked (transient)


def test_more_batches_than_the_task_budget_are_grouped(
    prefect_harness: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow

    transcript = next((fixtures_dir / "projects").rglob("short.jsonl"))
    project = tmp_path / "projects" / "-home-USER-many"
    project.mkdir(parents=True)
    files, budget = 13, 4
    for n in range(files):
        shutil.copyfile(transcript, project / f"00000000-0000-0000-0000-{n:012d}.jsonl")
    url = f"chdb://{tmp_path}/db"
    state = historical_migration_flow(
        source_dirs=[str(tmp_path / "projects")],
        clickhouse_url=url,
        batch_size=1,
        max_batch_tasks=budget,
        return_state=True,
    )
    assert state.name == "Completed"
    result = state.result()
    assert result.files_processed == files
    per_task = -(-files // budget)  # batches are grouped, never dropped
    tasks = -(-files // per_task)
    runs = task_runs(state.state_details.flow_run_id, expected=tasks + 1)
    assert batch_states(runs) == {"Completed": tasks}
    assert tasks <= budget < files
    assert MAX_BATCH_TASKS == 200  # what the flows use unless told otherwise
    assert database_totals(url) == analysed_totals(tmp_path / "projects")


@pytest.mark.parametrize(
    ("commit_every", "units"),
    [(0.0, [[0], [1]]), (600.0, [[0, 1]])],  # a commit per batch; both batches in one
)
def test_a_retried_batch_task_reuses_its_reads_and_skips_what_it_committed(
    fixtures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    commit_every: float,
    units: list[list[int]],
) -> None:
    """What a retry of ``migrate-batch`` does: the feed is called again after a transient error."""
    from context_cleaner.analysis.discovery import discover
    from context_cleaner.bridge.exceptions import DatabaseLockedError
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.migration.pipeline import BatchReader, RunOptions
    from context_cleaner.migration.planning import batches, plan_work
    from context_cleaner.orchestration.flow_tasks import BatchFeed

    source = fixtures_dir / "projects"
    url = f"chdb://{tmp_path}/db"
    monkeypatch.setenv("CONTEXT_CLEANER_LOCK_TIMEOUT", "0.3")
    bridge = EnhancedTokenDatabaseBridge(url)
    bridge.setup_migration_infrastructure()
    plan = batches(plan_work(discover([source]).files, {}).items, 3)
    assert len(plan) == 2
    consumed = []

    def counted(reads: Any) -> Any:
        for read in reads:
            consumed.append(read[0])
            yield read

    with BatchReader(1) as reader:
        options = RunOptions(commit_every=commit_every)
        feed = BatchFeed(bridge, "migr-retry", counted(reader.read(plan)), plan, 0, options)
        with subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(Database(url).lock_path), "3"],
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(DatabaseLockedError):  # after write_batch's own retries (2.4 s)
                feed.run()  # transient: Prefect retries the task, i.e. calls run() again
        read_first = units[0]  # the reads of the unit whose commit failed
        assert consumed == read_first and not feed.units and set(feed.scans) == set(read_first)
        results = feed.run()  # the retry
        assert consumed == [0, 1]  # the failed unit's scans were kept, not read again
        assert feed.run() == results and consumed == [0, 1]  # committed units are skipped
    assert feed.units == units
    assert [r.batch_id for r in results] == [f"migr-retry-b{u[0]:05d}" for u in units]
    assert database_totals(url) == analysed_totals(source)

"""``MigrationMemoryManager``: a run reports its private memory and, near its bound,
commits what it gathered at once (smaller units, the same rows)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from context_cleaner.migration import pipeline
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.memory import MigrationMemoryManager
from context_cleaner.migration.pipeline import RunOptions, RunState
from context_cleaner.settings import Settings

from .helpers import bridge

FIXTURE_TOKENS = 15_537_336


def _units(url: str, source: Path, memory: MigrationMemoryManager) -> RunState:
    """Migrate ``source`` (again) in one-file batches that would all be one commit but for
    memory."""
    b = bridge(url)
    b.setup_migration_infrastructure()
    options = RunOptions(
        force=True,
        source_dirs=[str(source)],
        batch_size=1,
        parallel_workers=1,
        checkpoint_interval=0,
        commit_every=3600.0,
        memory=memory,
    )
    state = RunState("mig-memory")
    state.discovery, state.plan = pipeline.discover_and_plan(b, options)
    pipeline.run_batches(b, state, options)
    assert b.get_migration_totals()["total_tokens"] == FIXTURE_TOKENS
    return state


@pytest.mark.slow
def test_near_its_bound_a_run_commits_every_batch_on_its_own(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    url = f"chdb://{tmp_path / 'db'}"
    roomy = _units(url, fixtures_dir, MigrationMemoryManager(100_000))
    assert len(roomy.batches) == 1  # the five one-file batches gathered into one commit
    tight = MigrationMemoryManager(1, sample_every=0.0, count_host=True)
    state = _units(url, fixtures_dir, tight)  # the same rows again: the totals stay exact
    assert len(state.batches) == 5  # each batch its own commit
    assert tight.pressured >= 5 and tight.samples >= 5
    assert 0 < state.peak_private <= state.peak_rss
    assert state.peak_private == tight.peak_usage


@pytest.mark.slow
def test_a_run_reports_private_memory_below_its_resident_memory(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    migrator = HistoricalDataMigrator(
        settings=Settings(clickhouse_url=f"chdb://{tmp_path / 'db'}", max_memory_mb=300)
    )
    thresholds = gc.get_threshold()
    result = migrator.run(str(fixtures_dir))
    assert result.success and result.total_tokens_migrated == FIXTURE_TOKENS
    assert gc.get_threshold() == thresholds  # a run collects at its own pace, then restores
    # Resident memory includes the engine's library pages mapped from disk; private does not.
    assert 0 < result.peak_memory_usage_mb < result.peak_resident_memory_mb
    assert migrator._options(None, False, 0).memory.max_memory_mb == 300


def test_the_spec_coroutines_check_and_clean_up() -> None:
    import inspect

    import context_cleaner

    assert context_cleaner.MigrationMemoryManager is MigrationMemoryManager
    for name in ("check_memory_availability", "cleanup_if_needed"):
        assert inspect.iscoroutinefunction(getattr(MigrationMemoryManager, name))
    roomy, tight = MigrationMemoryManager(100_000), MigrationMemoryManager(1, count_host=True)
    assert roomy.max_memory_bytes == 100_000 * 2**20
    assert asyncio.run(roomy.check_memory_availability(2**20))
    assert not asyncio.run(tight.check_memory_availability(0))
    asyncio.run(tight.cleanup_if_needed())  # near the bound: collects, then samples again
    assert tight.current_usage > 0 and tight.pressured >= 1


def test_the_bound_is_on_what_the_run_adds_not_on_its_host() -> None:
    """A host that already holds memory (a notebook, a test runner) is not the run's."""
    held = bytearray(b"x" * (64 * 2**20))  # the host's own memory, held before the run
    manager = MigrationMemoryManager(32)
    assert manager.baseline_usage >= 64 * 2**20
    assert not manager.near_limit() and manager.check(16 * 2**20)
    # The run's: past the bound (by a margin: a child of this test process that ends
    # meanwhile lowers the tree's memory too).
    more = bytearray(b"y" * (96 * 2**20))
    manager.sample(force=True)
    assert manager.near_limit() and manager.run_usage >= 0.8 * manager.max_memory_bytes
    assert MigrationMemoryManager(32, count_host=True).near_limit()  # the whole tree
    del held, more
    with pytest.raises(Exception, match="positive"):
        MigrationMemoryManager(0)

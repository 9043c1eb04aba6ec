"""Checkpoints under the Prefect flow: every ``checkpoint_interval`` files, each one a
rollback point holding exactly that many files (as with the local engine), while the
run has no more batches than batch tasks (see docs/operations.md, section 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.pipeline import RunOptions, discover_and_plan
from context_cleaner.migration.rollback import rollback_migration

pytestmark = pytest.mark.slow


def test_the_flow_checkpoints_every_interval_files(
    prefect_harness: Any, small_corpus: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow

    projects, manifest = small_corpus
    files = int(manifest["files"])
    interval = 4
    url = f"chdb://{tmp_path}/db"
    state = historical_migration_flow(
        source_dirs=[str(projects)],
        clickhouse_url=url,
        batch_size=5,  # batches of 5 files: checkpoints fall inside them
        checkpoint_interval=interval,
        return_state=True,
    )
    assert state.name == "Completed"
    result = state.result()
    assert result.checkpoints == [f"cp{k}" for k in range(1, files // interval + 1)]
    _, plan = discover_and_plan(None, RunOptions(source_dirs=[str(projects)]))
    every = {item.file.relative_path for item in plan.items}
    bridge = EnhancedTokenDatabaseBridge(url)
    for cp in (result.checkpoints[1], result.checkpoints[0]):
        rollback_migration(bridge, result.migration_id, "partial", cp)
        # Exactly k * interval files (in the order the batch tasks read them).
        tracked = {t.file_path for t in bridge.tracked_files()}
        assert len(tracked) == int(cp[2:]) * interval and tracked <= every, cp

"""A user's script that follows the spec literally: package-root imports, a
clickhouse-connect chDB client, every coroutine awaited with ``asyncio.run``, the spec's
defaults (three reader processes, spawned: the coroutines run in a worker thread), and
no ``if __name__ == "__main__":`` guard. It must run once, migrate the real fixtures to
ccusage's totals, validate, checkpoint, roll back and set up the hourly sync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import run_script_once

pytestmark = pytest.mark.slow

SCRIPT = """
import asyncio, json, os
print("SCRIPT STARTED", os.getpid(), flush=True)

import clickhouse_connect
from context_cleaner import (
    EnhancedTokenCounter,
    EnhancedTokenDatabaseBridge,
    HistoricalDataMigrator,
)

clickhouse_client = clickhouse_connect.get_client(dsn="chdb://{db}")
migrator = HistoricalDataMigrator(
    clickhouse_client,
    EnhancedTokenCounter([{source!r}]),
    EnhancedTokenDatabaseBridge("chdb://{db}"),
)

async def main():
    await migrator.setup_migration_infrastructure()
    result = await migrator.migrate_all_historical_data(source_directory={source!r})
    validation = await migrator.validate_migration_integrity(full_validation=True)
    complete = await migrator.verify_migration_completeness()
    checkpoint = await migrator.create_migration_checkpoint(
        result.migration_id, completed_files=[], current_state={{}}
    )
    rollback = await migrator.rollback_migration(
        result.migration_id, rollback_to_checkpoint=checkpoint.checkpoint
    )
    sync = await migrator.setup_incremental_sync(sync_interval_minutes=60)
    return {{
        "migrated": result.total_tokens_migrated,
        "validation_passed": result.validation_passed and validation.passed,
        "complete": complete.complete,
        "rolled_back": rollback.success,
        "sync": sync.schedule,
        "totals": migrator.bridge.get_migration_totals(),
    }}

print("RESULT " + json.dumps(asyncio.run(main())), flush=True)
"""


def test_a_spec_literal_script_without_main_guard(
    tmp_path: Path, fixtures_dir: Path, expected_daily: dict[str, Any]
) -> None:
    script = tmp_path / "migrate_history.py"
    script.write_text(SCRIPT.format(db=tmp_path / "db", source=str(fixtures_dir / "projects")))
    lines = run_script_once(script)
    result = json.loads(next(x for x in lines if x.startswith("RESULT "))[len("RESULT ") :])
    want = expected_daily["totals"]
    ccusage = {"input_tokens": "inputTokens", "output_tokens": "outputTokens",
               "cache_creation_tokens": "cacheCreationTokens",
               "cache_read_tokens": "cacheReadTokens", "total_tokens": "totalTokens"}  # fmt: skip
    assert {k: result["totals"][k] for k in ccusage} == {k: want[v] for k, v in ccusage.items()}
    assert result["migrated"] == want["totalTokens"]
    assert result["validation_passed"] and result["complete"] and result["rolled_back"]
    assert result["sync"] == "every 60 minutes"

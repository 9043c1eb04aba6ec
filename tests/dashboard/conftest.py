"""Fixtures for the dashboard tests: the real transcripts migrated into real chDB databases.

The in-process tests share one migrated database (read-only use); tests that run
a server or a sync get their own copy of the transcripts and their own database,
built by the real ``context-cleaner migrate`` in a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import Server

from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator


@pytest.fixture
def server_factory() -> Iterator[Any]:
    """Start dashboards with ``server_factory(*args)``; all are stopped after the test."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(*args)
        started.append(server)
        return server.wait_ready()

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def projects_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "projects"


@pytest.fixture(scope="session")
def migrated_url(tmp_path_factory: pytest.TempPathFactory, projects_dir: Path) -> str:
    """A database holding the fixtures, migrated in this process (tests only read it)."""
    url = f"chdb://{tmp_path_factory.mktemp('dashboard') / 'db'}"
    migrator = HistoricalDataMigrator(
        bridge_service=EnhancedTokenDatabaseBridge(url), parallel_workers=1
    )
    result = migrator.run(str(projects_dir))
    assert result.success, result.errors
    return url


@pytest.fixture
def expected_totals(expected_daily: dict[str, Any]) -> dict[str, int]:
    """ccusage's totals for the fixtures, in our field names."""
    t = expected_daily["totals"]
    return {
        "input_tokens": t["inputTokens"],
        "output_tokens": t["outputTokens"],
        "cache_creation_tokens": t["cacheCreationTokens"],
        "cache_read_tokens": t["cacheReadTokens"],
        "total_tokens": t["totalTokens"],
    }

"""Fixtures for the Prefect flow tests: one temporary Prefect API for the session, corpora.

Prefect's outbound analytics are off for everything started here (this process,
the harness's server, the subprocesses the tests start): ``DO_NOT_TRACK=1`` and
``PREFECT_SERVER_ANALYTICS_ENABLED=false`` are set before Prefect is imported.
Results and cache records go to a temporary ``PREFECT_HOME``, never ``~/.prefect``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="cc-prefect-home-")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Harness:
    """The session's temporary Prefect API and where results are stored."""

    api_url: str
    home: Path
    storage: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a subprocess that should use this API and result store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home),
            PREFECT_LOCAL_STORAGE_PATH=str(self.storage),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="WARNING",
            DO_NOT_TRACK="1",
            PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""),
        )
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The one ``prefect_test_harness`` of the session (a temporary server and database)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    storage = home / "storage"
    updates = {
        PREFECT_HOME: home,
        PREFECT_LOCAL_STORAGE_PATH: storage,
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
    }
    with temporary_settings(updates=updates), prefect_test_harness(server_startup_timeout=90):
        yield Harness(str(PREFECT_API_URL.value()), home, storage)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """A generated 6 MB corpus (27 files) and its manifest with the exact expected totals."""
    from context_cleaner.testing.transcripts import generate_corpus

    out = tmp_path_factory.mktemp("flow-corpus")
    return out / "projects", generate_corpus(out, 6_000_000, seed=7)

"""Fixtures for the incremental sync tests: generated corpora and fresh embedded databases."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.testing.transcripts import generate_corpus


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A generated corpus of ~600 KB (sessions, subagents, a resumed session); read-only."""
    out = tmp_path_factory.mktemp("sync-corpus")
    manifest = generate_corpus(out, 600_000, seed=11)
    return out / "projects", manifest


@pytest.fixture
def source(tmp_path: Path, small_corpus: tuple[Path, dict[str, Any]]) -> Path:
    """A writable copy of the small corpus (its ``projects/`` folder)."""
    target = tmp_path / "projects"
    shutil.copytree(small_corpus[0], target)
    return target


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh embedded database location."""
    return f"chdb://{tmp_path}/db"

"""What ``context-cleaner run`` migrates, in this process: named folders as they are, else the
bundled sample into its own database unless one is named (the command: test_run_command.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.migration.sample_source import SAMPLE_DIR, has_transcripts, sample_settings
from context_cleaner.settings import Settings


def test_named_folders_count_as_they_are(tmp_path: Path) -> None:
    assert has_transcripts(Settings(source_dirs=(str(tmp_path),)))


def test_a_home_without_transcripts_falls_back_to_the_bundled_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    assert not has_transcripts(Settings())
    sample = sample_settings(Settings())
    assert sample.sources == [str(SAMPLE_DIR / "projects")]
    assert sample.clickhouse_url == f"chdb://{tmp_path / '.context_cleaner' / 'sample-clickhouse'}"
    assert discover(resolve_roots(sample.sources)).files  # the sample holds transcripts
    named = sample_settings(Settings(clickhouse_url=f"chdb://{tmp_path}/db"))
    assert named.clickhouse_url == f"chdb://{tmp_path}/db"

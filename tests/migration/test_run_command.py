"""``context-cleaner run`` (what ``make run`` does): the user's transcripts, else the sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .helpers import URL_ENV, cli_env, run_cli

pytestmark = pytest.mark.slow


def _env(home: Path, config: Path, **extra: str) -> dict[str, str]:
    env = cli_env(None, HOME=str(home), CLAUDE_CONFIG_DIR=str(config), **extra)
    env.pop(URL_ENV, None)
    return env


def test_an_empty_transcript_folder_falls_back_to_the_bundled_sample(tmp_path: Path) -> None:
    """Claude Code installed but never used: its projects folder exists and holds nothing."""
    config = tmp_path / "claude"
    (config / "projects").mkdir(parents=True)
    out = run_cli("run", env=_env(tmp_path, config))
    assert out.returncode == 0, out.stderr
    assert "using the bundled sample" in out.stdout
    assert (tmp_path / ".context_cleaner" / "sample-clickhouse").is_dir()
    assert "Full validation: passed" in out.stdout
    assert "0 sessions compared" not in out.stdout


def test_the_users_transcripts_are_migrated_when_there_are_some(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    config = tmp_path / "claude"
    shutil.copytree(fixtures_dir / "projects", config / "projects")
    url = f"chdb://{tmp_path / 'db'}"
    out = run_cli("run", env=_env(tmp_path, config, **{URL_ENV: url}))
    assert out.returncode == 0, out.stderr
    assert "bundled sample" not in out.stdout
    assert "Full validation: passed" in out.stdout
    assert "0 sessions compared" not in out.stdout

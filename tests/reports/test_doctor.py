"""``context-cleaner doctor`` with fake home folders and a real embedded database."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.migration.doctor import check_retention, settings_files
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

from .helpers import cli_env, run_cli


def doctor(home: Path, url: str, **env: str) -> tuple[int, dict[str, dict[str, Any]]]:
    out = run_cli("doctor", "--json", "--clickhouse-url", url, env=cli_env(HOME=str(home), **env))
    doc = json.loads(out.stdout)
    assert set(doc) == {"checks"}
    for c in doc["checks"]:
        assert set(c) == {"name", "status", "message", "fix"}
        assert c["status"] in ("ok", "warn", "fail")
    return out.returncode, {c["name"]: c for c in doc["checks"]}


@pytest.mark.slow
def test_an_empty_home_warns_with_the_exact_settings_line(tmp_path: Path) -> None:
    code, checks = doctor(tmp_path / "home", f"chdb://{tmp_path}/db")
    assert code == 0  # warnings only
    retention = checks["transcript_retention"]
    assert retention["status"] == "warn" and "30 days" in retention["message"]
    assert '"cleanupPeriodDays": 36500' in retention["fix"]
    assert str(tmp_path / "home" / ".claude" / "settings.json") in retention["fix"]
    assert checks["database"]["status"] == "warn"
    assert "context-cleaner migrate" in checks["database"]["fix"]
    assert not (tmp_path / "db").exists()  # never creates the database to look at it
    assert checks["transcript_roots"]["status"] == "warn"


def test_retention_reads_home_and_claude_config_dir_settings(tmp_path: Path) -> None:
    home, config = tmp_path / "home", tmp_path / "config"
    (home / ".claude").mkdir(parents=True)
    config.mkdir()
    env = {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(config / "projects")}
    assert settings_files(env) == [home / ".claude" / "settings.json", config / "settings.json"]
    (home / ".claude" / "settings.json").write_text('{"cleanupPeriodDays": 99999}')
    assert check_retention(env).status == "ok"
    (config / "settings.json").write_text('{"theme": "dark", "cleanupPeriodDays": 7}')
    short = check_retention(env)
    assert short.status == "warn" and "7 days" in short.message
    (config / "settings.json").write_text("{not json")
    assert check_retention(env).status == "warn"


@pytest.mark.slow
def test_a_real_database_reports_rows_days_and_the_last_sync(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    projects = home / ".claude" / "projects"
    shutil.copytree(fixtures_dir / "projects", projects)
    (home / ".claude" / "settings.json").write_text('{"cleanupPeriodDays": 36500}')
    url = f"chdb://{tmp_path}/db"
    HistoricalDataMigrator(url, parallel_workers=1).run(str(projects))
    # Claude Code's cleanup deletes the first day's transcripts: the database keeps them.
    for name in ("short.jsonl", "tool_heavy.jsonl"):
        for f in projects.rglob(name):
            f.unlink()
    code, checks = doctor(home, url)
    assert code == 0
    assert checks["transcript_retention"]["status"] == "ok"
    assert checks["transcript_roots"]["status"] == "ok"
    db = checks["database"]
    assert db["status"] == "ok"
    assert "from 2026-02-10 to 2026-02-11" in db["message"]
    assert "1 day(s) exist only in the database" in db["message"]
    assert re.search(r"schema \d{3}_\w+\.sql", db["message"])
    assert checks["last_sync"]["status"] == "ok"
    assert checks["scheduled_sync"]["status"] == "warn"

    # Pointed at no transcripts at all, it does not claim they are gone.
    shutil.rmtree(projects)
    code, checks = doctor(home, url)
    assert checks["transcript_roots"]["status"] == "warn"
    message = checks["database"]["message"]
    assert "no transcript folder found to compare its days with" in message, message
    assert "transcripts are gone" not in message


@pytest.mark.slow
def test_days_are_compared_with_the_folders_the_database_was_filled_from(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    """A database migrated with ``--source-dir`` from a folder outside the default ones:
    doctor compares its days with that folder's transcripts. Before, it compared them
    with the (empty) default folder and said both days' transcripts were gone."""
    home = tmp_path / "home"
    (home / ".claude" / "projects").mkdir(parents=True)  # the default folder, empty
    projects = tmp_path / "elsewhere" / "projects"
    shutil.copytree(fixtures_dir / "projects", projects)
    url = f"chdb://{tmp_path}/db"
    HistoricalDataMigrator(url, parallel_workers=1).run(str(projects))
    _code, checks = doctor(home, url)
    message = checks["database"]["message"]
    assert f"each of its days is in the transcripts of {projects} too" in message, message
    assert "exist only in the database" not in message
    for f in projects.rglob("short.jsonl"):
        f.unlink()
    for f in projects.rglob("tool_heavy.jsonl"):
        f.unlink()
    _code, checks = doctor(home, url)
    message = checks["database"]["message"]
    assert f"1 day(s) exist only in the database (their transcripts are gone from {projects})" in (
        message
    ), message


@pytest.mark.slow
@pytest.mark.parametrize(("token", "code"), [("short", 1), ("x" * 32, 0)])
def test_a_short_dashboard_token_fails_the_run(tmp_path: Path, token: str, code: int) -> None:
    got, checks = doctor(
        tmp_path / "home", f"chdb://{tmp_path}/db", CONTEXT_CLEANER_DASHBOARD_TOKEN=token
    )
    assert got == code
    assert checks["dashboard_token"]["status"] == ("fail" if code else "ok")

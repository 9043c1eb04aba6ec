"""Transcripts whose file or folder names are not UTF-8, or hold a newline, through every
command: counted as ccusage counts them, synced, validated, shown as synced.

Before, one file named with a byte that is not UTF-8 ended ``migrate`` with
"unexpected UnicodeEncodeError" and nothing migrated (tests/analysis/test_file_names.py
has the rule: such a name is stored written ``\\xNN``).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from reports.helpers import run_ccusage

from .helpers import analyse, assert_database_equals, bridge, run_cli, run_json


def _renamed(data: bytes, tag: str) -> bytes:
    """The same responses under new message and request ids: new records, not repeats."""
    return data.replace(b'"msg_', f'"msg_{tag}'.encode()).replace(b'"req_', f'"req_{tag}'.encode())


def _writable(tree: Path) -> None:
    for folder, _, _ in os.walk(tree):
        os.chmod(folder, os.stat(folder).st_mode | stat.S_IWUSR)


def _total(config: Path, ccusage: Path) -> int:
    return int(run_ccusage(ccusage, config, "daily")["totals"]["totalTokens"])


def test_names_that_are_not_utf8_are_counted_like_ccusage_through_every_command(
    tmp_path: Path, fixtures_dir: Path, ccusage: Path
) -> None:
    config = tmp_path / "claude"
    projects = config / "projects"
    shutil.copytree(fixtures_dir / "projects", projects)
    _writable(projects)
    short = next(projects.glob("*/short.jsonl"))
    data = short.read_bytes()
    odd_file = os.fsencode(short.parent) + b"/caf\xe9-session.jsonl"
    with open(odd_file, "wb") as f:
        f.write(_renamed(data, "A"))
    odd_folder = os.fsencode(projects) + b"/-home-u-\xff\xfe-proj"
    os.mkdir(odd_folder)
    with open(odd_folder + b"/s1.jsonl", "wb") as f:
        f.write(_renamed(data, "B"))
    newline = projects / "-home-u-two\nlines"
    newline.mkdir()
    (newline / "s2.jsonl").write_bytes(_renamed(data, "C"))
    url = f"chdb://{tmp_path}/db"
    want = _total(config, ccusage)
    fixture_tokens = analyse(fixtures_dir).totals.total_tokens
    alone = tmp_path / "one" / "projects" / "p"
    alone.mkdir(parents=True)
    (alone / "short.jsonl").write_bytes(data)
    one_copy = analyse(alone.parent).totals.total_tokens
    assert want == fixture_tokens + 3 * one_copy  # ccusage read all three

    migrated = run_json("migrate", "--source-dir", str(projects), url=url)
    assert migrated["success"] and migrated["validation_passed"], migrated
    assert migrated["files_processed"] == 8 and migrated["files_failed"] == 0
    assert migrated["total_tokens_migrated"] == want
    assert_database_equals(bridge(url), analyse(projects))

    sessions = run_json("report", "session", url=url)["rows"]
    by_session = {row["session_id"]: row for row in sessions}
    assert by_session["caf\\xe9-session"]["total_tokens"] == one_copy
    assert by_session["s1"]["project"] == "-home-u-\\xff\\xfe-proj"
    assert by_session["s2"]["project"] == "-home-u-two\nlines"

    with open(odd_file, "ab") as f:  # the session goes on
        f.write(_renamed(data, "D"))
    synced = run_json("sync", "--source-dir", str(projects), url=url)
    assert synced["tokens_added"] == one_copy and synced["files_changed"] == 1, synced

    with open(odd_file, "ab") as f:  # a watcher's sync names the file by its path on disk
        f.write(_renamed(data, "E"))
    result = HistoricalDataMigrator(url, parallel_workers=1).sync(
        [str(projects)], only_paths={os.fsdecode(odd_file)}
    )
    assert result.success and result.tokens_added == one_copy, result

    checked = run_json("validate", "--full-validation", "--source-dir", str(projects), url=url)
    assert checked["passed"], checked
    status = run_json("status", url=url)
    assert status["file_counts"]["synced"] == len(status["files"]) == 8, status["file_counts"]
    odd = next(f for f in status["files"] if f["path"].endswith("caf\\xe9-session.jsonl"))
    assert odd["state"] == "synced" and odd["pending_bytes"] == 0, odd
    final = _total(config, ccusage)
    assert final == want + 2 * one_copy
    assert bridge(url).get_migration_totals()["total_tokens"] == final
    again = run_cli("sync", "--source-dir", str(projects), url=url)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr

"""``migrate`` whose own validation fails: the data is committed, the command prints the
report and exits 1 (the Python API raises ``ValidationError`` for the same run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from context_cleaner.bridge import Database

from .helpers import run_json

pytestmark = pytest.mark.slow


def test_migrate_prints_a_failed_validation_and_exits_1(tmp_path: Path, fixtures_dir: Path) -> None:
    url = f"chdb://{tmp_path / 'db'}"
    project = tmp_path / "projects" / "-p"
    project.mkdir(parents=True)
    for name in ("short", "tool_heavy"):
        shutil.copy(next(fixtures_dir.rglob(f"{name}.jsonl")), project / f"{name}.jsonl")
    source = ("--source-dir", str(tmp_path / "projects"))
    assert run_json("migrate", *source, url=url)["validation_passed"]
    # The rollup of a session the next run does not touch disagrees with its rows.
    with Database(url).session() as client:
        client.command(
            "INSERT INTO enhanced_token_summaries SELECT * REPLACE (ver + 1 AS ver, "
            "output_tokens + 7 AS output_tokens) FROM enhanced_token_summaries FINAL "
            "WHERE session_id = 'short'"
        )
    heavy = project / "tool_heavy.jsonl"
    usage_line = next(x for x in heavy.read_bytes().splitlines(True) if b'"usage"' in x)
    with heavy.open("ab") as f:  # something for the run to read (a response it already has)
        f.write(usage_line)
    doc = run_json("migrate", *source, url=url, ok=False)
    assert doc["success"] and not doc["validation_passed"]
    report = doc["consistency_check_results"]
    assert not report["summaries_agree"]
    assert any("summary table disagrees" in note for note in report["explanations"])

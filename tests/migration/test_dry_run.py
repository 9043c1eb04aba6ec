"""Dry run: everything but the writes; it reports what would be inserted and a projection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import Target
from .helpers import dump_tables, owned_tables, run_json

FIXTURE_FILES = 5
FIXTURE_RECORDS = 161


def test_a_dry_run_on_a_fresh_database_creates_nothing(target: Target, fixtures_dir: Path) -> None:
    url = target.new_url()
    result = run_json("migrate", "--source-dir", str(fixtures_dir), "--dry-run", url=url)
    assert result["dry_run"] is True and result["success"] is True
    assert result["migration_id"].startswith("dry")
    assert result["total_files_found"] == result["files_processed"] == FIXTURE_FILES
    assert result["total_records_inserted"] == FIXTURE_RECORDS  # what would be inserted
    assert result["total_tokens_migrated"] > 0
    assert result["bytes_processed"] == sum(p.stat().st_size for p in fixtures_dir.rglob("*.jsonl"))
    assert result["projected_seconds"] is not None and result["projected_seconds"] > 0
    assert not target.exists(url)
    if target.kind == "chdb":
        assert not Path(target.base).exists()  # no folder, no lock file, nothing


@pytest.mark.slow
def test_a_dry_run_on_a_migrated_database_changes_nothing_and_predicts_the_run(
    target: Target, fixtures_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "claude" / "projects"
    shutil.copytree(fixtures_dir / "projects", source)
    # A session of its own: the rows a dry run would insert are then the net change too
    # (a main-chain file arriving after its subagent's replays would also drop those, rule 4).
    newest = next(source.rglob("tool_heavy.jsonl"))
    held_back = tmp_path / "held-back.jsonl"
    newest.rename(held_back)
    url = target.new_url()
    run_json("migrate", "--source-dir", str(source), url=url)

    newest.parent.mkdir(parents=True, exist_ok=True)
    held_back.rename(newest)
    before = dump_tables(url, owned_tables(url))
    dry = run_json("migrate", "--source-dir", str(source), "--dry-run", url=url)
    assert dump_tables(url, owned_tables(url)) == before  # every table, history included
    assert dry["dry_run"] is True
    assert dry["files_processed"] == 1 and dry["files_skipped"] == FIXTURE_FILES - 1
    assert dry["projected_seconds"] is not None and dry["projected_seconds"] > 0

    real = run_json("migrate", "--source-dir", str(source), url=url)
    for key in ("files_processed", "files_skipped", "total_records_inserted", "bytes_processed"):
        assert dry[key] == real[key], key
    assert real["total_tokens_migrated"] == dry["total_tokens_migrated"] > 0

"""A crashed run is shown with what it committed: its files from its tracking rows, its
records and tokens from its usage rows as the counting rules keep them (a row a later run
took over counts for that run; a side-chain replay of a main-chain record not at all).
The run that closes it writes those counts into its row, and first brings the rollups
of its sessions level with its rows (killed between a unit's insert and its rollup
refresh, the rollups lag, and the next run's net change would count those rows again).
Real embedded ClickHouse; the run's process is a real process that has ended.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from test_bridge_moved_records import _record

from context_cleaner.bridge import Database, FileCommit, writes
from context_cleaner.bridge.buckets import rollup_differences
from context_cleaner.bridge.runs import committed_by
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.crashed_runs import close_crashed_runs

DEAD = "migr-dead"


def _commit(path: str, start: int, end: int, status: str = "completed") -> FileCommit:
    return FileCommit(source_root="/r", file_path=path, device=1, inode=hash(path) % 1000,
                      head_hash="h", head_length=min(end, 4096), file_size=end, mtime_ns=1,
                      range_start=start, committed_offset=end, committed_line=1,
                      tokens_found=0, records_inserted=0, lines_skipped=1,
                      status=status)  # fmt: skip


def _dead_process() -> dict[str, Any]:
    ended = subprocess.Popen(["true"])
    ended.wait()
    return {"pid": ended.pid, "started": round(time.time(), 3)}


def _bridge_of_a_dead_writer(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A bridge whose running rows name a process that has ended (as a killed run's do)."""
    dead = _dead_process()
    monkeypatch.setattr(writes, "this_process", lambda: dead)
    bridge = EnhancedTokenDatabaseBridge(db_url, host="h")
    bridge.setup_migration_infrastructure()
    return bridge


@pytest.mark.slow  # ~2.5 s
def test_a_crashed_run_shows_what_it_committed_as_the_rules_count_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = _bridge_of_a_dead_writer(db_url, monkeypatch)
    mine = [
        _record(0, "a"),
        _record(1, "a"),  # a later run stores a better copy: counted for that run
        _record(2, "a", is_sidechain=True),
        _record(2, "a", request_id="req_2b"),  # its main-chain copy: the replay is dropped
    ]
    with bridge.writer() as w:
        w.save_run({"migration_id": DEAD, "run_kind": "migrate", "status": "running",
                    "started_at": time.time(), "files_found": 9})  # fmt: skip
        w.insert_records(mine, DEAD)
        files = [
            _commit("a.jsonl", 0, 100),
            _commit("a.jsonl", 100, 250),
            _commit("b.jsonl", 0, 50),
        ]
        w.commit_files([*files, _commit("c.jsonl", 0, 0, status="failed")], DEAD)
    with bridge.writer() as w:
        w.insert_records([_record(1, "b", output_tokens=999)], "migr-later")
    kept = [mine[0], mine[3]]
    tokens = sum(r.input_tokens + r.output_tokens + r.cache_read_tokens for r in kept)

    (run,) = bridge.migration_runs()
    assert run["status"] == "crashed"
    counts = {k: run[k] for k in ("files_processed", "files_failed", "records_inserted")}
    assert counts == {"files_processed": 2, "files_failed": 1, "records_inserted": 2}
    assert (run["total_tokens"], run["lines_skipped"]) == (tokens, 4)
    with bridge.database.session() as client:
        found = committed_by(client, [DEAD, "migr-never"])
    assert found[DEAD].bytes == 300 and found[DEAD].records == 2
    assert found["migr-never"].records == 0 and found["migr-never"].last_commit is None

    # Readers remember the answer only while nothing writes: a write shows at once.
    with bridge.writer() as w:
        w.insert_records([_record(3, "a")], DEAD)
    (run,) = bridge.migration_runs()
    assert run["records_inserted"] == 3


@pytest.mark.slow  # ~2 s
def test_closing_a_run_killed_before_its_rollup_refresh_brings_the_rollups_level(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = _bridge_of_a_dead_writer(db_url, monkeypatch)
    with bridge.writer() as w:  # killed after its unit's insert, before the refresh
        w.save_run({"migration_id": DEAD, "run_kind": "migrate", "status": "running",
                    "started_at": time.time(), "source_roots": ["/r"]})  # fmt: skip
        w.insert_records([_record(0, "a"), _record(1, "b")], DEAD)
    with Database(db_url).session() as client:
        assert rollup_differences(client)["enhanced_token_summaries"]  # they lag

    (closed,) = close_crashed_runs(bridge, "migr-next", ["/r"])
    assert closed["migration_id"] == DEAD and closed["resumed"] is True
    assert closed["committed"]["files_processed"] == 0  # no file's tracking row was written
    assert closed["committed"]["records_inserted"] == 2
    with Database(db_url).session() as client:
        assert rollup_differences(client) == {
            "enhanced_token_summaries": [],
            "enhanced_token_buckets": [],
        }
    (run,) = bridge.migration_runs()
    assert (run["status"], run["records_inserted"], run["files_processed"]) == ("crashed", 2, 0)
    assert run["details"]["closed_by"] == "migr-next"

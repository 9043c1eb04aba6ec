"""Incremental sync, case by case: torn lines, partial-then-final usage, rotation,
truncation, deletion, unreadable files, the stat cache (real chDB in tmp_path)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.analysis.discovery import discover
from context_cleaner.bridge.database import Database
from context_cleaner.migration import freshness, sync_cache
from context_cleaner.migration.incremental import SyncRequest, fast_sync
from context_cleaner.migration.rollback import rollback_migration
from context_cleaner.migration.status_report import status_payload

from .helpers import (
    analyse,
    assert_matches_analyser,
    assistant_line,
    database_state,
    exact,
    hold_database,
    migrator,
    run_cli,
    user_line,
)

pytestmark = pytest.mark.slow


def _project(tmp_path: Path) -> Path:
    folder = tmp_path / "projects" / "-home-u-proj"
    folder.mkdir(parents=True)
    return folder


def test_torn_line_waits_for_its_newline_and_partial_usage_ends_final(
    tmp_path: Path, db_url: str
) -> None:
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    partial, final = assistant_line("m1", 7), assistant_line("m1", 420)
    torn = assistant_line("m2", 55)
    f.write_bytes(user_line() + partial + torn[:30])  # m2 is still being written
    m = migrator(db_url)
    result = m.sync(str(tmp_path / "projects"))
    assert result.success and result.files_new == 1
    totals, _ = database_state(m)
    assert totals["output_tokens"] == 7 and totals["records"] == 1
    [tracked] = m.bridge.tracked_files()
    assert tracked.committed_offset == len(user_line() + partial)  # the torn bytes wait

    with f.open("ab") as out:  # m2 finished; m1's final line arrives
        out.write(torn[30:] + final)
    m = migrator(db_url)  # a restart
    result = m.sync(str(tmp_path / "projects"))
    assert result.success and result.files_changed == 1 and result.files_reset == 0
    totals, sessions = database_state(m)
    assert totals["output_tokens"] == 420 + 55 and totals["records"] == 2
    assert sessions["s1"]["output_tokens"] == 475
    assert_matches_analyser(m, tmp_path / "projects")


def test_nothing_new_stats_only_and_never_opens_the_database(
    tmp_path: Path, source: Path, db_url: str
) -> None:
    m = migrator(db_url)
    assert m.sync(str(source)).success
    with hold_database(db_url, tmp_path):  # another process holds the database meanwhile
        quick = migrator(db_url)
        quick.bridge.database.lock_timeout = 0.0  # any attempt to open it would fail now
        result = quick.sync(str(source))
        assert result.success and result.files_changed == 0 and result.data_lag_seconds == 0
        assert result.files_checked == len(list(source.rglob("*.jsonl")))
        some = next(source.rglob("*.jsonl"))
        with some.open("ab") as out:
            out.write(assistant_line("brand-new", 3, session_id="x"))
        with pytest.raises(Exception, match="in use by"):  # now it must read: it needs the lock
            quick.sync(str(source))
    result = migrator(db_url).sync(str(source))
    assert result.files_changed == 1 and result.records_inserted == 1
    assert_matches_analyser(migrator(db_url), source)


def test_the_quiet_walk_answers_nothing_new_and_every_change_ends_it(
    source: Path, db_url: str
) -> None:
    """After a sync that read everything, a sync with nothing new is answered by the stat
    cache's quiet walk (no walk: ``fast_sync`` returns no discovery) with the same
    counts; an append in place (the folder's time unchanged), a deleted file and a new
    file in an old folder each end it, are read or counted, and the next quiet sync
    answers again."""
    m = migrator(db_url)
    first = m.sync(str(source))
    request = SyncRequest([str(source)])

    def quiet() -> bool:
        result, found = fast_sync(m.bridge.database, m.bridge.host, request)
        assert result is not None or found is not None
        return found is None

    assert quiet()
    again = migrator(db_url).sync(str(source))
    assert (again.files_checked, again.files_changed, again.files_deleted) == (
        first.files_checked,
        0,
        0,
    )
    files = sorted(source.rglob("*.jsonl"))
    with files[0].open("ab") as out:
        out.write(assistant_line("appended", 5, session_id=files[0].stem))
    assert not quiet()
    assert migrator(db_url).sync(str(source)).files_changed == 1
    assert quiet()
    files[1].unlink()
    assert not quiet()
    gone = migrator(db_url).sync(str(source))  # nothing to read: counted, then quiet again
    assert gone.files_deleted == 1 and gone.files_changed == 0
    assert quiet()
    assert migrator(db_url).sync(str(source)).files_deleted == 1  # the quiet walk says so too
    (files[2].parent / "new-session.jsonl").write_bytes(assistant_line("new", 7, session_id="n"))
    assert not quiet()
    new = migrator(db_url).sync(str(source))
    assert new.files_new == 1 and new.records_inserted == 1
    assert quiet()  # (the deleted file's rows stay: DESIGN §5)


def test_a_write_by_anyone_else_invalidates_the_stat_cache(source: Path, db_url: str) -> None:
    m = migrator(db_url)
    first = m.sync(str(source))
    files = first.files_checked
    rollback_migration(m.bridge, first.migration_id, "data-only", None)  # another writer
    assert database_state(m)[0]["records"] == 0
    again = migrator(db_url).sync(str(source))
    assert again.files_changed == files  # re-read, not trusted from the cache
    assert_matches_analyser(m, source)


def test_a_recreated_database_is_not_the_cached_one(source: Path, db_url: str) -> None:
    m = migrator(db_url)
    m.sync(str(source))
    shutil.rmtree(db_url.removeprefix("chdb://"))
    with Database(db_url).session():  # recreated empty (as a reader would), maybe same inode
        pass
    result = migrator(db_url).sync(str(source))
    assert result.files_changed == result.files_checked
    assert_matches_analyser(migrator(db_url), source)


def test_replaced_file_is_read_again_from_zero(tmp_path: Path, db_url: str) -> None:
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    f.write_bytes(assistant_line("a", 5) + assistant_line("b", 6))
    m = migrator(db_url)
    m.sync(str(tmp_path / "projects"))
    tmp = folder / "s1.jsonl.tmp"  # an editor-style save: new inode, same head, more lines
    tmp.write_bytes(f.read_bytes() + assistant_line("c", 7))
    os.replace(tmp, f)
    result = migrator(db_url).sync(str(tmp_path / "projects"))
    # Three records read again, one new to the database: records_inserted is the net change.
    assert result.files_reset == 1 and result.records_inserted == 1
    assert any("re-read from 0" in w for w in result.warnings)
    assert_matches_analyser(m, tmp_path / "projects")


def test_truncated_and_rewritten_file_is_reread_and_old_rows_stay(
    tmp_path: Path, db_url: str
) -> None:
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    old = assistant_line("old-1", 50) + assistant_line("old-2", 60)
    f.write_bytes(old)
    m = migrator(db_url)
    m.sync(str(tmp_path / "projects"))
    before = analyse(tmp_path / "projects").totals
    with f.open("r+b") as out:  # same inode, new content, longer than what was committed
        out.truncate(0)
        out.write(assistant_line("new-1", 70) + assistant_line("new-2", 80))
        out.write(assistant_line("new-3", 90))
    result = migrator(db_url).sync(str(tmp_path / "projects"))
    assert result.files_reset == 1 and result.records_inserted == 3
    after = analyse(tmp_path / "projects").totals
    totals, _ = database_state(m)  # DESIGN §5: the rows of the cut content are kept
    assert totals["output_tokens"] == before.output_tokens + after.output_tokens
    assert totals["records"] == 5


def test_truncated_to_a_prefix_then_grown(tmp_path: Path, db_url: str) -> None:
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    keep, cut = assistant_line("k", 10), assistant_line("cut", 20) + assistant_line("cut2", 30)
    f.write_bytes(keep + cut)
    m = migrator(db_url)
    m.sync(str(tmp_path / "projects"))
    with f.open("r+b") as out:
        out.truncate(len(keep))
    result = migrator(db_url).sync(str(tmp_path / "projects"))  # shorter: re-read from 0
    assert result.files_reset == 1
    with f.open("ab") as out:
        out.write(assistant_line("later", 40))
    result = migrator(db_url).sync(str(tmp_path / "projects"))
    assert result.files_reset == 0 and result.records_inserted == 1
    totals, _ = database_state(m)
    assert totals["output_tokens"] == 10 + 20 + 30 + 40


def test_rotated_file_new_content_is_read_and_rotated_rows_stay(
    tmp_path: Path, db_url: str
) -> None:
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    f.write_bytes(assistant_line("r1", 11) + assistant_line("r2", 12))
    m = migrator(db_url)
    m.sync(str(tmp_path / "projects"))
    f.rename(folder / "s1.jsonl.1")  # logrotate-style: no longer a transcript
    f.write_bytes(assistant_line("n1", 13))
    result = migrator(db_url).sync(str(tmp_path / "projects"))
    assert result.files_reset == 1 and result.records_inserted == 1
    totals, _ = database_state(m)
    assert totals["output_tokens"] == 11 + 12 + 13


def test_deleted_file_keeps_its_rows_and_status_says_missing(source: Path, db_url: str) -> None:
    m = migrator(db_url)
    m.sync(str(source))
    before = database_state(m)
    victim = max(source.rglob("*.jsonl"), key=lambda p: p.stat().st_size)
    victim.unlink()
    result = migrator(db_url).sync(str(source))
    assert result.success and result.files_deleted == 1 and result.files_changed == 0
    assert database_state(m) == before
    rows, _ = freshness.file_states(m.bridge.tracked_files())
    states = {r["path"]: r["state"] for r in rows}
    assert states.pop(str(victim.relative_to(source))) == "deleted"
    assert set(states.values()) == {"synced"}
    quick = migrator(db_url).sync(str(source))  # stat-only now, and still says so
    assert quick.files_deleted == 1 and quick.files_changed == 0


def test_unreadable_file_is_a_file_error_retried_on_the_next_sync(
    source: Path, db_url: str
) -> None:
    """A transcript replaced by a dangling symlink (as root, chmod cannot make one unreadable)."""
    m = migrator(db_url)
    m.sync(str(source))
    victim, other = sorted(source.rglob("*.jsonl"))[:2]
    saved = victim.read_bytes()
    victim.unlink()
    victim.symlink_to(victim.with_name("nowhere.jsonl"))
    with other.open("ab") as out:
        out.write(assistant_line("while-broken", 9, session_id="o"))
    result = migrator(db_url).sync(str(source))
    assert not result.success
    assert len(result.errors) == 1 and str(victim) in result.errors[0]
    assert "retried on the next sync" in result.errors[0]
    assert result.records_inserted == 1  # the others were synced all the same
    again = migrator(db_url).sync(str(source))  # still broken: reported again, not fatal
    assert not again.success and str(victim) in again.errors[0]
    victim.unlink()
    victim.write_bytes(saved + assistant_line("after-fix", 4, session_id="v"))
    fixed = migrator(db_url).sync(str(source))
    assert fixed.success and fixed.files_changed == 1  # re-read or appended: the inode may recur
    assert_matches_analyser(m, source)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: chmod cannot block it")
def test_permission_denied_is_a_file_error(source: Path, db_url: str) -> None:
    m = migrator(db_url)
    m.sync(str(source))
    victim = sorted(source.rglob("*.jsonl"))[0]
    with victim.open("ab") as out:
        out.write(assistant_line("locked", 9))
    victim.chmod(0)
    try:
        result = migrator(db_url).sync(str(source))
        assert not result.success and str(victim) in " ".join(result.errors)
    finally:
        victim.chmod(0o644)
    assert migrator(db_url).sync(str(source)).success
    assert_matches_analyser(m, source)


def test_directory_in_place_of_a_file_is_a_deletion(source: Path, db_url: str) -> None:
    m = migrator(db_url)
    m.sync(str(source))
    before = database_state(m)
    victim = sorted(source.rglob("*.jsonl"))[0]
    victim.unlink()
    victim.mkdir()
    result = migrator(db_url).sync(str(source))
    assert result.success and result.files_deleted == 1
    assert database_state(m) == before


def test_new_session_and_subagent_files_are_picked_up(tmp_path: Path, db_url: str) -> None:
    folder = _project(tmp_path)
    (folder / "s1.jsonl").write_bytes(assistant_line("a", 1))
    m = migrator(db_url)
    m.sync(str(tmp_path / "projects"))
    (folder / "s2.jsonl").write_bytes(assistant_line("b", 2, session_id="s2"))
    sub = folder / "s1" / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-x.jsonl").write_bytes(assistant_line("c", 3, sidechain=True))
    result = migrator(db_url).sync(str(tmp_path / "projects"))
    assert result.files_new == 2 and result.records_inserted == 2
    _, sessions = database_state(m)
    assert sessions["s1"]["output_tokens"] == 1 + 3 and sessions["s2"]["output_tokens"] == 2
    assert_matches_analyser(m, tmp_path / "projects")


def _dashboard_freshness(url: str) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from context_cleaner.dashboard.app import create_app
    from context_cleaner.dashboard.database_source import DatabaseSource

    with TestClient(create_app(DatabaseSource(url, keep_warm=0))) as client:
        response = client.get("/api/freshness")
    assert response.status_code == 200, response.text
    freshness: dict[str, Any] = response.json()["freshness"]
    return freshness


def test_status_tracks_files_against_the_disk_and_the_lag(tmp_path: Path, db_url: str) -> None:
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    f.write_bytes(assistant_line("a", 5, timestamp="2026-01-05T10:00:00.000Z"))
    m = migrator(db_url)
    assert m.sync(str(tmp_path / "projects")).data_lag_seconds == 0
    newer = assistant_line("b", 6, timestamp="2026-01-05T10:00:42.500Z")
    with f.open("ab") as out:
        out.write(newer + assistant_line("c", 7)[:20])  # one complete line, one torn
    payload = status_payload(m.bridge)
    [row] = payload["files"]
    assert row["state"] == "behind" and row["size"] == f.stat().st_size
    assert row["pending_bytes"] == len(newer) and row["unfinished_bytes"] == 20
    assert row["size"] > row["size_at_sync"]
    assert payload["data_lag_seconds"] == pytest.approx(42.5)
    assert payload["file_counts"]["behind"] == 1
    dashboard = _dashboard_freshness(db_url)  # the dashboard measures the lag the same way
    assert dashboard["data_lag_seconds"] == pytest.approx(42.5)
    assert dashboard["files_behind"] == 1 and dashboard["bytes_behind"] == len(newer)
    assert dashboard["bytes_unfinished"] == 20
    assert dashboard["newest_record_age_seconds"] > 0  # now minus 2026-01-05T10:00:00Z
    result = m.sync(str(tmp_path / "projects"))
    assert result.data_lag_seconds == 0
    payload = status_payload(m.bridge)
    [row] = payload["files"]
    assert row["state"] == "unfinished" and row["unfinished_bytes"] == 20  # the torn line waits
    assert row["pending_bytes"] == 0
    assert payload["data_lag_seconds"] == 0
    assert _dashboard_freshness(db_url)["data_lag_seconds"] == 0
    assert exact(payload["totals"])["records"] == 2


def test_a_file_that_stats_differently_with_nothing_new_is_restamped(
    source: Path, db_url: str
) -> None:
    """A write that lands while a file is read is read too, but its commit keeps the time
    seen before reading: the file then stats differently although every byte is in. It is
    checked once, its stamp recorded, and from then on skipped again (stat calls only)."""
    m = migrator(db_url)
    m.sync(str(source))
    touched = sorted(source.rglob("*.jsonl"))[0]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rows, _ = freshness.file_states(m.bridge.tracked_files())
    assert {r["state"] for r in rows} == {"synced"}  # every byte is in: nothing to do
    result = migrator(db_url).sync(str(source))
    assert result.success and result.files_changed == 0 and result.records_inserted == 0
    rows, _ = freshness.file_states(m.bridge.tracked_files())
    assert {r["state"] for r in rows} == {"synced"}
    cache = sync_cache.load_cache(m.bridge.database, m.bridge.host)
    assert cache is not None and cache.covers(discover([source]).files)


def test_migrate_incremental_changes_since_and_force(tmp_path: Path, db_url: str) -> None:
    folder = _project(tmp_path)
    old, new = folder / "old.jsonl", folder / "new.jsonl"
    old.write_bytes(assistant_line("o", 1, session_id="old"))
    new.write_bytes(assistant_line("n", 2, session_id="new"))
    os.utime(old, (1_700_000_000, 1_700_000_000))
    m = migrator(db_url)
    since = datetime.fromtimestamp(1_700_000_100, UTC)
    result = asyncio.run(
        m.migrate_incremental_changes(since=since, source_directory=str(tmp_path / "projects"))
    )
    assert result.files_checked == 1 and result.files_new == 1
    assert set(database_state(m)[1]) == {"new"}
    result = asyncio.run(m.migrate_incremental_changes(source_directory=str(tmp_path / "projects")))
    assert result.files_new == 1  # the old file now
    forced = asyncio.run(
        m.migrate_incremental_changes(
            force_reanalysis=True, source_directory=str(tmp_path / "projects")
        )
    )
    # Both files read again; the database held every record already: nothing added.
    assert forced.files_changed == 2 and forced.records_inserted == 0
    checked = asyncio.run(
        m.migrate_incremental_changes(
            modified_files_only=False, source_directory=str(tmp_path / "projects")
        )
    )
    assert checked.files_changed == 0 and checked.success
    assert_matches_analyser(m, tmp_path / "projects")


def test_cli_sync_json_and_exit_codes(tmp_path: Path, source: Path, db_url: str) -> None:
    first = run_cli("sync", "--json", "--source-dir", str(source), url=db_url)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["success"] and doc["files_new"] == doc["files_checked"] > 0
    assert doc["data_lag_seconds"] == 0
    again = json.loads(run_cli("sync", "--json", "--source-dir", str(source), url=db_url).stdout)
    assert again["files_changed"] == 0 and again["records_inserted"] == 0
    victim = sorted(source.rglob("*.jsonl"))[0]
    victim.unlink()
    victim.symlink_to(tmp_path / "gone.jsonl")
    broken = run_cli("sync", "--json", "--source-dir", str(source), url=db_url)
    assert broken.returncode == 1
    doc = json.loads(broken.stdout)
    assert not doc["success"] and doc["files_deleted"] == 0
    assert [str(victim) in e for e in doc["errors"]] == [True]


def test_only_paths_stats_and_reads_only_those(source: Path, db_url: str) -> None:
    """Watch mode's syncs: the changed paths only (a deleted one counted, others untouched)."""
    m = migrator(db_url)
    m.sync(str(source))
    before, _ = database_state(m)
    grown, gone, untouched = sorted(source.rglob("*.jsonl"))[:3]
    for path in (grown, untouched):
        with path.open("ab") as out:
            out.write(assistant_line(f"more-{path.stem}", 5, session_id=path.stem))
    gone.unlink()
    paths = {str(grown), str(gone), str(source / "elsewhere.txt")}
    result = migrator(db_url).sync(str(source), only_paths=paths)
    assert result.success and result.files_checked == 1 and result.files_changed == 1
    assert result.files_deleted == 1 and result.records_inserted == 1
    rows, _ = freshness.file_states(m.bridge.tracked_files())
    states = {r["path"]: r["state"] for r in rows}
    assert states[str(untouched.relative_to(source))] == "behind"  # not asked for
    assert migrator(db_url).sync(str(source)).records_inserted == 1
    after, _ = database_state(m)  # the deleted file's rows stay; two new records of 115 tokens
    assert after["total_tokens"] == before["total_tokens"] + 2 * 115
    assert after["records"] == before["records"] + 2


def test_a_long_watch_run_keeps_one_tracking_row_per_file(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Syncs of one run (as ``sync --watch`` makes them) commit a file again and again;
    every few syncs the superseded rows go, and nothing a reader sees changes."""
    from context_cleaner.bridge.token_bridge import query_rows
    from context_cleaner.migration import incremental

    monkeypatch.setattr(incremental, "COMPACT_EVERY", 3)
    folder = _project(tmp_path)
    f, other = folder / "s1.jsonl", folder / "s2.jsonl"
    other.write_bytes(assistant_line("o", 1, session_id="s2"))
    m = migrator(db_url)
    first = m.sync(str(tmp_path / "projects"))  # its own run: s2 is committed by it
    run = incremental.SyncRun()

    def rows() -> dict[tuple[str, str], int]:
        with m.bridge.database.session() as client:
            found = query_rows(
                client,
                "SELECT migration_id, file_path, count() FROM migration_file_tracking "
                "GROUP BY migration_id, file_path",
            )
        return {(mid, path): n for mid, path, n in found}

    for n in range(1, 8):
        with f.open("ab") as out:
            out.write(assistant_line(f"m{n}", n))
        result = incremental.run_sync(
            m.bridge, incremental.SyncRequest([str(tmp_path / "projects")]), run=run
        )
        assert result.records_inserted == 1
        kept = rows()[(run.migration_id, "-home-u-proj/s1.jsonl")]
        assert kept == (1 if n % 3 == 0 else n % 3 + (n > 3)), (n, kept)
    assert rows()[(first.migration_id, "-home-u-proj/s2.jsonl")] == 1
    [state] = [t for t in m.bridge.tracked_files() if t.file_path.endswith("s1.jsonl")]
    assert state.committed_offset == f.stat().st_size
    assert_matches_analyser(m, tmp_path / "projects")
    assert m.sync(str(tmp_path / "projects")).files_changed == 0  # nothing re-read


def test_a_syncs_working_memory_is_what_it_adds_once_connected(tmp_path: Path, db_url: str) -> None:
    """A sync records its working memory as a migration does: what its process tree grew by
    after connecting. It recorded its whole resident memory before (the engine's library
    included): ``status`` said "peak 74 MB private (working 262)" for a one-line sync."""
    folder = _project(tmp_path)
    f = folder / "s1.jsonl"
    f.write_bytes(assistant_line("a", 5))
    m = migrator(db_url)
    assert m.run(str(tmp_path / "projects")).validation_passed
    with f.open("ab") as out:
        out.write(assistant_line("b", 6))
    result = m.sync(str(tmp_path / "projects"))
    assert result.success and result.records_inserted == 1
    run = status_payload(m.bridge)["migration"]
    assert run["run_kind"] == "sync" and run["migration_id"] == result.migration_id
    # The private peak holds what the run added and the engine's own anonymous memory.
    assert 0 <= run["working_memory_mb"] < run["peak_memory_mb"], run

"""A sync reads the tracking rows once, and its stat cache never skips data: after its own
commits it knows the table from the states it read and the commits it wrote, unless
another writer came in between (then it reads the table again). Real chDB in tmp_path."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.discovery import discover
from context_cleaner.bridge import TrackedFile, bump_generation, read_generation, watch_writes
from context_cleaner.bridge.database import Database
from context_cleaner.migration import incremental, sync_cache
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.rollback import rollback_migration

from .helpers import (
    assert_matches_analyser,
    assistant_line,
    cli,
    cli_env,
    database_state,
    exact,
    migrator,
)


def _appended(source: Path, n: int) -> Path:
    """Lines with new message ids appended to one transcript."""
    target = sorted(source.rglob("*.jsonl"))[0]
    with target.open("ab") as out:
        for i in range(n):
            out.write(assistant_line(f"appended-{i}", 7 + i, session_id="appended"))
    return target


def _count_reads(m: HistoricalDataMigrator) -> list[int]:
    """Count the bridge's reads of the whole tracking table (the real read still runs)."""
    calls = [0]
    real = m.bridge.tracked_files

    def counted(paths: Collection[str] | None = None) -> list[TrackedFile]:
        calls[0] += paths is None
        return real(paths)

    m.bridge.tracked_files = counted  # type: ignore[method-assign]
    return calls


def _cache_is_the_table(m: HistoricalDataMigrator) -> None:
    """The stat cache holds exactly the stamps the tracking table says, at its generation."""
    cache = sync_cache.load_cache(m.bridge.database, m.bridge.host)
    assert cache is not None, "a sync that read files leaves a trusted cache"
    truth = {}
    for t in m.bridge.tracked_files():
        stamp = sync_cache.committed_stamp(t)
        if stamp is not None:
            truth[sync_cache.file_key(t.source_root, t.file_path)] = stamp
    assert cache.files == truth


@pytest.mark.slow
def test_an_append_reads_only_the_changed_files_tracking_rows(source: Path, db_url: str) -> None:
    migrator(db_url).sync(str(source))
    _appended(source, 3)
    m = migrator(db_url)
    reads = _count_reads(m)
    result = m.sync(str(source))
    assert result.files_changed == 1 and result.records_inserted == 3
    assert reads[0] == 0  # the stat cache vouched for the others: only this file's rows
    _cache_is_the_table(m)
    assert_matches_analyser(m, source)
    again = migrator(db_url).sync(str(source))  # the cache answers: nothing new
    assert again.files_changed == 0 and again.success


@pytest.mark.slow
def test_more_changed_files_than_lookups_read_the_table_once(
    source: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrator(db_url).sync(str(source))
    for f in sorted(source.rglob("*.jsonl"))[:2]:
        with f.open("ab") as out:
            out.write(assistant_line(f"more-{f.stem}", 9, session_id="more"))
    monkeypatch.setattr(incremental, "MAX_LOOKUPS", 1)
    m = migrator(db_url)
    reads = _count_reads(m)
    result = m.sync(str(source))
    assert result.files_changed == 2 and result.records_inserted == 2
    assert reads[0] == 1
    _cache_is_the_table(m)
    assert_matches_analyser(m, source)


@pytest.mark.slow
def test_without_a_cache_the_table_is_read_once(source: Path, db_url: str) -> None:
    m = migrator(db_url)
    m.sync(str(source))
    cache = sync_cache.cache_path(m.bridge.database)
    assert cache is not None
    cache.unlink()
    _appended(source, 2)
    reads = _count_reads(m)
    result = m.sync(str(source))
    assert result.files_changed == 1 and result.records_inserted == 2
    assert reads[0] == 1  # before planning; then updated with the sync's own commits
    _cache_is_the_table(m)
    assert_matches_analyser(m, source)


def _sync_with(
    db_url: str, source: Path, between: Callable[[], None]
) -> tuple[HistoricalDataMigrator, int]:
    """Sync ``source`` with ``between`` run once after its first committed batch, in
    another thread (as another writer would: its token is not this sync's)."""
    done: list[bool] = []

    def should_stop() -> bool:
        if not done:
            done.append(True)
            other = threading.Thread(target=between)
            other.start()
            other.join()
        return False

    m = migrator(db_url)
    reads = _count_reads(m)
    result = m.sync(str(source), should_stop=should_stop)
    assert done and result.success
    return m, reads[0]


@pytest.mark.slow
def test_a_rollback_in_between_leaves_no_cache_that_skips_data(source: Path, db_url: str) -> None:
    first = migrator(db_url).sync(str(source))
    _appended(source, 2)

    def rollback() -> None:  # every row of the first sync goes
        rollback_migration(migrator(db_url).bridge, first.migration_id, "data-only", None)

    m, reads = _sync_with(db_url, source, rollback)
    _cache_is_the_table(m)
    cache = sync_cache.load_cache(m.bridge.database, m.bridge.host)
    assert cache is not None and not cache.covers(discover([source]).files)
    again = migrator(db_url).sync(str(source))  # plans, and reads what the rollback removed
    assert again.files_changed >= again.files_checked - 1 and again.records_inserted > 0
    assert_matches_analyser(m, source)
    assert reads == 1  # the watch saw the other writer: the table was read again


@pytest.mark.slow
def test_another_process_committing_in_between_is_in_the_cache(
    tmp_path: Path, source: Path, db_url: str
) -> None:
    """A ``sync`` process waits for the database while this sync commits: it gets it between
    this sync's units (the lock is handed over when someone waits) and commits a file of
    another root; the cache written after is the table's, the table read again."""
    other_root = tmp_path / "other" / "projects"
    (other_root / "-p").mkdir(parents=True)
    (other_root / "-p" / "o.jsonl").write_bytes(assistant_line("other", 11, session_id="o"))
    migrator(db_url).sync(str(source))
    _appended(source, 2)
    m = migrator(db_url)
    reads = _count_reads(m)
    waiting: list[subprocess.Popen[bytes]] = []

    def should_stop() -> bool:
        if not waiting:  # after the first committed unit: another process asks for the lock
            waiting.append(
                subprocess.Popen(
                    cli("sync", "--source-dir", str(other_root)),
                    env=cli_env(db_url),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
            )
            deadline = time.monotonic() + 60
            while not m.bridge.database.someone_waiting():
                assert waiting[0].poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            with m.bridge.database.session():  # ends with a waiter: the lock is handed over
                pass
            assert waiting[0].wait(timeout=120) == 0  # it committed before this sync goes on
        return False

    result = m.sync(str(source), should_stop=should_stop)
    assert result.success and waiting
    during = reads[0]
    _cache_is_the_table(m)
    report = EnhancedTokenCounter([str(source), str(other_root)], workers=1).analyze()
    assert database_state(m)[0] == exact(report.totals.model_dump())
    assert during == 1  # the other process's commit was seen: the table was read again


def test_the_watch_is_settled_only_by_this_threads_own_writes(tmp_path: Path) -> None:
    database = Database(f"chdb://{tmp_path}/db")
    bump_generation(database)
    with watch_writes(database, read_generation(database)) as watch:
        assert watch is not None
        bump_generation(database)
        bump_generation(database)
        assert watch.settled(read_generation(database))
        other = threading.Thread(target=bump_generation, args=(database,))
        other.start()
        other.join()
        assert not watch.settled(read_generation(database))  # the last token is not ours
        bump_generation(database)  # ours again, but it replaced a token it never saw
        assert not watch.settled(read_generation(database))


def test_a_watch_from_no_token_is_never_settled(tmp_path: Path) -> None:
    database = Database(f"chdb://{tmp_path}/db")
    with watch_writes(database, read_generation(database)) as watch:  # "" before any write
        assert watch is not None
        bump_generation(database)
        assert not watch.settled(read_generation(database))
    with watch_writes(Database("http://127.0.0.1:1/x"), None) as none:
        assert none is None

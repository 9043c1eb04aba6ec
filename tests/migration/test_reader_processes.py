"""The reader processes of a migration: how they start, their priority, and that they end
with their run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from context_cleaner.bridge.lock import FileLock, lock_path_for
from context_cleaner.migration.readers import READER_NICENESS
from context_cleaner.testing.transcripts import generate_corpus

from .helpers import REPO, cli_command, cli_env

pytestmark = pytest.mark.slow

_START_METHOD_PROBE = """
import threading
from context_cleaner.migration.readers import worker_start_method
seen = [worker_start_method()]
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
seen.append(worker_start_method())
stop.set()
thread.join()
from context_cleaner.bridge.connection import import_client_library
import_client_library(embedded=True)
seen.append(worker_start_method())
print(" ".join(seen))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="readers are forked on Linux only")
def test_readers_are_forked_only_while_this_process_is_single_threaded_without_engine() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _START_METHOD_PROBE],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # Alone: fork. With another thread running: spawn. With the engine loaded: spawn.
    assert out.stdout.split() == ["fork", "spawn", "spawn"]


@pytest.mark.skipif(sys.platform != "linux", reason="forked readers and PDEATHSIG are Linux's")
def test_a_sigkilled_migration_leaves_no_reader_behind_and_the_database_free(
    tmp_path: Path,
) -> None:
    source = tmp_path / "corpus"
    generate_corpus(source, 12_000_000, seed=5)  # above the 8 MB that starts several readers
    database = tmp_path / "db"
    proc = subprocess.Popen(
        cli_command(
            "migrate",
            "--source-dir",
            str(source),
            "--parallel-workers",
            "2",
            "--batch-size",
            "2",
            "--commit-every",
            "0",
        ),
        env=cli_env(f"chdb://{database}"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        run = psutil.Process(proc.pid)
        readers: list[psutil.Process] = []
        deadline = time.monotonic() + 60
        while len(readers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            readers = run.children()
            time.sleep(0.005)
        assert len(readers) == 2, "the migration did not start two reader processes"
        # Forked, not spawned: a spawned reader runs `python -c "from multiprocessing..."`.
        assert all(r.cmdline() == run.cmdline() for r in readers), [r.cmdline() for r in readers]
        # Nicer than the run, whose commits are the critical path (as soon as they start).
        wanted = min(run.nice() + READER_NICENESS, 19)
        while time.monotonic() < deadline and any(r.nice() != wanted for r in readers):
            time.sleep(0.005)
        assert [r.nice() for r in readers] == [wanted, wanted]

        os.kill(proc.pid, signal.SIGKILL)  # the run alone, as the OOM killer would
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(readers, timeout=10)
        assert not alive, f"readers outlived their run: {[r.pid for r in alive]}"

        # Nothing holds the database: another process takes its lock at once.
        lock = FileLock(lock_path_for(database))
        lock.acquire(timeout=5)
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_readers_read_ahead_by_bytes_with_a_floor_of_batches_per_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small batches: as many in flight as fit in the read-ahead bytes (the workers keep
    reading while a unit commits); large ones: the floor per worker, whatever their size.
    Results come back whole and in order either way."""
    from context_cleaner.analysis.discovery import discover
    from context_cleaner.migration import readers
    from context_cleaner.migration.planning import batches, plan_work

    generate_corpus(tmp_path, 0, seed=3, target_files=20)
    items = plan_work(discover([tmp_path / "projects"]).files, {}).items
    one_file_batches = batches(items, 1)
    smallest = min(sum(i.pending_bytes for i in b) for b in one_file_batches)
    assert len(one_file_batches) > 2 * readers.IN_FLIGHT_PER_WORKER
    expected = [len(b) for b in one_file_batches]
    for ahead, floor_only in ((2**40, False), (smallest, True)):
        monkeypatch.setattr(readers, "READ_AHEAD_BYTES", ahead)
        with readers.BatchReader(2) as reader:
            reader.prefetch(one_file_batches)
            in_flight = len(reader._pending)
            got = [(i, len(scan.files)) for i, scan, _ in reader.read(one_file_batches)]
        assert got == list(enumerate(expected))
        if floor_only:
            assert in_flight == 2 * readers.IN_FLIGHT_PER_WORKER
        else:
            assert in_flight == len(one_file_batches)


def test_a_reader_discovers_at_the_runs_priority_and_reads_nicer(tmp_path: Path) -> None:
    """``BatchReader.discover`` (a fresh migration's discovery, which the run waits for) runs
    on a reader at the run's priority and finds what discovery here finds; the readers
    lower their priority from their first batch on."""
    from context_cleaner.analysis.discovery import discover
    from context_cleaner.migration import readers
    from context_cleaner.migration.planning import batches, plan_work

    generate_corpus(tmp_path, 0, seed=5, target_files=12)
    root = tmp_path / "projects"
    here = discover([root])
    own = psutil.Process().nice()
    before = {p.pid for p in psutil.Process().children()}
    with readers.BatchReader(2) as reader:
        found = reader.discover([root]).result(timeout=60)
        workers = [p for p in psutil.Process().children() if p.pid not in before]
        assert len(workers) == 2
        assert [w.nice() for w in workers] == [own, own]
        plan = batches(plan_work(found.files, {}).items, 1)
        read = [(i, [s.relative_path for s in scan.files]) for i, scan, _ in reader.read(plan)]
        # Each worker that read a batch is nicer (one may not have read any of these).
        nicer = min(own + readers.READER_NICENESS, 19)
        assert nicer in {w.nice() for w in workers} <= {own, nicer}
    assert found.files == here.files and found.roots == here.roots
    assert [f.path_str for f in found.files] == [f.path_str for f in here.files]
    assert read == [(i, [b[0].file.relative_path]) for i, b in enumerate(plan)]


def test_the_readers_end_before_the_runs_rollups_and_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration's memory peaks in its last work (the rollups, the validation): its
    readers have nothing left to read by then and have ended, their memory freed (a
    validated migration of 20,000 small files peaked ~10 MiB lower, docs/benchmarks.md).
    The validation itself runs as always and passes."""
    from context_cleaner.bridge import Database, EnhancedTokenDatabaseBridge
    from context_cleaner.migration import validator
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

    generate_corpus(tmp_path, 0, seed=7, target_files=30)
    seen: list[list[int]] = []
    real = validator.validate_run

    def watched(*args: object, **kwargs: object) -> object:
        seen.append([p.pid for p in psutil.Process().children(recursive=True)])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(validator, "validate_run", watched)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    bridge = EnhancedTokenDatabaseBridge(Database(f"chdb://{tmp_path}/db"))
    migrator = HistoricalDataMigrator(bridge_service=bridge, parallel_workers=2)
    readers_seen: list[int] = []
    progress = lambda _p: readers_seen.extend(  # noqa: E731
        p.pid for p in psutil.Process().children() if p.pid not in before
    )
    result = migrator.run(str(tmp_path / "projects"), progress_callback=progress)
    assert result.validation_passed and result.total_records_inserted > 0
    assert readers_seen, "the run read on worker processes"
    assert len(seen) == 1
    assert [pid for pid in seen[0] if pid not in before] == []

"""The inter-process lock: bounded waits, holders named, sessions shared in a process,
writers before readers that yield (the dashboard)."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bridge_helpers import Holder

from context_cleaner.bridge import Database, DatabaseLockedError, FileLock, lock_path_for
from context_cleaner.bridge.lock import (
    PROCESS_LOCKS,
    read_holder,
    someone_waiting,
    writer_waiting,
)


def test_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    assert lock_path_for(tmp_path / "db") == tmp_path / "db.lock"
    assert Database(f"chdb://{tmp_path}/db").lock_path == tmp_path / "db.lock"
    assert Database("chdb://memory").lock_path is None
    assert Database("http://h:8123/db").lock_path is None


def test_holder_note_written_and_cleared(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = FileLock(path)
    lock.acquire(timeout=0)
    note = json.loads(path.read_text())
    assert note["pid"] == os.getpid() and note["command"]
    assert read_holder(path).pid == os.getpid()
    lock.release()
    assert path.read_text() == ""
    assert read_holder(path).pid is None
    lock.release()  # twice is harmless


def test_second_lock_in_same_process_times_out_naming_us(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with FileLock(path):
        started = time.monotonic()
        with pytest.raises(DatabaseLockedError) as info:
            FileLock(path, description="/data/db").acquire(timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 2
    assert info.value.holder_pid == os.getpid()
    assert f"process {os.getpid()}" in str(info.value)
    assert "/data/db" in str(info.value)


def test_waiter_gets_the_lock_when_another_process_releases(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    path = tmp_path / "x.lock"
    a = holder("flock", str(path))
    a.wait_ready()
    threading.Timer(0.5, a.release).start()
    started = time.monotonic()
    with FileLock(path) as lock:
        assert lock.held
        assert time.monotonic() - started >= 0.4
    assert a.proc.wait(timeout=30) == 0  # it released, then exits (later on a loaded machine)


def test_a_busy_holder_hands_the_lock_to_a_waiter(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    """A holder that releases and retakes the lock in a loop must not starve a waiter:
    waiters poll, so the holder lets an announced waiter in before taking it again."""
    path = tmp_path / "x.lock"
    busy = holder("loop", str(path), hold=60.0)
    busy.wait_ready()
    for _ in range(3):  # again and again, while the other process keeps looping
        with FileLock(path) as lock:
            assert lock.held
            assert busy.proc.poll() is None  # not the end of its loop: it handed over
            time.sleep(0.1)
    busy.ready.with_suffix(".stop").touch()
    out, _err = busy.proc.communicate(timeout=30)
    assert busy.proc.returncode == 0 and int(out) > 3  # and it went on working in between


def test_waiter_times_out_naming_the_other_process(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    path = tmp_path / "x.lock"
    a = holder("flock", str(path))
    a.wait_ready()
    with pytest.raises(DatabaseLockedError) as info:
        FileLock(path).acquire(timeout=0.5)
    assert info.value.holder_pid == a.pid
    assert f"process {a.pid}" in str(info.value)
    assert "_holder.py flock" in info.value.holder_command
    a.release()


def test_lock_is_shared_by_sessions_of_one_process(db_url: str) -> None:
    db = Database(db_url, lock_timeout=1)
    assert db.lock_path is not None
    results: list[int] = []
    with db.session() as outer:
        assert PROCESS_LOCKS.users(db.lock_path) == 1
        with db.session() as inner:  # nested: same flock, another engine handle
            results.append(inner.query("SELECT 1").result_rows[0][0])

        def other_thread() -> None:
            with db.session() as c:
                results.append(c.query("SELECT 2").result_rows[0][0])

        t = threading.Thread(target=other_thread)
        t.start()
        t.join(10)
        results.append(outer.query("SELECT 3").result_rows[0][0])
    assert results == [1, 2, 3]
    assert PROCESS_LOCKS.users(db.lock_path) == 0
    assert lock_path_for(db.url.path).read_text() == ""


def test_session_waits_for_another_process_then_gets_in(
    db_url: str, holder: Callable[..., Holder]
) -> None:
    a = holder("session", db_url)
    a.wait_ready()
    threading.Timer(0.7, a.release).start()
    started = time.monotonic()
    with Database(db_url, lock_timeout=30).session() as client:
        waited = time.monotonic() - started
        assert client.query("SELECT 42").result_rows == [(42,)]
    assert waited >= 0.6
    assert a.proc.wait(timeout=30) == 0  # it released, then exits (later on a loaded machine)


def test_session_times_out_naming_the_holding_process(
    db_url: str, holder: Callable[..., Holder]
) -> None:
    a = holder("session", db_url)
    a.wait_ready()
    db = Database(db_url, lock_timeout=0.5)
    with pytest.raises(DatabaseLockedError) as info, db.session():
        pass
    assert info.value.holder_pid == a.pid
    message = str(info.value)
    assert f"process {a.pid}" in message and "_holder.py session" in message
    assert db.url.path in message and "CONTEXT_CLEANER_LOCK_TIMEOUT" in message
    a.release()
    with db.session() as client:  # free again once the holder has gone
        assert client.query("SELECT 1").result_rows == [(1,)]


def test_lock_timeout_from_environment(tmp_path: Path) -> None:
    env = {"CONTEXT_CLEANER_LOCK_TIMEOUT": "2.5"}
    assert Database(f"chdb://{tmp_path}/db", environ=env).lock_timeout == 2.5
    assert Database(f"chdb://{tmp_path}/db", environ={}).lock_timeout == 30
    assert Database(f"chdb://{tmp_path}/db", lock_timeout=1, environ=env).lock_timeout == 1
    from context_cleaner.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CONTEXT_CLEANER_LOCK_TIMEOUT"):
        Database(f"chdb://{tmp_path}/db", environ={"CONTEXT_CLEANER_LOCK_TIMEOUT": "soon"})


def test_forked_child_does_not_release_the_parents_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with PROCESS_LOCKS.hold(path, timeout=1):
        pid = os.fork()
        if pid == 0:  # child: forgets the inherited lock without unlocking it
            os._exit(0 if PROCESS_LOCKS.users(path) == 0 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with pytest.raises(DatabaseLockedError):
            FileLock(path).acquire(timeout=0)
    FileLock(path).acquire(timeout=0)


def test_overlapping_readers_do_not_starve_a_writer(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    """A dashboard polled by several clients always has a request in progress; its shared
    hold used to be passed from request to request and never released, so a sync waited
    its whole timeout. Yielding readers let a waiting writer in between their requests."""
    path = tmp_path / "x.lock"
    readers = holder("readers", str(path), hold=120.0)
    readers.wait_ready()
    for _ in range(3):  # again and again, while the readers keep reading
        with FileLock(path) as lock:
            assert lock.held
            assert readers.proc.poll() is None
            time.sleep(0.1)
    readers.ready.with_suffix(".stop").touch()
    out, err = readers.proc.communicate(timeout=60)
    assert readers.proc.returncode == 0, err
    assert int(out) > 4  # and they went on reading in between


def test_a_yielding_process_leaves_the_free_lock_to_a_waiting_writer(
    tmp_path: Path, holder: Callable[..., Holder]
) -> None:
    path = tmp_path / "x.lock"
    first = holder("flock", str(path), name="first")
    first.wait_ready()
    writer = holder("flock", str(path), name="writer", hold=0.5)
    deadline = time.monotonic() + 30
    while not writer_waiting(path):  # the writer has announced itself
        assert time.monotonic() < deadline, "the writer never waited"
        time.sleep(0.01)
    assert someone_waiting(path)
    got: list[bool] = []

    def reader() -> None:
        lock = FileLock(path)
        lock.acquire(timeout=60, yield_to_writers=True)
        got.append(writer.ready.exists())  # the writer had its turn first
        lock.release()

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)  # the reader is waiting too (announced, but not as a writer)
    assert writer_waiting(path) and not got
    first.release()
    t.join(60)
    assert got == [True]
    writer.proc.communicate(timeout=30)
    assert writer.proc.returncode == 0


def test_a_writer_keeps_its_turn_against_yielding_readers_only(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within a run (Database.held) a writer hands the database over after a unit of work
    when another writer waits, and after WRITER_TURN seconds when only yielding readers do."""
    from context_cleaner.bridge import database as database_module

    writer = Database(db_url, lock_timeout=5)
    dashboard = Database(db_url, lock_timeout=5, yield_to_writers=True)
    assert writer.lock_path is not None
    announce = [
        os.open(f"{writer.lock_path}.{suffix}", os.O_RDWR | os.O_CREAT)
        for suffix in ("wait", "writer")
    ]
    try:
        with writer.session():
            assert not writer.someone_waiting() and not dashboard.someone_waiting()
            fcntl.flock(announce[0], fcntl.LOCK_SH)  # a yielding reader waits
            monkeypatch.setattr(database_module, "WRITER_TURN", 3600.0)
            assert not writer.someone_waiting()  # within its turn
            assert dashboard.someone_waiting()  # a yielding process lets go at once
            monkeypatch.setattr(database_module, "WRITER_TURN", 0.0)
            assert writer.someone_waiting()  # its turn is over
            monkeypatch.setattr(database_module, "WRITER_TURN", 3600.0)
            fcntl.flock(announce[1], fcntl.LOCK_SH)  # a writer waits: no turn
            assert writer.someone_waiting() and writer.writer_waiting()
    finally:
        for fd in announce:
            os.close(fd)


def test_a_reader_unit_steps_aside_while_a_writer_waits(
    db_url: str, holder: Callable[..., Holder]
) -> None:
    """Database.reserve of a yielding database: with its own hold in use and a writer
    waiting, a new unit does not join; it waits until the writer has had the database."""
    dashboard = Database(db_url, lock_timeout=60, yield_to_writers=True)
    assert dashboard.lock_path is not None
    order: list[str] = []
    with dashboard.reserve():  # a request in progress
        writer = holder("session", db_url, name="writer", hold=0.3)
        deadline = time.monotonic() + 30
        while not writer_waiting(dashboard.lock_path):
            assert time.monotonic() < deadline, "the writer never waited"
            time.sleep(0.01)

        def new_request() -> None:
            with dashboard.reserve(), dashboard.session() as client:
                order.append("writer first" if writer.ready.exists() else "joined")
                client.query("SELECT 1")

        t = threading.Thread(target=new_request)
        t.start()
        time.sleep(0.3)
        assert order == []  # not joined while the writer waits
    t.join(60)
    assert order == ["writer first"]
    writer.proc.communicate(timeout=30)
    assert writer.proc.returncode == 0

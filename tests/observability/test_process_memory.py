"""The memory of a process tree: private memory is what the processes hold themselves,
counted once; pages mapped from files are resident but not private."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from context_cleaner.observability.process_memory import sample_tree, tree_pids

MB = 2**20

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc counters are Linux's")

_HOLD = """
import mmap, os, sys, time
kind, size = sys.argv[1], int(sys.argv[2])
if kind == "anon":
    held = bytearray(os.urandom(1)) * size          # written: anonymous, private
elif kind == "file":
    f = open(sys.argv[3], "rb")
    held = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sum(held[i] for i in range(0, len(held), 4096))  # read: resident file pages
elif kind == "fork":                                 # written, then shared with a child
    held = bytearray(os.urandom(1)) * size
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


@contextmanager
def _holding(*args: str) -> Iterator[int]:
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, *args], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            yield proc.pid
        finally:
            for pid in reversed(tree_pids(proc.pid)):
                os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_written_memory_is_private_and_resident() -> None:
    with _holding("anon", str(64 * MB)) as pid:
        sample = sample_tree(pid)
    assert sample.processes == 1
    assert sample.private >= 64 * MB
    assert sample.resident >= sample.private


def test_pages_mapped_from_a_file_are_resident_not_private(tmp_path: Path) -> None:
    data = tmp_path / "mapped.bin"
    data.write_bytes(b"x" * (64 * MB))
    with _holding("file", "0", str(data)) as pid:
        sample = sample_tree(pid)
    assert sample.resident >= 64 * MB
    assert sample.private < 32 * MB  # the interpreter's own heap only


def test_pages_a_forked_child_shares_with_its_parent_are_counted_once() -> None:
    with _holding("fork", str(64 * MB)) as pid:
        sample = sample_tree(pid)
        assert len(tree_pids(pid)) == 2
    assert sample.processes == 2
    assert 64 * MB <= sample.private < 96 * MB  # not twice the 64 MB
    assert sample.resident >= 128 * MB  # each process's RSS counts the shared pages

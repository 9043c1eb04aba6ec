"""Worker processes die with the process that started them; only regular files are read.

Real processes, real signals, a real FIFO: nothing here is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from context_cleaner.analysis.discovery import discover
from context_cleaner.analysis.scan import SkipLog, scan_file
from context_cleaner.migration.freshness import last_usage_line
from context_cleaner.migration.planning import head_hash
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, usage

# The workers' function lives in a module of its own: spawned workers never import the
# driver's __main__ (analysis.processes.pool_context), so they could not find it there.
SLOW = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    def slow(tasks, max_line_bytes):
        Path(os.environ["CC_TEST_PIDS"], str(os.getpid())).write_text("")
        time.sleep(120)
    """
)

DRIVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from context_cleaner.analysis import scan
    from context_cleaner.analysis.discovery import discover
    from slow_scan import slow

    if __name__ == "__main__":
        scan.PARALLEL_MIN_BYTES = 0
        scan.scan_tasks_encoded = slow
        files = discover([Path(sys.argv[1])]).files
        scan.scan_files_parallel(files, workers=2, start_method=sys.argv[3])
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _transcripts(root: Path, count: int) -> None:
    project = root / "-home-u-proj"
    project.mkdir(parents=True)
    for i in range(count):
        line = assistant(
            msg_id=f"msg_{i}", request_id=f"req_{i}", usage_obj=usage(10, 5), ts_ms=BASE_MS + i
        )
        (project / f"0000000{i}-0000-4000-8000-000000000000.jsonl").write_bytes(dumps(line) + b"\n")


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal is Linux's")
@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_analysis_workers_die_with_a_sigkilled_parent(tmp_path: Path, start_method: str) -> None:
    """SIGKILL the process that started the analysis pool: its busy workers end too."""
    _transcripts(tmp_path / "projects", 4)
    pids = tmp_path / "pids"
    pids.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    (tmp_path / "slow_scan.py").write_text(SLOW)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(tmp_path / "projects"), str(pids), start_method],
        env={**os.environ, "CC_TEST_PIDS": str(pids)},
    )
    try:
        assert _wait_for(lambda: len(os.listdir(pids)) >= 2, 60), "the workers never started"
        workers = [int(p) for p in os.listdir(pids)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_for(lambda: not any(_alive(p) for p in workers), 10), (
            f"workers {workers} outlived their parent"
        )
    finally:
        proc.kill()
        for p in os.listdir(pids):
            if _alive(int(p)):
                os.kill(int(p), signal.SIGKILL)


def _within(seconds: float, call: Callable[[], object]) -> object:
    """``call()``'s result, failing the test instead of hanging when it blocks."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"blocked for {seconds} s"
    return out[0]


def test_a_transcript_swapped_for_a_fifo_is_skipped_not_waited_on(tmp_path: Path) -> None:
    """Discovered as a regular file, replaced by a FIFO before it is read: every reader
    of the file (line scan, head hash, tail probe) returns at once, the scan names why."""
    _transcripts(tmp_path, 2)
    files = discover([tmp_path]).files
    victim = files[0]
    victim.path.unlink()
    os.mkfifo(victim.path)

    stats = _within(10, lambda: scan_file(victim, lambda r: None, SkipLog()))
    assert "FIFO" in stats.error  # type: ignore[attr-defined]
    assert stats.usage_lines == 0  # type: ignore[attr-defined]
    assert _within(10, lambda: head_hash(str(victim.path), 16)) == ""
    assert _within(10, lambda: last_usage_line(victim)) is None

    kept: list[object] = []
    good = scan_file(files[1], kept.append, SkipLog())
    assert not good.error and len(kept) == 1


@pytest.mark.slow
def test_migrate_skips_a_fifo_and_counts_the_rest(tmp_path: Path) -> None:
    """A FIFO under a root is never opened by a migration; the regular files are counted."""
    root = tmp_path / "projects"
    _transcripts(root, 3)
    os.mkfifo(root / "-home-u-proj" / "ffffffff-0000-4000-8000-000000000000.jsonl")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "context_cleaner",
            "migrate",
            "--source-dir",
            str(root),
            "--clickhouse-url",
            f"chdb://{tmp_path / 'db'}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert '"total_tokens": 45' in done.stdout or '"tokens_migrated": 45' in done.stdout, (
        done.stdout[:2000]
    )

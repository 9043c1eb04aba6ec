"""However a command dies, no process it started lives on.

Each command runs in a session of its own; it is SIGKILLed at several moments of its
work (reading on the analysis pool, reading on the migration readers, validating) and
every process of that session must be gone soon after: none is left waiting, with
parent 1, on a pipe or a queue nobody will ever read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from context_cleaner.analysis.scan import PARALLEL_MIN_BYTES

from .helpers import REPO, cli_command, cli_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's"),
]

LINE = (
    '{{"type":"assistant","sessionId":"s{s}","requestId":"req_{i}","timestamp":'
    '"2026-02-1{d}T10:00:00.000Z","isSidechain":false,"message":{{"id":"msg_{i}","model":'
    '"claude-sonnet-4-5-20250929","type":"message","role":"assistant","content":[{{"type":'
    '"text","text":"{pad}"}}],"usage":{{"input_tokens":3,"output_tokens":{i},'
    '"cache_creation_input_tokens":7,"cache_read_input_tokens":11}}}}}}\n'
)


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Above the size at which the analysis uses a process pool, in 40 files."""
    root = tmp_path_factory.mktemp("big") / "projects"
    pad = "x" * 600
    per_file = PARALLEL_MIN_BYTES // 40 // 800 + 200
    for f in range(40):
        folder = root / f"-home-u-p{f % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        start = f * per_file
        lines = [LINE.format(s=f, i=i, d=i % 10, pad=pad) for i in range(start, start + per_file)]
        (folder / f"0000{f:04d}-0000-4000-8000-000000000000.jsonl").write_text("".join(lines))
    return root


def _session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return found


def _kill_after(args: list[str], env: dict[str, str], delay: float) -> None:
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    sid = proc.pid
    try:
        time.sleep(delay)
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        left = _session_processes(sid)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = _session_processes(sid)
        assert not left, (
            f"{args[3:5]} killed after {delay} s (children then: {children}) left "
            f"{[(p.pid, p.cmdline()[:4]) for p in left]}"
        )
    finally:
        for p in _session_processes(sid):
            p.kill()


@pytest.mark.parametrize("delay", [0.6, 1.2, 2.0])
def test_analyze_leaves_no_worker(big_corpus: Path, delay: float) -> None:
    args = cli_command("analyze", "--source-dir", str(big_corpus), "--workers", "2", "--json")
    _kill_after(args, cli_env(), delay)


@pytest.mark.parametrize("delay", [0.8, 1.6, 3.0])
def test_migrate_leaves_no_reader(big_corpus: Path, tmp_path: Path, delay: float) -> None:
    args = cli_command(
        "migrate", "--source-dir", str(big_corpus), "--parallel-workers", "2", "--json"
    )
    _kill_after(args, cli_env(f"chdb://{tmp_path / 'db'}"), delay)


def test_validate_leaves_no_worker(big_corpus: Path, tmp_path: Path) -> None:
    """Killed while it re-reads everything (--full-validation) on the analysis pool."""
    env = cli_env(f"chdb://{tmp_path / 'db'}")
    done = subprocess.run(
        cli_command("migrate", "--source-dir", str(big_corpus), "--no-validate", "--json"),
        env=env,
        capture_output=True,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for delay in (1.0, 2.0):
        args = cli_command(
            "validate", "--source-dir", str(big_corpus), "--full-validation", "--json"
        )
        _kill_after(args, env, delay)

"""Helpers for the dashboard tests: CLI subprocesses, a real dashboard server, free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"
URL_ENV = "CONTEXT_CLEANER_CLICKHOUSE_URL"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for ``context-cleaner`` subprocesses: this checkout, no Prefect server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "CONTEXT_CLEANER_DASHBOARD_TOKEN", URL_ENV)
    }
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "context_cleaner", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``context-cleaner dashboard`` as a real uvicorn server in a subprocess."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "context_cleaner", "dashboard", "--port", str(self.port), *args],
            env=cli_env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"dashboard exited ({self.proc.returncode}): {out}{err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"dashboard did not listen on {self.port} within {timeout} s")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        _out, err = self.proc.communicate()
        return err


def migrate_copy(projects_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the transcripts and a database migrated from it by the real CLI."""
    copy = tmp_path / "projects"
    shutil.copytree(projects_dir, copy)
    url = f"chdb://{tmp_path / 'db'}"
    done = run_cli("migrate", "--source-dir", str(copy), "--clickhouse-url", url, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return copy, url

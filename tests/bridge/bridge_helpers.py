"""Helpers for the bridge tests: a helper process that holds a database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HELPER = Path(__file__).with_name("_holder.py")


class Holder:
    """A helper process (``_holder.py``) that holds a database until told to stop."""

    def __init__(self, mode: str, target: str, ready: Path, hold: float = 30.0) -> None:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        self.ready = ready
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPER), mode, target, str(ready), str(hold)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"holder exited early ({self.proc.returncode}): {out}{err}")
            if time.monotonic() > deadline:
                raise AssertionError("holder did not get the database in time")
            time.sleep(0.02)

    def release(self) -> None:
        """Tell the holder to let go (it polls for ``<ready>.stop``) and wait for it to exit."""
        self.ready.with_suffix(".stop").touch()
        self.proc.communicate(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)

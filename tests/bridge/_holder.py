"""Helper process for the lock tests (not a test module).

usage: _holder.py MODE TARGET READY_FILE HOLD_SECONDS

MODE ``session``: hold ``Database(TARGET).session()``; ``direct``: open TARGET with
clickhouse-connect directly (no context-cleaner lock); ``flock``: hold a FileLock on
TARGET (a lock file path); ``loop``: take and release a FileLock on TARGET over and
over (50 ms each) like a busy writer. Writes READY_FILE once it holds, then holds
(or loops) until ``READY_FILE`` with suffix ``.stop`` appears or HOLD_SECONDS pass.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def hold(ready: Path, seconds: float) -> None:
    ready.write_text("ready")
    stop = ready.with_suffix(".stop")
    deadline = time.monotonic() + seconds
    while not stop.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def main() -> None:
    mode, target, ready, seconds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    if mode == "session":
        from context_cleaner.bridge import Database

        with Database(target).session() as client:
            client.query("SELECT 1")
            hold(ready, seconds)
    elif mode == "direct":
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=target)
        client.query("SELECT 1")
        hold(ready, seconds)
        client.close()
    elif mode == "flock":
        from context_cleaner.bridge import FileLock

        with FileLock(target):
            hold(ready, seconds)
    elif mode == "loop":  # a busy writer: hold 50 ms, release, take it again at once
        from context_cleaner.bridge import FileLock

        lock = FileLock(target)
        deadline = time.monotonic() + seconds
        rounds = 0
        while time.monotonic() < deadline and not ready.with_suffix(".stop").exists():
            lock.acquire(timeout=60)
            rounds += 1
            if rounds == 1:
                ready.write_text("ready")
            time.sleep(0.05)
            lock.release()
        print(rounds)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

"""Helper process for the lock tests (not a test module).

usage: _holder.py MODE TARGET READY_FILE HOLD_SECONDS

MODE ``session``: hold ``Database(TARGET).session()``; ``direct``: open TARGET with
clickhouse-connect directly (no context-cleaner lock); ``flock``: hold a FileLock on
TARGET (a lock file path); ``loop``: take and release a FileLock on TARGET over and
over (50 ms each) like a busy writer; ``readers``: like a dashboard that clients poll
back-to-back, a "request" thread holds the lock at TARGET (yielding to writers) for
100 ms, and a new one starts every 25 ms, so the process always has requests in
progress. Writes READY_FILE once it holds, then holds (or loops) until
``READY_FILE`` with suffix ``.stop`` appears or HOLD_SECONDS pass; the loops print
how many rounds they made.
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
    elif mode == "readers":
        readers(target, ready, seconds)
    else:
        raise SystemExit(f"unknown mode {mode}")


def readers(target: str, ready: Path, seconds: float) -> None:
    """Overlapping "requests", each a thread holding the lock for 100 ms (see the docstring)."""
    import threading

    from context_cleaner.bridge.lock import PROCESS_LOCKS

    stop = ready.with_suffix(".stop")
    deadline = time.monotonic() + seconds
    served: list[int] = []

    def request() -> None:
        with PROCESS_LOCKS.hold(target, timeout=60, yield_to_writers=True, step_aside=True):
            if not ready.exists():
                ready.write_text("ready")
            time.sleep(0.1)
        served.append(1)

    threads: list[threading.Thread] = []
    while time.monotonic() < deadline and not stop.exists():
        threads = [t for t in threads if t.is_alive()]
        if len(threads) < 16:  # requests waiting for the database queue up, like a server's
            t = threading.Thread(target=request)
            t.start()
            threads.append(t)
        time.sleep(0.025)
    for t in threads:
        t.join()
    print(len(served))


if __name__ == "__main__":
    main()

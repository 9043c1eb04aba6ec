"""How kept snapshot tables slow down every opening of the embedded engine.

Migrates a corpus into a fresh embedded database, then adds hard-link snapshots
(4 tables each, as a checkpoint does) and times, in fresh processes, opening the
database with one query and ``context-cleaner status``::

    python benchmarks/snapshot_open.py --source-dir DIR [--tables 0,40,100,400] [--repeat 5]

Prints a markdown table: the fastest of ``--repeat`` runs, in seconds (the machine may be
shared). Used to choose ``MAX_CHECKPOINTS`` (``context_cleaner.settings``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

OPEN = """
import sys, time
from context_cleaner.bridge import Database
start = time.perf_counter()
with Database(sys.argv[1]).session() as client:
    client.query("SELECT count() FROM enhanced_token_details")
print(time.perf_counter() - start)
"""


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
    env["PYTHONPATH"] = str(REPO / "src")
    env["CONTEXT_CLEANER_CLICKHOUSE_URL"] = url
    return env


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def _opened(url: str, env: dict[str, str]) -> float:
    """Seconds to open the database and run one query, timed inside a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", OPEN, url], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.split()[-1])


def _add_snapshots(url: str, count: int, first: int) -> None:
    from context_cleaner.bridge import Database
    from context_cleaner.migration import rollback

    with Database(url).session() as client:
        for n in range(first, first + count):
            rollback.take_snapshot(client, "bench", "bench", f"cp{n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True, help="a transcript folder")
    parser.add_argument("--tables", default="0,20,40,80,100,200,400")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as scratch:
        url = f"chdb://{scratch}/db"
        env = _env(url)
        migrate = [py, "-m", "context_cleaner", "migrate", "--source-dir", args.source_dir]
        subprocess.run([*migrate, "--no-validate"], env=env, check=True, capture_output=True)
        print("| snapshot tables | open + 1 query (s) | `status` (s) |")
        print("|---:|---:|---:|")
        made = 0
        for tables in (int(t) for t in args.tables.split(",")):
            wanted = tables // 4
            _add_snapshots(url, wanted - made, made)
            made = wanted
            opens = [_opened(url, env) for _ in range(args.repeat)]
            status = [
                _timed([py, "-m", "context_cleaner", "status"], env) for _ in range(args.repeat)
            ]
            opened, shown = min(opens), min(status)
            print(f"| {made * 4} | {opened:.2f} | {shown:.2f} |")


if __name__ == "__main__":
    main()

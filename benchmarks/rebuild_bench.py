"""The end of a first migration: both rollups rebuilt into empty tables, then the run's sums.

Migrates ``--source-dir`` once into a scratch embedded database (``--no-validate``) and
empties its rollups; then, ``--repeat`` times, on a fresh copy of that database, times each
statement of :func:`~context_cleaner.bridge.rebuild.rebuild_rollups` (measuring what it
brings into the rollups, the run's net change) and the database's totals read after it, as
the run's end makes them. Prints each statement's median and fastest time.

    .venv/bin/python benchmarks/rebuild_bench.py --source-dir /work/bench-data/20000files
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from context_cleaner.bridge import COUNTED_VIEW, Database, query_rows, rebuild
from context_cleaner.bridge.buckets import BUCKETS
from context_cleaner.bridge.summaries import SUMMARIES, TOKEN_SUMS

TIMES: dict[str, list[float]] = defaultdict(list)


def _timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(client: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(client, sql, *args, **kwargs)
        finally:
            TIMES[f"{name}: {sql[:60]}"].append(time.perf_counter() - started)

    return timed


def _template(source: Path, scratch: Path) -> Path:
    """A database holding ``source``'s usage rows and empty rollups."""
    url = f"chdb://{scratch / 'db'}"
    env = {**os.environ, "HOME": str(scratch)}
    command = [str(Path(sys.executable).with_name("context-cleaner")), "migrate"]
    command += ["--source-dir", str(source), "--clickhouse-url", url, "--no-validate"]
    subprocess.run([*command, "--engine", "local"], env=env, check=True, capture_output=True)
    with Database(url, lock_timeout=30).session() as client:
        for table in (BUCKETS, SUMMARIES):
            client.command(f"TRUNCATE TABLE {table}")
    return scratch / "db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    rebuild.run_statement = _timed("statement", rebuild.run_statement)
    rebuild.query_rows = _timed("query", rebuild.query_rows)
    totals = _timed("totals", query_rows)
    with tempfile.TemporaryDirectory(prefix="cc-rebuild-") as scratch:
        template = _template(args.source_dir, Path(scratch) / "template")
        for n in range(args.repeat):
            copy = Path(scratch) / f"copy{n}"
            shutil.copytree(template, copy / "db", symlinks=True)
            with Database(f"chdb://{copy / 'db'}", lock_timeout=30).session() as client:
                started = time.perf_counter()
                rebuild.rebuild_rollups(client, "bench", change={})
                totals(client, f"SELECT {TOKEN_SUMS} FROM {COUNTED_VIEW}")
                TIMES["the whole end"].append(time.perf_counter() - started)
            shutil.rmtree(copy)
    for name, seconds in TIMES.items():
        median, fastest = statistics.median(seconds) * 1000, min(seconds) * 1000
        print(f"{median:7.1f} ms (fastest {fastest:6.1f}) {len(seconds):3d}x  {name}")


if __name__ == "__main__":
    main()

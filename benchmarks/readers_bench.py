"""The reader processes' CPU on one corpus: what a migration's readers cost per file.

Reads every file of ``--source-dir`` as a first migration would (one work item per
file, batches of ``--batch-size``) through :class:`BatchReader`, and prints the CPU
seconds of the readers (the children) and of this process (decoding their batches).
No database: only the readers' side of a run.

    .venv/bin/python benchmarks/readers_bench.py --source-dir bench-data/20000files/projects
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from context_cleaner.analysis.discovery import discover
from context_cleaner.migration.planning import plan_work
from context_cleaner.migration.readers import BatchReader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    items = plan_work(discover([args.source_dir]).files, {}).items
    plan = [items[i : i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    cpu, wall = time.process_time(), time.perf_counter()
    records = 0
    with BatchReader(args.workers) as reader:
        for _, scan, _ in reader.read(plan):
            records += len(scan.collector)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    readers = usage.ru_utime + usage.ru_stime
    print(
        f"files {len(items)} batches {len(plan)} records {records}: readers CPU "
        f"{readers:.2f} s, this process {cpu:.2f} s, wall {wall:.2f} s"
    )


if __name__ == "__main__":
    main()

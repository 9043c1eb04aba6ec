"""One command's wall time, CPU and peak private memory of its whole process tree.

    .venv/bin/python -m benchmarks.peak_memory [--repeat N] -- context-cleaner migrate ...

Samples the tree from outside every ~10 ms (``harness.measure_command``: its private
memory as a run measures its own, every third poll), so the short peaks inside a commit
that a run's own sampling (at most 4 a second) misses are seen. Prints one line a run.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.harness import measure_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of the command (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    worst = 0
    for _ in range(max(1, args.repeat)):
        run = measure_command(command)
        worst = max(worst, run.returncode)
        print(
            f"exit {run.returncode}  wall {run.wall_s:.2f} s  CPU {run.cpu_s:.2f} s  "
            f"private peak {run.peak_tree_private / 2**20:.0f} MiB  "
            f"(tree USS {run.peak_tree_uss / 2**20:.0f} MiB)",
            flush=True,
        )
    return worst


if __name__ == "__main__":
    sys.exit(main())

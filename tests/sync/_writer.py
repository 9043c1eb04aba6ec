"""A writer process for the watch tests: replays a corpus into a folder like Claude Code would.

    python _writer.py SOURCE_PROJECTS TARGET_PROJECTS SEED SECONDS

Files are created one after another (sessions, then their subagent folders appear),
each written in pieces of random size that cut lines anywhere, with short pauses,
spread over about SECONDS seconds. Exits 0 when every byte is written.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    source, target, seed, seconds = Path(argv[0]), Path(argv[1]), int(argv[2]), float(argv[3])
    rng = random.Random(seed)
    queue = sorted(p.relative_to(source) for p in source.rglob("*.jsonl"))
    pending = {rel: (source / rel).read_bytes() for rel in queue}
    total = sum(len(d) for d in pending.values())
    active: list[Path] = []
    pieces = max(1, int(seconds / 0.015))
    piece = max(256, total // pieces)
    while queue or active:
        if queue and (len(active) < 3 or rng.random() < 0.1):
            active.append(queue.pop(0))  # a new session or subagent file appears
        rel = rng.choice(active)
        data = pending[rel]
        size = rng.randint(1, 2 * piece)
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(data[:size])
        if size >= len(data):
            del pending[rel]
            active.remove(rel)
        else:
            pending[rel] = data[size:]
        time.sleep(rng.uniform(0, 0.03))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

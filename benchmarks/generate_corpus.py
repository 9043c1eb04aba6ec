"""Generate a realistic, deterministic corpus of Claude Code transcripts.

    python benchmarks/generate_corpus.py --out DIR --size 100MB [--seed N]
    python benchmarks/generate_corpus.py --out DIR --files 20000 [--seed N]

writes ``DIR/projects/<encoded-project>/<session-uuid>.jsonl`` (plus subagent
files) until the total reaches the target size, and ``DIR/manifest.json`` with
the counts and the exact totals a correct analyser must report; ``--files N`` writes
the many-files shape instead (N small one-turn sessions). The generator
itself is :mod:`context_cleaner.testing.transcripts.corpus` (tests and the
testing API use it too); this is its command line. The same seed and size
always give the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from context_cleaner.testing.transcripts import generate_corpus, parse_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    shape = parser.add_mutually_exclusive_group(required=True)
    shape.add_argument("--size", help="target size: 100MB, 500MB, 1GB, 1.5GB or bytes")
    shape.add_argument("--files", type=int, help="the many-files shape: this many small files")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        target = parse_size(args.size) if args.size else 0
        started = time.perf_counter()
        manifest = generate_corpus(args.out, target, args.seed, target_files=args.files or 0)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    size = int(manifest["bytes"])  # type: ignore[call-overload]
    totals = manifest["totals"]
    assert isinstance(totals, dict)
    print(
        f"wrote {manifest['files']} files, {manifest['lines']:,} lines, {size / 1e6:,.1f} MB "
        f"in {seconds:.1f} s ({size / 1e6 / seconds:,.0f} MB/s) to {args.out}\n"
        f"expected total_tokens {totals['total_tokens']:,} "
        f"(naive sum {manifest['naive_sum_of_all_lines']['total_tokens']:,})"  # type: ignore[index]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

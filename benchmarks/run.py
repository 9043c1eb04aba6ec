"""Run the benchmarks (what ``make bench`` runs).

    python benchmarks/run.py [--sizes 100MB,1GB,20000files] [--only analyze] [--markdown FILE]

For each size, a corpus is generated once into ``bench-data/<size>/`` (reused
while its manifest matches the size and seed); a size of ``Nfiles`` is the
many-files shape (N small one-turn sessions) instead of a byte target. Each
selected benchmark then runs on it. Results are printed as
a markdown table followed by the comparison lines; ``--markdown FILE`` also
writes them to FILE. The exit code is non-zero when a run failed or a total did
not match the manifest.

Adding a benchmark: write ``benchmarks/<name>_bench.py`` with
``run(ctx: BenchContext) -> list[Result]`` and add it to ``BENCHMARKS`` below.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the ``benchmarks`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    REPO_ROOT,
    BenchContext,
    BenchOptions,
    Result,
    compile_package,
    find_ccusage,
    find_context_cleaner,
    machine_line,
    markdown_table,
)
from context_cleaner.testing.transcripts import (
    GENERATOR_VERSION,
    format_size,
    generate_corpus,
    parse_size,
)

Benchmark = Callable[[BenchContext], list[Result]]

#: name -> "module:function"; imported only when selected, so a benchmark whose
#: dependencies are missing does not break the others.
BENCHMARKS: dict[str, str] = {
    "analyze": "benchmarks.analyze_bench:run",
    "migrate": "benchmarks.migrate_bench:run",
    "dashboard": "benchmarks.dashboard_bench:run",
    "dashboard_writers": "benchmarks.dashboard_bench:run_writers",
    "testing_api": "benchmarks.testing_api_bench:run",
    "sync": "benchmarks.sync_bench:run",
    "prefect": "benchmarks.prefect_bench:run",
    "report": "benchmarks.report_bench:run",
}
DEFAULT_SIZES = ("100MB", "1GB")
DEFAULT_DATA_DIR = REPO_ROOT / "bench-data"


def load_benchmark(name: str) -> Benchmark:
    module_name, func = BENCHMARKS[name].split(":")
    fn: Benchmark = getattr(importlib.import_module(module_name), func)
    return fn


def parse_corpus(text: str) -> tuple[str, int, int]:
    """``500MB`` -> (label, target bytes, 0); ``20000files`` -> (label, 0, target files)."""
    if text.lower().endswith("files") and text[:-5].isdigit():
        return f"{int(text[:-5])}files", 0, int(text[:-5])
    return format_size(parse_size(text)), parse_size(text), 0


def ensure_corpus(
    data_dir: Path, label: str, target: int, seed: int, files: int = 0
) -> dict[str, object]:
    """The corpus in ``data_dir/label``, generated unless a matching one is there."""
    corpus = data_dir / label
    manifest_path = corpus / "manifest.json"
    if manifest_path.exists():
        manifest: dict[str, object] = json.loads(manifest_path.read_text())
        if (
            manifest.get("target_bytes") == target
            and manifest.get("target_files", 0) == files
            and manifest.get("seed") == seed
            and manifest.get("generator_version") == GENERATOR_VERSION
        ):
            print(f"corpus {label}: reusing {corpus}", flush=True)
            return manifest
    if corpus.exists():  # stale or interrupted: only ever our own bench-data folder
        shutil.rmtree(corpus)
    print(f"corpus {label}: generating into {corpus} ...", end=" ", flush=True)
    started = time.perf_counter()
    manifest = generate_corpus(corpus, target, seed, target_files=files)
    seconds = time.perf_counter() - started
    size = int(manifest["bytes"])  # type: ignore[call-overload]
    print(f"{size / 1e6:,.0f} MB in {seconds:.1f} s ({size / 1e6 / seconds:,.0f} MB/s)", flush=True)
    return manifest


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        default=",".join(DEFAULT_SIZES),
        help="comma-separated corpus sizes (default %(default)s); e.g. 500MB,1.5GB,20000files",
    )
    p.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated benchmarks to run (available: {', '.join(BENCHMARKS)})",
    )
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="corpus folder")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument("--markdown", type=Path, help="also write the results table to this file")
    p.add_argument(
        "--context-cleaner",
        help="command that runs context-cleaner (default: $CONTEXT_CLEANER_BIN or the venv's)",
    )
    p.add_argument("--no-ccusage", action="store_true", help="do not run ccusage")
    p.add_argument(
        "--repeat", type=int, default=3, help="runs per command; the fastest counts (default 3)"
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; available: {list(BENCHMARKS)}")
        return 2
    try:
        sizes = [parse_corpus(s.strip()) for s in args.sizes.split(",") if s.strip()]
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    options = BenchOptions(
        context_cleaner=(
            shlex.split(args.context_cleaner) if args.context_cleaner else find_context_cleaner()
        ),
        ccusage=None if args.no_ccusage else find_ccusage(),
        repeat=args.repeat,
        timeout=args.timeout,
    )
    print(f"machine: {machine_line()}")
    print(f"context-cleaner: {shlex.join(options.context_cleaner)}")
    print(f"ccusage: {shlex.join(options.ccusage) if options.ccusage else 'not found (skipped)'}")
    print(f"bytecode: {compile_package()}")

    results: list[Result] = []
    args.data_dir = args.data_dir.resolve()  # database URLs below it must be absolute
    for label, target, files in sizes:
        manifest = ensure_corpus(args.data_dir, label, target, args.seed, files)
        ctx = BenchContext(label, args.data_dir / label, manifest, options)
        for name in names:
            print(f"running {name} on {label} ...", flush=True)
            results.extend(load_benchmark(name)(ctx))

    comparisons = [line for r in results for line in r.comparisons]
    report = (
        f"Machine: {machine_line()}\n\n"
        + markdown_table(results)
        + ("\n" + "\n".join(f"- {c}" for c in comparisons) + "\n" if comparisons else "")
    )
    print()
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
        print(f"wrote {args.markdown}")
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

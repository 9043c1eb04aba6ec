"""The spec's testing API on the benchmark corpus: ``benchmark_migration_performance``.

In a fresh process (so its memory is its own): the corpus migrated into a new
embedded database with the package's own testing API, which checks the totals
against the manifest and measures tokens/s, files/min, MB/s, insert rows/s, the
memory after each batch, the error rate on faulty input and the time to recover
after a run stopped after its first batch (those two on generated data).

    python -m benchmarks.testing_api_bench <projects dir> '<expected totals JSON>'

prints the report as JSON.
"""

from __future__ import annotations

import json
import os
import sys

from benchmarks.harness import REPO_ROOT, BenchContext, Result, measure_command

TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
)


def run(ctx: BenchContext) -> list[Result]:
    want = ctx.manifest["totals"]
    assert isinstance(want, dict)
    expected = {k: want[k] for k in TOKEN_KEYS}
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "PREFECT_API_URL")}
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.testing_api_bench",
        str(ctx.projects_dir),
        json.dumps(expected),
    ]
    done = measure_command(cmd, env=env, cwd=REPO_ROOT, timeout=ctx.options.timeout)
    row = Result(
        benchmark="testing_api",
        corpus=ctx.size_label,
        tool="benchmark_migration_performance (in one process)",
        peak_rss_mb=done.peak_rss / 1e6,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        row.failed, row.check = True, "FAILED"
        row.notes = done.stderr.decode(errors="replace").strip()[-200:]
        return [row]
    m = report["measurements"]
    speed = m["throughput"]
    row.wall_s = speed["seconds"]
    row.mb_per_s = speed["megabytes_per_second"]
    row.failed = not report["passed"]
    row.check = "= manifest, checks passed" if report["passed"] else "FAILED"
    row.notes = (
        f"{speed['tokens_per_second']:,.0f} tokens/s; {speed['files_per_minute']:,.0f} files/min; "
        f"insert {speed['insert_rows_per_second']:,.0f} rows/s; working memory "
        f"{speed['working_memory_mb']:,.0f} MiB; error rate on faulty input "
        f"{m['error_rate']:.2%}; recovery {m['recovery_seconds']:.2f} s"
    )
    if row.failed:
        bad = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["passed"]]
        row.comparisons.append(f"testing API {ctx.size_label}: {'; '.join(bad)}")
    return [row]


def main(argv: list[str]) -> int:
    import tempfile

    from context_cleaner import HistoricalDataMigrator
    from context_cleaner.testing import benchmark_migration_performance

    projects, expected = argv[0], json.loads(argv[1])
    with tempfile.TemporaryDirectory(prefix="cc-bench-api-") as folder:
        migrator = HistoricalDataMigrator(f"chdb://{folder}/db")
        report = benchmark_migration_performance(
            migrator, source_directory=projects, expected_totals=expected
        )
    sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

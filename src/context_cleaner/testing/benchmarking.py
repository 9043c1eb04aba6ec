"""The spec's ``benchmark_migration_performance``: rates, memory, error rate, recovery time.

Three measurements, each on its own scratch database (see :mod:`.harness`):

1. throughput: a generated corpus of the asked scale (or your own corpus) migrated
   with the migrator's settings; tokens/s, files/min, MB/s, insert rows/s, and the
   resident memory of the process tree after each batch (its pattern over the run);
2. error rate: a corpus with uncountable lines appended to half its files (negative
   counts, torn JSON, invalid UTF-8): exactly those lines are skipped, every good
   token still lands;
3. recovery: a run stopped after its first batch, then run again; the time to finish,
   and that no byte was read twice.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from context_cleaner.bridge import Database
from context_cleaner.migration import readers
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.testing.compatibility import scratch_database
from context_cleaner.testing.harness import (
    SCALES,
    PerformanceBenchmark,
    TestReport,
    measure,
    totals_check,
    twin_migrator,
    workspace,
)
from context_cleaner.testing.transcripts.sample import generate_transcripts


class _Interrupted(Exception):
    """Raised from a progress callback to stop a run after its first batch."""


#: Lines a transcript can hold that carry "usage" but cannot be counted (DESIGN §9).
FAULTY_LINES = (
    b'{"type":"assistant","message":{"id":"msg_bad","usage":{"input_tokens":-5,"output_tokens":1}}}\n',
    b'{"type":"assistant","message":{"usage": {"input_tokens": 3,\n',
    b'{"type":"assistant","usage":"\xff\xfe not utf-8"}\n',
)


def benchmark_migration_performance(
    migrator: HistoricalDataMigrator,
    test_scale: str = "small",
    *,
    source_directory: str | None = None,
    expected_totals: dict[str, int] | None = None,
) -> PerformanceBenchmark:
    """Tokens/s, files/min, insert throughput, memory after each batch, the error rate on
    faulty input, and the time to recover (resume) after a run stopped after its first batch.

    ``source_directory`` (with ``expected_totals`` when known) measures throughput on a
    corpus of your own; otherwise on a generated one of ``test_scale``.
    """
    started = time.perf_counter()
    report = TestReport("benchmark_migration_performance")
    like = migrator.bridge.database
    with workspace(migrator, None) as (folder, _unused):
        source, want = source_directory, expected_totals
        if source is None:
            corpus = generate_transcripts(folder / "perf", target_bytes=SCALES[test_scale], seed=5)
            source, want = str(corpus.projects_dir), corpus.totals
        memory: list[float] = []
        with scratch_database(like) as db:
            result = twin_migrator(migrator, db).run(
                source, progress_callback=lambda _p: memory.append(readers.tree_rss() / 2**20)
            )
        report.check("migration succeeded", result.success, "; ".join(result.errors[:3]))
        if want is not None:
            totals_check(report, "database = expected totals", result.database_totals, want)
        report.measurements["throughput"] = measure(result)
        report.measurements["memory_mb_after_each_batch"] = [round(m, 1) for m in memory]
        _error_rate(report, migrator, folder / "faults", like)
        _recovery(report, migrator, folder / "recovery", like)
    return report.done(started)


def _error_rate(
    report: TestReport, migrator: HistoricalDataMigrator, folder: Path, like: Database
) -> None:
    corpus = generate_transcripts(folder, target_bytes=400_000, seed=3)
    injected = 0
    for n, path in enumerate(sorted(corpus.projects_dir.rglob("*.jsonl"))):
        if n % 2 == 0:
            with path.open("ab") as out:
                out.write(FAULTY_LINES[n % len(FAULTY_LINES)])
            injected += 1
    with scratch_database(like) as db:
        result = twin_migrator(migrator, db).run(str(corpus.projects_dir))
    rate = result.skipped_lines / max(1, corpus.lines + injected)
    report.check(
        "faulty lines skipped, nothing else",
        result.skipped_lines == injected,
        f"{result.skipped_lines} skipped of {injected} injected",
    )
    totals_check(
        report, "faulty input: good lines all counted", result.database_totals, corpus.totals
    )
    report.measurements["error_rate"] = round(rate, 6)


def _recovery(
    report: TestReport, migrator: HistoricalDataMigrator, folder: Path, like: Database
) -> None:
    corpus = generate_transcripts(folder, target_bytes=600_000, seed=9)
    committed: list[int] = []

    def stop_after_first_batch(progress: Any) -> None:
        committed.append(progress.bytes_completed)
        raise _Interrupted

    with scratch_database(like) as db:
        # A commit per batch, so the run is stopped after its first fifth.
        twin = twin_migrator(migrator, db, batch_size=max(1, corpus.files // 5), commit_every=0.0)
        with contextlib.suppress(_Interrupted):
            twin.run(str(corpus.projects_dir), progress_callback=stop_after_first_batch)
        resume_started = time.perf_counter()
        resumed = twin.run(str(corpus.projects_dir))
        recovery = time.perf_counter() - resume_started
    totals_check(report, "after recovery: exact totals", resumed.database_totals, corpus.totals)
    first = committed[0] if committed else 0
    report.check(
        "recovery reads each byte once",
        first + resumed.bytes_processed == corpus.bytes and 0 < first < corpus.bytes,
        f"{first:,} bytes before the stop + {resumed.bytes_processed:,} after = {corpus.bytes:,}",
    )
    report.measurements["recovery_seconds"] = round(recovery, 3)

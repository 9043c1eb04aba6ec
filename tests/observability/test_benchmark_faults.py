"""The benchmark's error-rate input, without the benchmark's timed runs: a generated corpus
with its faulty lines appended counts exactly the corpus's totals and skips exactly them."""

from __future__ import annotations

from pathlib import Path

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.fields import TOKEN_FIELDS as TOKEN_KEYS
from context_cleaner.testing.benchmarking import FAULTY_LINES
from context_cleaner.testing.transcripts import generate_transcripts


def test_each_faulty_line_is_skipped_and_every_good_token_counted(tmp_path: Path) -> None:
    corpus = generate_transcripts(tmp_path, target_bytes=30_000, seed=3)
    files = sorted(corpus.projects_dir.rglob("*.jsonl"))
    for n, line in enumerate(FAULTY_LINES):
        with files[n % len(files)].open("ab") as out:
            out.write(line)
    report = EnhancedTokenCounter([str(corpus.projects_dir)], workers=1).analyze()
    assert report.skipped_lines_total == len(FAULTY_LINES), report.skipped_by_reason
    counted = report.totals.model_dump()
    assert {k: counted[k] for k in TOKEN_KEYS} == {k: corpus.totals[k] for k in TOKEN_KEYS}

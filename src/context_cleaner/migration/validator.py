"""Validation: the analyser (source) against the database, explained (spec Phase 3).

Tokens, sessions and files are reconciled; sessions are compared one by one
(a sample, or all with ``full_validation``). Any variance comes with the reasons
the database can legitimately differ: bytes appended since the last sync,
files deleted from disk (their rows are kept), lines that could not be counted.

``python -m context_cleaner.migration.validator --full-validation --tolerance 0.001``
exits non-zero when validation fails.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration import pipeline
from context_cleaner.migration.models import SessionVariance, ValidationResult
from context_cleaner.migration.pipeline import RunOptions

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


def validate_migration_integrity(
    bridge: EnhancedTokenDatabaseBridge,
    source_dirs: Sequence[str] | None = None,
    *,
    sample_size: int = 100,
    full_validation: bool = False,
    tolerance: float = 0.001,
    seed: int | None = None,
) -> ValidationResult:
    """Compare a fresh analysis of the transcripts with the database.

    Without ``source_dirs``, the folders this host migrated from (as the file
    tracking records them) are analysed, else the default roots.
    """
    started = time.perf_counter()
    if not source_dirs:
        source_dirs = migrated_roots(bridge) or None
    # spawn, not fork: this process may hold the embedded engine and its threads.
    report = EnhancedTokenCounter(
        source_dirs or None, prices=bridge.prices, start_method="spawn"
    ).analyze()
    db_totals = bridge.get_migration_totals()
    summary_totals = bridge.summary_totals()
    src_totals = report.totals.model_dump()
    src_total = report.totals.total_tokens
    variance = abs(db_totals["total_tokens"] - src_total)
    ratio = variance / src_total if src_total else (0.0 if not variance else 1.0)

    source_sessions = {s.session_id: s for s in report.sessions}
    db_sessions = bridge.detail_totals_by_session()
    chosen = sorted(source_sessions)
    if not full_validation and len(chosen) > sample_size:
        chosen = sorted(random.Random(seed).sample(chosen, sample_size))
    mismatches = []
    for sid in chosen:
        src = source_sessions[sid].total_tokens
        dbv = db_sessions.get(sid, {}).get("total_tokens", 0)
        if src != dbv:
            mismatches.append(SessionVariance(sid, src, dbv))
    if full_validation:
        for sid in sorted(set(db_sessions) - set(source_sessions)):
            mismatches.append(SessionVariance(sid, 0, db_sessions[sid]["total_tokens"]))

    tracked = bridge.tracked_files()
    explanations = _explain(bridge, source_dirs, report, db_totals, summary_totals, tracked)
    field_mismatch = [
        f for f in TOKEN_FIELDS if abs(db_totals[f] - src_totals[f]) > tolerance * max(src_total, 1)
    ]
    summaries_agree = all(db_totals[f] == summary_totals[f] for f in TOKEN_FIELDS)
    session_variance = sum(abs(m.difference) for m in mismatches)
    passed = (
        ratio <= tolerance
        and not field_mismatch
        and summaries_agree
        and session_variance <= tolerance * max(src_total, 1)
    )
    checked = max(len(chosen), 1)
    score = max(0.0, 1.0 - ratio) * (1.0 - len(mismatches) / max(checked, len(mismatches), 1))
    return ValidationResult(
        passed=bool(passed),
        tolerance=tolerance,
        full_validation=full_validation,
        source_totals=src_totals,
        database_totals=db_totals,
        token_variance=db_totals["total_tokens"] - src_total,
        variance_ratio=ratio,
        source_sessions=len(source_sessions),
        database_sessions=len(db_sessions),
        source_files=len(report.files),
        tracked_files=len(tracked),
        sessions_checked=len(chosen),
        session_mismatches=mismatches[:100],
        explanations=explanations,
        integrity_score=round(score, 6),
        duration_seconds=time.perf_counter() - started,
    )


def migrated_roots(bridge: EnhancedTokenDatabaseBridge) -> list[str]:
    """The transcript folders this host's tracked files came from (those still present)."""
    roots = sorted({t.source_root for t in bridge.tracked_files()})
    return [r for r in roots if Path(r).is_dir()]


def _explain(
    bridge: EnhancedTokenDatabaseBridge,
    source_dirs: Sequence[str] | None,
    report: object,
    db_totals: dict[str, int],
    summary_totals: dict[str, int],
    tracked: list,
) -> list[str]:
    notes: list[str] = []
    src_total = report.totals.total_tokens  # type: ignore[attr-defined]
    diff = db_totals["total_tokens"] - src_total
    if diff == 0:
        notes.append("Database totals equal the transcripts' to the token.")
    options = RunOptions(source_dirs=list(source_dirs) if source_dirs else None)
    found, plan = pipeline.discover_and_plan(bridge, options)
    if plan.items:
        notes.append(
            f"{len(plan.items)} file(s) have {plan.pending_bytes:,} byte(s) not yet in the "
            "database (new or appended since the last run); run `context-cleaner sync`."
        )
    on_disk = {(str(f.root), f.relative_path) for f in found.files}
    gone = [t for t in tracked if (t.source_root, t.file_path) not in on_disk]
    if gone:
        notes.append(
            f"{len(gone)} migrated file(s) are no longer on disk; their rows are kept, so the "
            "database can hold more than the transcripts."
        )
    skipped = report.skipped_lines_total  # type: ignore[attr-defined]
    if skipped:
        notes.append(f"{skipped} line(s) could not be counted on either side (see analyze).")
    if any(db_totals[f] != summary_totals[f] for f in TOKEN_FIELDS):
        notes.append(
            "The summary table disagrees with the usage rows: run `context-cleaner sync` to "
            "recompute it (a run may have been interrupted between the two)."
        )
    if diff and not plan.items and not gone:
        notes.append(
            f"Unexplained difference of {diff:+,} tokens: roll back (`context-cleaner rollback`) "
            "and migrate again, or report it with the output of `validate --json`."
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m context_cleaner.migration.validator`` = ``context-cleaner validate``."""
    from context_cleaner.cli import main as cli_main

    return cli_main(["validate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

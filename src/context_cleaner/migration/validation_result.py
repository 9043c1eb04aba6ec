"""A validation's result: the verdict, the figures and the explanations a person reads.

From a :class:`~.comparison.Comparison` this builds the
:class:`~context_cleaner.migration.models.ValidationResult`: it passes when no record
differs, the variance is within the tolerance and the summary table agrees with the
usage rows (:func:`summaries_match`: a write or rollback interrupted between the two
shows here). Retained history, superseded records and what is pending on disk (files
behind, replaced, unfinished or unreadable) are reported beside it, never as a
variance, and each gets a sentence naming the next step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from context_cleaner.analysis.fields import TOKEN_FIELDS
from context_cleaner.migration import file_state
from context_cleaner.migration.comparison import MAX_LISTED, Comparison
from context_cleaner.migration.ledger import Ledger
from context_cleaner.migration.models import SessionVariance, ValidationResult
from context_cleaner.migration.retained_history import Scope


def summaries_match(db_totals: dict[str, Any], summary_totals: dict[str, Any]) -> bool:
    """The rollup's totals equal the usage rows' (token by token)."""
    return all(db_totals[f] == summary_totals[f] for f in TOKEN_FIELDS)


def build_result(
    c: Comparison,
    scope: Scope,
    disk: Ledger,
    db_totals: dict[str, Any],
    summary_totals: dict[str, Any],
    *,
    db_sessions: int | None,
    mode: str,
    full_validation: bool,
    sample_size: int,
    tolerance: float,
    seed: int | None,
    started: float,
) -> ValidationResult:
    """The :class:`ValidationResult` of comparison ``c`` of ``disk`` (in ``scope``)."""
    src_total = c.source.total
    ratio = c.variance_tokens / src_total if src_total else (0.0 if not c.variance_tokens else 1.0)
    summaries_agree = summaries_match(db_totals, summary_totals)
    n_differences = sum(c.difference_counts.values())
    sessions = c.source.sessions
    mismatched = {d["session_id"] for d in c.differences} | {
        s for s, (a, b) in c.source_sessions.items() if a != b
    }
    mismatches = [
        SessionVariance(s, c.source_sessions[s][0], c.source_sessions[s][1])
        for s in sorted(mismatched)
        if s in c.source_sessions
    ]
    passed = n_differences == 0 and ratio <= tolerance and summaries_agree
    retained_sums = c.retained_total()
    retained = None
    if mode != "this_run":
        retained = {
            **retained_sums.report(),
            "by_origin": {k: v.report() for k, v in sorted(c.retained.items())},
        }
    reported = scope.reported
    pending = _pending(reported)
    compared = {
        **c.compared.report(),
        "ranges": disk.range_count,
        "bytes": disk.bytes,
    }
    superseded = c.superseded.report()
    checked = max(len(sessions), 1)
    score = max(0.0, 1.0 - ratio) * (1.0 - len(mismatches) / max(checked, len(mismatches), 1))
    if n_differences and score == 1.0:
        score = max(0.0, 1.0 - n_differences / max(c.source.records, 1))
    explanations = _explain(
        c, scope, disk, pending, retained, superseded, summaries_agree, mode, n_differences
    )
    return ValidationResult(
        passed=bool(passed),
        tolerance=tolerance,
        full_validation=full_validation,
        source_totals=c.source.totals(),
        database_totals=db_totals,
        token_variance=c.signed_variance,
        variance_ratio=ratio,
        source_sessions=len(c.source.sessions),
        database_sessions=db_sessions if db_sessions is not None else len(c.source.sessions),
        source_files=disk.range_count,
        tracked_files=sum(1 for f in reported if f.tracked is not None),
        sessions_checked=len(sessions),
        session_mismatches=mismatches[:MAX_LISTED],
        explanations=explanations,
        integrity_score=round(score, 6),
        duration_seconds=time.perf_counter() - started,
        mode=mode,
        roots=list(scope.roots),
        compared=compared,
        retained=retained,
        superseded=superseded,
        pending=pending,
        file_states={k: v for k, v in file_state.counts(reported).items() if v},
        differences=c.differences,
        difference_counts=dict(c.difference_counts),
        summaries_agree=summaries_agree,
        summary_totals=summary_totals,
    )


def _pending(files: Sequence[file_state.ClassifiedFile]) -> dict[str, int]:
    out = {
        "files_behind": 0,
        "bytes_behind": 0,
        "files_new": 0,
        "files_unfinished": 0,
        "bytes_unfinished": 0,
        "files_replaced": 0,
        "files_error": 0,
        "files_deleted": 0,
    }
    for f in files:
        if f.state == file_state.BEHIND:
            out["files_behind"] += 1
            out["files_new"] += f.is_new
            out["bytes_behind"] += f.pending_bytes
        elif f.state in (file_state.REPLACED, file_state.TRUNCATED):
            out["files_replaced"] += 1
            out["bytes_behind"] += f.pending_bytes
        elif f.state == file_state.ERROR:
            out["files_error"] += 1
        elif f.state == file_state.DELETED:
            out["files_deleted"] += 1
        if f.unfinished_bytes:
            out["files_unfinished"] += 1
            out["bytes_unfinished"] += f.unfinished_bytes
    return out


_ORIGIN_TEXT = {
    "deleted": "deleted files",
    "earlier_generation": "earlier contents of replaced, truncated or rewritten files",
    "other_root": "folders not validated now",
    "other_host": "other hosts",
    "unreadable": "files that cannot be read now (see `context-cleaner status`)",
}


def _explain(
    c: Comparison,
    scope: Scope,
    disk: Ledger,
    pending: dict[str, int],
    retained: dict[str, Any] | None,
    superseded: dict[str, Any],
    summaries_agree: bool,
    mode: str,
    n_differences: int,
) -> list[str]:
    notes: list[str] = []
    what = "read by this run" if mode == "this_run" else "on disk"
    if not n_differences:
        notes.append(
            f"The {c.compared.records + c.superseded.records:,} record(s) of the "
            f"{disk.range_count:,} file range(s) {what} ({disk.bytes:,} bytes) equal a fresh "
            "analysis of the same bytes, to the token."
        )
    on_disk = [d for d in c.differences if d["kind"] != "unaccounted"]
    n_unaccounted = c.difference_counts.get("unaccounted", 0)
    if n_differences - n_unaccounted:
        kinds = ", ".join(
            f"{n:,} {k}" for k, n in sorted(c.difference_counts.items()) if k != "unaccounted"
        )
        first = on_disk[0] if on_disk else c.differences[0]
        notes.append(
            f"{n_differences - n_unaccounted:,} record(s) {what} differ from the database "
            f"({kinds}): first {first['file_path']} line {first['line_number']} (byte "
            f"{first['byte_offset']}, message {first['message_id']}): {first['detail']}. The "
            "database was changed outside context-cleaner or a write was lost. Repair: "
            f"`context-cleaner migrate --force{_source_args(scope.roots)}` reads every file on "
            "disk again and restores their rows (retained history is kept); `validate --json` "
            "lists the records."
        )
    if n_unaccounted:
        rows = [d for d in c.differences if d["kind"] == "unaccounted"]
        sessions = sorted({d["session_id"] for d in rows})
        notes.append(
            f"Unexplained difference of {c.unaccounted_tokens:+,} tokens: {n_unaccounted:,} "
            f"row(s) (sessions {', '.join(sessions[:5])}) come from files no host's "
            f"tracking lists (first {rows[0]['file_path']}, message {rows[0]['message_id']}): "
            "written outside context-cleaner, or a run stopped between its rows and its commit. "
            "Run `context-cleaner sync` (it replays an interrupted commit); if they remain, roll "
            "back to the run before them (`context-cleaner rollback`) or report it with "
            "`validate --json`."
        )
    if retained and retained["records"]:
        parts = ", ".join(
            f"{_ORIGIN_TEXT.get(k, k)}: {v['totals']['total_tokens']:,} tokens in "
            f"{v['files']:,} file(s)"
            for k, v in retained["by_origin"].items()
        )
        notes.append(
            f"Retained history: {retained['totals']['total_tokens']:,} tokens in "
            f"{retained['records']:,} record(s) from {retained['files']:,} file(s) "
            f"({retained['sessions']:,} session(s), {retained['oldest_day']} to "
            f"{retained['newest_day']}) that are not on disk as they were ({parts}). The "
            "database keeps them on purpose; they are not a variance."
        )
    if superseded["records"]:
        notes.append(
            f"{superseded['records']:,} record(s) on disk ({superseded['totals']['total_tokens']:,}"
            " tokens) are stored from another copy of the same response that rule 3 prefers "
            "(kept from retained history): each response is counted once."
        )
    if pending["files_behind"]:
        notes.append(
            f"{pending['files_behind']:,} file(s) ({pending['files_new']:,} new) have "
            f"{pending['bytes_behind']:,} byte(s) of complete lines not yet in the database; "
            "run `context-cleaner sync`."
        )
    if pending["files_replaced"]:
        notes.append(
            f"{pending['files_replaced']:,} file(s) were replaced, truncated or rewritten since "
            "their last sync: their earlier rows are retained history; `context-cleaner sync` "
            "reads the new content."
        )
    if pending["files_unfinished"]:
        notes.append(
            f"{pending['files_unfinished']:,} file(s) end with a last line not finished yet "
            f"({pending['bytes_unfinished']:,} bytes); counted once it ends."
        )
    if pending["files_error"]:
        notes.append(
            f"{pending['files_error']:,} file(s) could not be read or failed their last sync "
            "(`context-cleaner status` says why); `context-cleaner sync` retries them."
        )
    if disk.skipped_lines:
        notes.append(f"{disk.skipped_lines} line(s) could not be counted on either side.")
    if not summaries_agree:
        notes.append(
            "The summary table disagrees with the usage rows (a write or rollback was "
            "interrupted between the two); the usage rows are the record. The next "
            "`context-cleaner migrate` or `sync` closes a killed run and brings the "
            "rollups of its sessions level with its rows."
        )
    if mode == "this_run" and disk.errors:
        notes.append(f"{len(disk.errors)} file(s) could not be read by this run.")
    return notes


def _source_args(roots: Sequence[str]) -> str:
    import shlex

    return "".join(f" --source-dir {shlex.quote(r)}" for r in roots)

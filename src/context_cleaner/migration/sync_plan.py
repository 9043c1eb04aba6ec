"""What a sync reads: the files asked for, and the plan from their committed states.

A file that stats exactly as when its range was committed is unchanged (its head is not
even read); the others are read from their committed offset, or from 0 when their
identity changed (truncated, replaced, rotated).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from context_cleaner.analysis.discovery import (
    ESCAPED_NAME_TAKEN,
    Discovery,
    DiscoveryProblem,
    TranscriptFile,
    discover,
    resolve_roots,
    storable,
)

if TYPE_CHECKING:  # the planner: imported when a sync has something to plan
    from context_cleaner.bridge import FileCommit
    from context_cleaner.migration.planning import FileState, Plan


@dataclass
class SyncRequest:
    """What to sync (the spec's ``migrate_incremental_changes`` arguments)."""

    source_dirs: list[str] | None = None
    only_paths: set[str] | None = None
    """Absolute paths to consider (watch mode); None = every file."""
    since: datetime | None = None
    """Only files modified at or after this time."""
    modified_files_only: bool = True
    """Trust the stat stamps: a file that stats as when committed is not re-checked.
    False re-checks every file's identity (its head bytes) against its commit."""
    force_reanalysis: bool = False
    """Read every selected file again from 0 (the table's key keeps one row per record)."""


def walks_everything(request: SyncRequest) -> bool:
    """The request trusts stat stamps and looks at every file: a quiet walk can answer it."""
    return (
        request.only_paths is None
        and request.since is None
        and request.modified_files_only
        and not request.force_reanalysis
    )


def select_files(
    files: Iterable[TranscriptFile], only_paths: set[str] | None, since: datetime | None
) -> list[TranscriptFile]:
    cutoff = None if since is None else int(since.timestamp() * 1e9)
    return [
        f
        for f in files
        if (only_paths is None or f.path_str in only_paths)
        and (cutoff is None or f.mtime_ns >= cutoff)
    ]


def discover_request(request: SyncRequest) -> Discovery:
    """The files a sync looks at: the whole walk (with what it saw, for the stat cache's
    quiet walk), or only ``only_paths`` (stat calls only)."""
    roots = resolve_roots(request.source_dirs or None)
    if request.only_paths is None:
        return discover(roots, snapshot=walks_everything(request))
    found = Discovery(roots=list(roots))
    for raw in sorted(request.only_paths):
        path = Path(raw)
        root = next((r for r in roots if path.is_relative_to(r)), None)
        if root is None or not raw.endswith(".jsonl"):
            continue
        try:
            st = path.stat()
        except OSError as exc:
            if os.path.lexists(path):  # a dangling link, a folder it cannot enter ...
                problem = DiscoveryProblem(storable(raw), exc.strerror or type(exc).__name__)
                found.problems.append(problem)
            continue  # gone: deleted or renamed away (its rows stay)
        if stat.S_ISREG(st.st_mode):
            on_disk = path.relative_to(root).as_posix()
            relative = storable(on_disk)
            if relative != on_disk and os.path.lexists(os.path.join(root, relative)):
                found.problems.append(DiscoveryProblem(storable(raw), ESCAPED_NAME_TAKEN))
                continue
            found.files.append(TranscriptFile.from_stat(root, path, relative, st))
    return found


def same_as_committed(f: TranscriptFile, state: FileState | None) -> bool:
    """The file stats exactly as when its range was committed, cleanly: nothing to read."""
    return (
        state is not None
        and state.status == "completed"
        and not state.error_message
        and (f.device, f.inode, f.size, f.mtime_ns)
        == (state.device, state.inode, state.file_size, state.mtime_ns)
    )


def plan_sync(
    files: Iterable[TranscriptFile], states: dict[tuple[str, str], FileState], request: SyncRequest
) -> tuple[Plan, list[FileCommit]]:
    """Plan from the committed states; files whose stamp equals their commit are skipped.

    Also the commits that only record the new stamp of files checked and found complete
    (:func:`restamps`): only files whose stamp moved are candidates, so the thousands
    skipped by their stamp are not looked at twice.
    """
    from context_cleaner.migration.planning import plan_work, state_key

    if request.force_reanalysis:
        return plan_work(files, states, force=True), []
    unchanged, check = [], []
    for f in files:
        state = states.get(state_key(str(f.root), f.relative_path))
        if request.modified_files_only and same_as_committed(f, state):
            unchanged.append(f)
        else:
            check.append(f)
    plan = plan_work(check, states)
    moved = restamps(plan.unchanged, states)
    plan.unchanged.extend(unchanged)
    return plan, moved


def restamps(
    unchanged: Iterable[TranscriptFile], states: dict[tuple[str, str], FileState]
) -> list[FileCommit]:
    """Commits that only record the current stamp of unchanged files whose stamp moved.

    A write that lands while a file is read is read too, but its commit keeps the
    modification time seen before reading; the file then stats differently from its
    commit although every byte is in. Recording the stamp (same offset) lets the next
    sync skip it again instead of checking it, and keeps the stat cache whole.
    """
    from context_cleaner.bridge import FileCommit
    from context_cleaner.migration.planning import state_key

    out = []
    for f in unchanged:
        state = states.get(state_key(str(f.root), f.relative_path))
        if state is None or state.status != "completed" or state.error_message:
            continue
        if same_as_committed(f, state) or f.size != state.committed_offset:
            continue
        out.append(
            FileCommit(
                source_root=state.source_root,
                file_path=state.file_path,
                device=f.device,
                inode=f.inode,
                head_hash=state.head_hash,
                head_length=state.head_length,
                file_size=f.size,
                mtime_ns=f.mtime_ns,
                range_start=state.committed_offset,
                committed_offset=state.committed_offset,
                committed_line=state.committed_line,
                tokens_found=0,
                records_inserted=0,
                lines_skipped=0,
            )
        )
    return out


def file_problems(found: Discovery, only_paths: set[str] | None) -> tuple[list[str], list[str]]:
    """Discovery problems: transcript paths that cannot be read are file errors (retried
    on the next sync); folders that cannot be walked are warnings."""
    errors, warnings = [], []
    for p in found.problems:
        if p.path.endswith(".jsonl"):
            if only_paths is None or p.path in only_paths:
                errors.append(f"{p.path}: cannot read: {p.reason}; it is retried on the next sync")
        else:
            warnings.append(f"{p.path}: {p.reason}")
    return errors, warnings

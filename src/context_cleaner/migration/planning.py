"""What to read: each file's committed state against what is on disk now (DESIGN §5).

The unit of work is (file, byte range ending at the last newline). A file is
read from its committed offset when it is the same file that was committed
(same device and inode, same head bytes, not shorter, a line still ending at the
committed offset: :func:`~context_cleaner.migration.file_state.identity_change`);
otherwise from 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from context_cleaner.analysis.discovery import TranscriptFile
from context_cleaner.bridge import TrackedFile
from context_cleaner.migration.file_state import HEAD_BYTES, head_hash, identity_change
from context_cleaner.settings import MAX_BATCH_BYTES

__all__ = ["HEAD_BYTES", "FileState", "Plan", "WorkItem", "batches", "head_hash", "plan_work"]

#: A file's committed state: the tracking table's current row for it.
FileState = TrackedFile


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One file to read, from ``start_offset`` (a line start) to its last newline."""

    file: TranscriptFile
    start_offset: int
    start_line: int
    reason: str
    """``new``, ``appended``, ``resumed`` or ``reset: <why>``."""

    @property
    def pending_bytes(self) -> int:
        return max(0, self.file.size - self.start_offset)


@dataclass(slots=True)
class Plan:
    items: list[WorkItem]
    unchanged: list[TranscriptFile]
    reset: list[tuple[TranscriptFile, str]]

    @property
    def pending_bytes(self) -> int:
        return sum(i.pending_bytes for i in self.items)


def state_key(source_root: str, file_path: str) -> tuple[str, str]:
    return (source_root, file_path)


def plan_work(
    files: Iterable[TranscriptFile],
    states: dict[tuple[str, str], FileState],
    *,
    force: bool = False,
) -> Plan:
    """Compare each file with its committed state; decide where reading starts."""
    plan = Plan([], [], [])
    for f in files:
        state = None if force else states.get(state_key(str(f.root), f.relative_path))
        if state is None:
            plan.items.append(WorkItem(f, 0, 1, "new" if not force else "forced"))
            continue
        why = _identity_change(f, state)
        if why:
            plan.reset.append((f, why))
            plan.items.append(WorkItem(f, 0, 1, f"reset: {why}"))
        elif f.size > state.committed_offset:
            plan.items.append(WorkItem(f, state.committed_offset, state.committed_line, "appended"))
        else:
            plan.unchanged.append(f)
    return plan


def _identity_change(f: TranscriptFile, state: FileState) -> str:
    """Why ``f`` must be read from 0 (the file classifier's replaced or truncated), or ``""``."""
    return identity_change(f, state)[1]


def batches(
    items: Sequence[WorkItem], batch_size: int, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[WorkItem]]:
    """Group items into batches of at most ``batch_size`` files and about ``max_bytes``."""
    out: list[list[WorkItem]] = []
    current: list[WorkItem] = []
    size = 0
    for item in items:
        if current and (len(current) >= batch_size or size + item.pending_bytes > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item.pending_bytes
    if current:
        out.append(current)
    return out

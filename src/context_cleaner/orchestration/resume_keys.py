"""What a resumed flow run may skip: the cache keys of the Prefect flows (plain logic, no Prefect).

The database's committed offsets are the truth about what is migrated (DESIGN §5);
the Prefect cache only lets a new run *show* and skip the batches an earlier,
interrupted run finished. So a task's cached result must never claim a batch
whose rows or offsets are not in the database. The keys are built to keep that:

``batch key``  = database epoch + each file's identity (root, path, device, inode,
                 mtime) and byte range (start offset = the committed offset the
                 plan started from, end = the size it planned to).
``layout key`` = database epoch + the listing (every file's identity and size) +
                 the batching settings. The layout (which files form which
                 batch) is itself a cached task, so a run over unchanged files
                 re-forms the batches of the interrupted run and finds their keys.
``epoch``      = the database (URL without password, host) + when its schema was
                 first applied + how many rollbacks it has seen and the last one's
                 time. Offsets only grow within an epoch; a rollback (any mode, or
                 a dropped and recreated database) starts a new epoch, so records
                 written before it are never found again.

And the flows check the database anyway: a batch whose files still have bytes
pending is always run (cache refreshed), so the worst a stale record can do is
label a batch "Cached" that had nothing left to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from context_cleaner.analysis.discovery import TranscriptFile
from context_cleaner.bridge import EnhancedTokenDatabaseBridge, query_rows
from context_cleaner.migration.planning import WorkItem, batches

ItemSpec = tuple[str, str, int, int, int, int, int]
"""(root, relative path, device, inode, mtime_ns, start offset, end = size): one file's range."""

#: At most this many batch tasks per flow run (Prefect costs ~10-20 ms per task run).
MAX_BATCH_TASKS = 200

_EPOCH_SQL = (
    "SELECT (SELECT toString(min(applied_at)) FROM schema_migrations FINAL), "
    "(SELECT count() FROM migration_execution_log WHERE phase = 'rollback'), "
    "(SELECT toString(max(execution_timestamp)) FROM migration_execution_log "
    "WHERE phase = 'rollback')"
)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def file_key(f: TranscriptFile) -> tuple[str, str]:
    return (str(f.root), f.relative_path)


def item_spec(item: WorkItem) -> ItemSpec:
    f = item.file
    return (str(f.root), f.relative_path, f.device, f.inode, f.mtime_ns, item.start_offset, f.size)


def listing_fingerprint(files: Iterable[TranscriptFile]) -> str:
    """A digest of every file's identity and size: equal only for an unchanged corpus."""
    return _digest(
        sorted((str(f.root), f.relative_path, f.device, f.inode, f.size, f.mtime_ns) for f in files)
    )


def database_epoch(bridge: EnhancedTokenDatabaseBridge) -> str:
    """The database generation (see the module docstring); changes on any rollback."""
    with bridge.database.session() as client:
        row = query_rows(client, _EPOCH_SQL)[0]
    return _digest([bridge.database.url.redacted(), bridge.host, *map(str, row)])


def group(items: Sequence[Any], max_groups: int) -> list[list[Any]]:
    """Consecutive runs of ``items``, at most ``max_groups`` of them, as even as possible."""
    if not items:
        return []
    size = -(-len(items) // max(1, max_groups))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def plan_layout(
    plan: Sequence[Sequence[WorkItem]], max_tasks: int = MAX_BATCH_TASKS
) -> list[list[list[ItemSpec]]]:
    """The pipeline's batches as tasks: each task a list of batches, at most ``max_tasks``."""
    return group([[item_spec(i) for i in batch] for batch in plan], max_tasks)


@dataclass
class Chunk:
    """One batch task: its cache identity and the pending work it does now."""

    spec: list[list[ItemSpec]]
    """The batches as planned when the layout was made (the cache key's content)."""
    work: list[list[WorkItem]]
    """Per planned batch, what is pending in the database now (possibly nothing)."""

    @property
    def pending(self) -> bool:
        return any(self.work)

    @property
    def pending_bytes(self) -> int:
        return sum(i.pending_bytes for b in self.work for i in b)


def assign(
    layout: Sequence[Sequence[Sequence[ItemSpec]]],
    plan: Sequence[Sequence[WorkItem]],
    batch_size: int,
    max_batch_bytes: int,
    max_tasks: int = MAX_BATCH_TASKS,
) -> list[Chunk]:
    """Map today's pending work (``plan``) onto a (possibly earlier) layout.

    Pending files the layout does not hold are batched as the pipeline would and
    added as extra tasks, so nothing pending is ever left out.
    """
    fresh = {file_key(i.file): i for batch in plan for i in batch}
    chunks = []
    for task in layout:
        work = [[fresh.pop((s[0], s[1])) for s in b if (s[0], s[1]) in fresh] for b in task]
        chunks.append(Chunk([list(map(tuple, b)) for b in task], work))  # type: ignore[arg-type]
    if fresh:
        left = [i for batch in plan for i in batch if file_key(i.file) in fresh]
        extra = batches(left, batch_size, max_batch_bytes)
        for task in group(extra, max(1, max_tasks - len(chunks))):
            chunks.append(Chunk([[item_spec(i) for i in b] for b in task], task))
    return chunks

"""How many checkpoints a run takes, and checkpoints made on request (the spec's
``create_migration_checkpoint`` / ``save_checkpoint``).

A migration makes its own checkpoints every ``--checkpoint-interval`` files
(:mod:`.migrate`), at most :data:`~context_cleaner.settings.MAX_CHECKPOINTS` of them
(:func:`bounded_interval`). :func:`save_checkpoint` makes one now, for any recorded
migration: a hard-link snapshot of the data tables
(:func:`~context_cleaner.migration.rollback.take_snapshot`) and a ``checkpoint`` row in
the execution log. ``rollback_migration(migration_id,
rollback_to_checkpoint=result.checkpoint)`` returns the data to it. Like the run's own
checkpoints, it is kept until the next migration begins (``rollback.prune_snapshots``),
and of a migration's checkpoints made on request only the newest ``MAX_CHECKPOINTS`` are.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from context_cleaner.bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration import rollback
from context_cleaner.migration.models import CheckpointResult
from context_cleaner.settings import MAX_CHECKPOINTS

ON_REQUEST = "cp-"
"""How the names of checkpoints made on request begin (a run's own are ``cp1``, ``cp2``...)."""


def bounded_interval(files: int, interval: int, most: int = MAX_CHECKPOINTS) -> tuple[int, str]:
    """The interval a run of ``files`` files checkpoints at when asked for one every
    ``interval`` files, and a warning when it is not ``interval``.

    Each checkpoint is a snapshot kept until the next migration, and each kept snapshot
    slows every opening of the embedded engine, so a run takes at most ``most``: when
    ``interval`` would make more, the smallest multiple of it that makes ``most`` or fewer
    is used (checkpoint k still holds exactly the run's first k x interval files).
    """
    if interval <= 0 or files // interval <= most:
        return interval, ""
    wider = (files // ((most + 1) * interval) + 1) * interval
    return wider, (
        f"a checkpoint every {interval:,} files would take {files // interval:,} checkpoints "
        f"over {files:,} files; taking one every {wider:,} files instead "
        f"({files // wider} checkpoints, the most one run takes: each kept snapshot slows "
        "every opening of the database)"
    )


def save_checkpoint(
    bridge: EnhancedTokenDatabaseBridge, checkpoint_data: dict[str, Any]
) -> CheckpointResult:
    """Snapshot and log a checkpoint of ``checkpoint_data["migration_id"]`` (the spec's
    dict: ``completed_files``, ``current_state``, ``total_tokens_processed``)."""
    migration_id = str(checkpoint_data["migration_id"])
    completed = list(checkpoint_data.get("completed_files") or [])
    state = dict(checkpoint_data.get("current_state") or {})
    tokens = int(checkpoint_data.get("total_tokens_processed", state.get("tokens_processed", 0)))
    label = f"{ON_REQUEST}{time.time_ns()}"
    details = {**state, "completed_files": len(completed), "tokens_processed": tokens}
    with bridge.writer() as w:
        snap = rollback.take_snapshot(w.client, bridge.host, migration_id, label)
        # Called every few files (as the spec's loop does), these would pile up like a
        # run's own checkpoints: only the newest are kept.
        rollback.prune_checkpoints(w.client, migration_id, ON_REQUEST, MAX_CHECKPOINTS)
        w.log(migration_id, "checkpoint", label, "completed", details)
    return CheckpointResult(
        migration_id=migration_id,
        checkpoint=label,
        snapshot_id=snap.snapshot_id,
        created_at=datetime.now(UTC),
        completed_files=len(completed),
        tokens_processed=tokens,
        row_counts=dict(snap.row_counts),
    )

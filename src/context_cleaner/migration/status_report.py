"""What ``context-cleaner status`` reports: the database's totals, recent runs, every
tracked file against the disk, the data lag and one run in detail (a plain dict, for
``--json`` and for the terminal rendering alike)."""

from __future__ import annotations

from typing import Any

from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration import file_state, freshness
from context_cleaner.migration.status import get_migration_status


def status_payload(
    bridge: EnhancedTokenDatabaseBridge, migration_id: str | None = None
) -> dict[str, Any]:
    """What ``status --json`` prints: totals, runs, per-file tracking against the disk, lag,
    and ``migration``: the :class:`MigrationStatus` of one run (default the latest) with its
    ``alerts``."""
    # One open engine for every read (the run's status opens its own session: it waits
    # parked), released before the files on disk are compared.
    with bridge.database.held():
        with bridge.reading():
            if not bridge.is_initialised():
                return {
                    "initialised": False,
                    "database": bridge.database.url.redacted(),
                    "totals": None,
                    "runs": [],
                    "files": [],
                    "data_lag_seconds": None,
                }
            tracked = bridge.tracked_files()
            newest = bridge.newest_record_time()
            totals = bridge.get_migration_totals()
            sessions = bridge.count_sessions()
            runs = bridge.migration_runs(limit=10)
        run_status = get_migration_status(bridge, migration_id)
    tracked, doubled = file_state.counted_once(tracked)
    files, on_disk = freshness.file_states(tracked)
    fresh = freshness.measure_freshness(on_disk, freshness.committed_offsets(tracked), newest)
    tracked_keys = {freshness.file_key(t.source_root, t.file_path) for t in tracked}
    states = [f["state"] for f in files]
    return {
        "initialised": True,
        "database": bridge.database.url.redacted(),
        "totals": totals,
        "sessions": sessions,
        "runs": runs,
        "files": files,
        "file_counts": {
            **{s: states.count(s) for s in file_state.STATES},
            "untracked": sum(
                1
                for f in on_disk
                if freshness.file_key(str(f.root), f.relative_path) not in tracked_keys
            ),
        },
        "rows_of_another_folder": doubled,
        "newest_record_time": newest,
        "newest_source_time": fresh.newest_source_time,
        "data_lag_seconds": fresh.data_lag_seconds,
        "migration": run_status.to_dict() if run_status else None,
        "alerts": run_status.alerts if run_status else [],
    }

"""The run tables the bridge writes in :mod:`.writes` and reads in :mod:`.reads`.

One row per run in ``enhanced_analysis_metadata`` (rewritten as the run goes), a line
per step in ``migration_execution_log``, an alert transition per row in
``migration_alerts`` (sql/005). The usage tables have their own modules
(:mod:`.details`, :mod:`.summaries`, :mod:`.tracking`).
"""

from __future__ import annotations

METADATA = "enhanced_analysis_metadata"
EXECUTION_LOG = "migration_execution_log"
ALERTS = "migration_alerts"
"""Alert transitions recorded by runs (sql/005)."""

ALERT_COLUMNS = (
    "migration_id",
    "run_kind",
    "alert",
    "state",
    "raised_at",
    "metric",
    "value",
    "threshold",
    "window_seconds",
    "message",
    "host",
)

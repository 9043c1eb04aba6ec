"""Prefect orchestration of the migration: flows, their tasks and reports (all Prefect is here).

Public names (Prefect is imported only when one of them is first read)::

    historical_migration_flow, incremental_sync_flow, validation_flow, rollback_flow
    FlowRunFailed      a flow's run ended in failure
"""

from __future__ import annotations

from context_cleaner._lazy import TYPE_CHECKING, lazy_face

__all__ = [
    "FlowRunFailed",
    "historical_migration_flow",
    "incremental_sync_flow",
    "rollback_flow",
    "validation_flow",
]

__getattr__, __dir__ = lazy_face(__name__)

if TYPE_CHECKING:  # the names' homes; at run time ``__getattr__`` imports each on first use
    from context_cleaner.orchestration.flows import (
        FlowRunFailed,
        historical_migration_flow,
        incremental_sync_flow,
        rollback_flow,
        validation_flow,
    )

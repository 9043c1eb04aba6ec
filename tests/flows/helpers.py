"""Helpers for the flow tests: read task runs and artifacts back from the Prefect API."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.testing.transcripts import TOKEN_KEYS

EXACT_KEYS = TOKEN_KEYS
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def exact(totals: dict[str, Any]) -> dict[str, int]:
    return {k: int(totals[k]) for k in EXACT_KEYS}


def database_totals(url: str) -> dict[str, int]:
    return exact(EnhancedTokenDatabaseBridge(url).get_migration_totals())


def analysed_totals(source: Path | str) -> dict[str, int]:
    return exact(EnhancedTokenCounter([str(source)], workers=1).analyze().totals.model_dump())


def task_runs(flow_run_id: UUID, *, expected: int | None = None, timeout: float = 30) -> list[Any]:
    """The flow run's task runs, once ``expected`` of them are in a final state.

    Task run states reach the API as events, so the list is read until it settles.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            final = [r for r in runs if r.state and r.state.type.value in FINAL]
            settled = len(final) == len(runs) and (expected is None or len(runs) >= expected)
            if settled or time.monotonic() > deadline:
                return runs
            time.sleep(0.2)


def batch_states(runs: list[Any]) -> Counter[str]:
    """State names (Completed, Cached, Failed ...) of the ``batch-*`` task runs."""
    return Counter(r.state.name for r in runs if r.name.startswith("batch-"))


def artifacts(flow_run_id: UUID) -> dict[str, Any]:
    """The flow run's artifacts by key."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}

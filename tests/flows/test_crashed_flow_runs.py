"""Flow runs whose process is gone end Crashed; runs of other hosts and live ones never do.

Against the session's temporary Prefect API: flow runs are created Running and labelled
as :func:`~context_cleaner.orchestration.crashed.claim_process` labels them, with the
process of a command that has ended (gone), this process (alive), or another host.
"""

from __future__ import annotations

import subprocess
from typing import Any
from uuid import UUID

import pytest

from context_cleaner.bridge.host import default_host
from context_cleaner.orchestration import crashed, flows
from context_cleaner.orchestration.crashed import (
    HOST_LABEL,
    PID_LABEL,
    STARTED_LABEL,
    claim_process,
    end_crashed_flow_runs,
    process_labels,
)

from .conftest import Harness

pytestmark = pytest.mark.slow

FLOWS = (
    flows.historical_migration_flow,
    flows.incremental_sync_flow,
    flows.validation_flow,
    flows.rollback_flow,
)


def _gone_process() -> dict[str, Any]:
    """Labels naming a process of this host that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return {HOST_LABEL: default_host(), PID_LABEL: proc.pid, STARTED_LABEL: 1.0}


def _running(client: Any, labels: dict[str, Any] | None) -> UUID:
    from prefect.states import Running

    run = client.create_flow_run(flows.rollback_flow, parameters={}, state=Running())
    if labels:
        client.update_flow_run_labels(run.id, labels)
    return run.id


def _state(client: Any, run_id: UUID) -> str:
    return str(client.read_flow_run(run_id).state.type.value)


def test_every_flow_names_its_process_when_it_starts() -> None:
    assert tuple(f.name for f in FLOWS) == crashed.FLOW_NAMES
    assert all(claim_process in f.on_running_hooks for f in FLOWS)


def test_only_this_hosts_runs_with_a_gone_process_end_crashed(prefect_harness: Harness) -> None:
    from prefect.client.orchestration import get_client

    gone = _gone_process()
    with get_client(sync_client=True) as client:
        dead = _running(client, gone)
        elsewhere = _running(client, {**gone, HOST_LABEL: "another-host"})
        alive = _running(client, process_labels())
        unlabelled = _running(client, None)  # a worker's run: the worker reports it
        reused = _running(client, {**process_labels(), STARTED_LABEL: 2.0})  # pid now ours

        ended = end_crashed_flow_runs(client)

        assert set(ended) >= {dead, reused}
        assert not set(ended) & {elsewhere, alive, unlabelled}
        assert _state(client, dead) == "CRASHED" and _state(client, reused) == "CRASHED"
        message = client.read_flow_run(dead).state.message
        assert f"pid {gone[PID_LABEL]} on {default_host()}" in message
        for run_id in (elsewhere, alive, unlabelled):
            assert _state(client, run_id) == "RUNNING"
        assert end_crashed_flow_runs(client) == []  # each is ended once


def test_the_start_hook_labels_the_run_and_ends_the_crashed_ones(
    prefect_harness: Harness,
) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        dead = _running(client, _gone_process())
        starting = client.read_flow_run(_running(client, None))
        claim_process(flows.rollback_flow, starting, starting.state)
        assert _state(client, dead) == "CRASHED"
        labels = client.read_flow_run(starting.id).labels
        assert {k: labels[k] for k in process_labels()} == process_labels()
        assert _state(client, starting.id) == "RUNNING"

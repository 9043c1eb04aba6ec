"""Flow runs whose process died end ``Crashed`` in Prefect, as their run records end ``crashed``.

A flow run killed with its process (SIGKILL, a machine that stopped) stays
``Running`` in Prefect for good when nobody is left to report it: a worker or a
``serve`` process reports its children, but a ``--engine prefect`` command runs its
flow in its own process. So each flow run names its process on the flow run, as
labels (:func:`claim_process`, an ``on_running`` hook: this host, the pid, the time
the process started), as the project's run record names it in ``details.process``.

:func:`end_crashed_flow_runs` then asks the operating system about the process of
each ``Running`` flow run of these flows, with the same verdict as for run records
(:func:`~context_cleaner.bridge.runs.process_state`: gone, a zombie, or the pid now
another process's): those of this host whose process is gone are set ``Crashed``
(``set_flow_run_state``). A run of another host, or one without the labels (started by
a worker, which reports its own), is never touched. It is called by the next flow run
(in the same hook) and by ``context-cleaner status`` when it shows a crashed run; the
run record itself is closed ``crashed`` by the next migrate or sync of the host
(:mod:`context_cleaner.migration.crashed_runs`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from context_cleaner.bridge.host import default_host
from context_cleaner.bridge.runs import GONE, process_state, this_process

#: The flows whose runs carry the labels (their ``@flow`` names in :mod:`.flows`).
FLOW_NAMES = ("historical-migration", "incremental-sync", "validation", "rollback")
HOST_LABEL = "context-cleaner.host"
PID_LABEL = "context-cleaner.pid"
STARTED_LABEL = "context-cleaner.process-started"


def process_labels(host: str | None = None) -> dict[str, Any]:
    """The labels naming this process on a flow run."""
    process = this_process()
    return {
        HOST_LABEL: host or default_host(),
        PID_LABEL: process["pid"],
        STARTED_LABEL: process["started"],
    }


def crash_message(labels: dict[str, Any]) -> str:
    return (
        f"Its process (pid {labels.get(PID_LABEL)} on {labels.get(HOST_LABEL)}) ended without "
        "finishing the run (killed, crashed, or the machine stopped); noticed by "
        "context-cleaner on that host."
    )


def end_crashed_flow_runs(
    client: Any, host: str | None = None, skip: UUID | None = None
) -> list[UUID]:
    """Set ``Crashed`` the ``Running`` flow runs of this host whose process is gone; their ids.

    ``client``: a synchronous Prefect client; ``skip``: the flow run asking (alive)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    host = host or default_host()
    running = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_NAMES))),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
        ),
    )
    ended = []
    for run in running:
        labels = dict(run.labels or {})
        if run.id == skip or HOST_LABEL not in labels:
            continue
        process = {"pid": labels.get(PID_LABEL), "started": labels.get(STARTED_LABEL)}
        if process_state(process, str(labels[HOST_LABEL]), host) != GONE:
            continue  # alive, or another host's (unknown from here)
        result = client.set_flow_run_state(run.id, Crashed(message=crash_message(labels)))
        if result.status.value == "ACCEPT":
            ended.append(run.id)
    return ended


def end_crashed_flow_runs_now() -> list[UUID]:
    """:func:`end_crashed_flow_runs` through the configured Prefect API (``status``)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return end_crashed_flow_runs(client)


def claim_process(flow: Any, flow_run: Any, state: Any) -> None:
    """``on_running`` hook of every flow: label the run with this process, then end the
    crashed runs of this host. Never fails the run (it is bookkeeping)."""
    from prefect.client.orchestration import get_client
    from prefect.logging.loggers import flow_run_logger

    logger = flow_run_logger(flow_run, flow)
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(flow_run.id, process_labels())
            for ended in end_crashed_flow_runs(client, skip=flow_run.id):
                logger.warning("Flow run %s had crashed (its process is gone): set Crashed.", ended)
    except Exception as exc:  # bookkeeping: the run goes on without it
        logger.warning("Could not label this flow run or end crashed ones: %s", exc)

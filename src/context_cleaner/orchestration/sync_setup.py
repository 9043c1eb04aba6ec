"""The spec's ``setup_incremental_sync``: schedule the sync, or say exactly how to start it.

With a Prefect API configured (``PREFECT_API_URL`` set and answering) the sync becomes a
deployment of the ``incremental-sync`` flow, every ``sync_interval_minutes``, on the
``context-cleaner`` process work pool (created when missing), as deployments/prefect.yaml
defines the hourly one; a worker of that pool runs it (``prefect worker start --pool
context-cleaner``). Its name, :data:`DEPLOYMENT`, is neither the YAML's nor ``serve``'s
(``hourly-sync``), so the three never replace each other; calling again updates it.

Without an API nothing is started: the result's ``next_steps`` give the exact commands
(a Prefect server and this call again, ``context-cleaner serve``, or a cron line).
``enable_real_time`` adds the command of the real-time sync, ``context-cleaner sync
--watch``, rather than starting it: a library call must not leave a process running
behind its caller (a script ends, the watch would live on unseen).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from datetime import UTC, datetime, timedelta

from context_cleaner.bridge.database import Database
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration.models import SyncSetupResult
from context_cleaner.orchestration.engine import api_problem
from context_cleaner.settings import API_ENV, PASSWORD_ENV, URL_ENV, Settings

#: The deployment this function makes (flow ``incremental-sync``).
DEPLOYMENT = "api-sync"
#: The work pool of deployments/prefect.yaml.
WORK_POOL = "context-cleaner"
FLOW = "incremental-sync"


def interval_cron(minutes: int) -> str | None:
    """A cron expression for every ``minutes`` (None when cron cannot say it)."""
    if minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    if minutes == 60:
        return "0 * * * *"
    if minutes % 60 == 0 and 1440 % minutes == 0:
        return f"0 */{minutes // 60} * * *" if minutes < 1440 else "0 0 * * *"
    return None


def _hour_start() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _cli_options(settings: Settings, database: Database | None) -> str:
    """The ``--source-dir``/``--clickhouse-url`` options that name this migrator's data
    (a server's password is left out: the command reads it from its environment)."""
    parts: list[str] = []
    for folder in settings.sources or []:
        parts += ["--source-dir", folder]
    if database is not None:
        parts += ["--clickhouse-url", database.url.with_password("").dsn]
    text = "".join(" " + shlex.quote(p) for p in parts)
    if database is None and settings.clickhouse_url:
        text += f' --clickhouse-url "${URL_ENV}"'
    return text


def setup_incremental_sync(
    sync_interval_minutes: int = 60,
    enable_real_time: bool = False,
    *,
    settings: Settings | None = None,
    database: Database | None = None,
) -> SyncSetupResult:
    """Schedule the sync every ``sync_interval_minutes`` (see the module docstring).

    ``settings``: where the transcripts are and how to read them (the deployment's
    parameters); ``database``: the migrator's database (its URL, without a password,
    becomes the ``clickhouse_url`` parameter).
    """
    if sync_interval_minutes < 1:
        raise ConfigurationError(
            f"sync_interval_minutes must be at least 1 (got {sync_interval_minutes})."
        )
    settings = settings or Settings()
    options = _cli_options(settings, database)
    watch = f"context-cleaner sync --watch{options}"
    cron = interval_cron(sync_interval_minutes)
    url = os.environ.get(API_ENV)
    problem = api_problem(url) if url else f"{API_ENV} is not set"
    if url and problem is None:
        result = _deploy(sync_interval_minutes, settings, database, url)
        if enable_real_time:
            result.real_time_enabled = True
            result.next_steps.append(f"{watch}   # real-time sync as files change")
        return result
    steps = []
    if database is not None and database.url.password:
        steps.append(f"export {PASSWORD_ENV}=...   # the server's password, for every command")
    steps += [
        "prefect server start   # then, in every other terminal: "
        f"export {API_ENV}=http://127.0.0.1:4200/api",
        f"then call setup_incremental_sync({sync_interval_minutes}) again (a deployment every "
        f"{sync_interval_minutes} min on the '{WORK_POOL}' work pool), or run "
        f"`context-cleaner serve{options}"
        + (f" --sync-cron '{cron}'" if cron else "")
        + "` (serves the sync from that process)",
    ]
    if cron:
        steps.append(f"or, without Prefect, a crontab line: {cron} context-cleaner sync{options}")
    if enable_real_time:
        steps.append(f"{watch}   # real-time sync as files change, no Prefect needed")
    return SyncSetupResult(
        scheduled=False,
        scheduler="local",
        sync_interval_minutes=sync_interval_minutes,
        real_time_enabled=False,
        api_url=url,
        schedule=f"every {sync_interval_minutes} minutes",
        next_steps=steps,
        message=f"Nothing was scheduled: no Prefect API ({problem}). Start the sync with "
        "one of next_steps.",
    )


def _deploy(
    minutes: int, settings: Settings, database: Database | None, api_url: str
) -> SyncSetupResult:
    """The Prefect deployment of the sync, on the work pool of deployments/prefect.yaml."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.schedules import Interval
    from prefect.workers.process import ProcessWorker

    from context_cleaner.orchestration import flows
    from context_cleaner.orchestration.engine import flow_parameters

    if database is not None and settings.clickhouse_url is None:
        settings = settings.replace(clickhouse_url=database.url.with_password("").dsn)
    parameters = (
        flow_parameters("sync", settings, database)
        if database is not None
        else {"source_dirs": settings.sources, "clickhouse_url": None, "prices": settings.prices}
    )
    pool = WorkPoolCreate(
        name=WORK_POOL,
        type="process",
        base_job_template=ProcessWorker.get_default_base_job_template(),
    )
    # The pool exists when the YAML's steps (or an earlier call) made it.
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(pool)
    deployment = flows.incremental_sync_flow.to_deployment(
        name=DEPLOYMENT,
        # Anchored on the hour, in UTC: every 60 minutes is on the hour, as the YAML's cron.
        schedule=Interval(timedelta(minutes=minutes), anchor_date=_hour_start(), timezone="UTC"),
        parameters=parameters,
        description=f"context-cleaner sync every {minutes} minutes (setup_incremental_sync).",
        tags=["context-cleaner"],
        concurrency_limit=1,
        work_pool_name=WORK_POOL,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    deployment_id = deployment.apply(work_pool_name=WORK_POOL)
    steps = [f"prefect worker start --pool {WORK_POOL}   # keep it running: it runs the schedule"]
    if database is not None and database.url.password:
        steps.insert(0, f"give the worker {PASSWORD_ENV} (never a deployment parameter)")
    return SyncSetupResult(
        scheduled=True,
        scheduler="prefect",
        sync_interval_minutes=minutes,
        real_time_enabled=False,
        deployment_name=f"{FLOW}/{DEPLOYMENT}",
        deployment_id=str(deployment_id),
        work_pool=WORK_POOL,
        schedule=f"every {minutes} minutes",
        api_url=api_url,
        next_steps=steps,
        message=f"Deployment {FLOW}/{DEPLOYMENT} runs the sync every {minutes} minutes on "
        f"the '{WORK_POOL}' work pool; a worker of that pool must be running.",
    )

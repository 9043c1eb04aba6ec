"""The Prefect engine of the CLI: run a flow in this process, or serve the scheduled ones.

``context-cleaner migrate|sync|validate|rollback --engine prefect`` (or ``auto``
with ``PREFECT_API_URL`` set) calls :func:`run_with_prefect`, which runs the
matching flow of :mod:`context_cleaner.orchestration.flows` here, against the
Prefect API in ``PREFECT_API_URL`` (or Prefect's temporary server when unset:
10-20 s more per run), and returns the same result the local engine returns,
so the CLI prints the same text or JSON and exits with the same code.

``context-cleaner serve`` calls :func:`serve_flows`: the hourly sync and the
daily validation as deployments of this process (``prefect.serve``), which
needs a running ``prefect server start``.

Database passwords never become flow parameters (Prefect stores and shows
those): a password in ``--clickhouse-url`` is moved to
``CONTEXT_CLEANER_CLICKHOUSE_PASSWORD`` for the run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from context_cleaner.bridge.database import Database
from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import API_ENV, PASSWORD_ENV, Settings


def _database_parameter(
    settings: Settings, database: Database
) -> tuple[str | None, dict[str, str]]:
    """The ``clickhouse_url`` parameter (None: the worker's own default), and the
    environment that carries its password; ``database`` is the settings' database, open."""
    if not settings.clickhouse_url:
        return None, {}
    url = database.url
    if url.is_embedded or not url.password:
        return str(settings.clickhouse_url), {}  # as given (a checked flag is a str subclass)
    return url.with_password("").dsn, {PASSWORD_ENV: url.password}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def check_api() -> None:
    """Fail with a clear message when ``PREFECT_API_URL`` is set but does not answer."""
    url = os.environ.get(API_ENV)
    if not url:
        sys.stderr.write(
            "Prefect: PREFECT_API_URL is not set, so this run starts Prefect's temporary "
            "server (10-20 s). Start one with `prefect server start` and set PREFECT_API_URL "
            "to keep the run history.\n"
        )
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ConfigurationError(
            f"The Prefect API at {url} does not answer ({problem}). Start it with "
            "`prefect server start`, fix PREFECT_API_URL, or run with --engine local."
        )


def flow_parameters(
    kind: str, settings: Settings, database: Database, **extra: Any
) -> dict[str, Any]:
    """The flow parameters for a command's settings (``clickhouse_url`` without password);
    ``extra``: rollback's ``migration_id``, ``mode`` and ``to_checkpoint``."""
    url, _ = _database_parameter(settings, database)
    if kind == "rollback":
        return {**extra, "clickhouse_url": url}
    common = {
        "source_dirs": settings.sources,
        "clickhouse_url": url,
        "prices": settings.prices,
    }
    if kind == "validate":
        return {
            **common,
            "full_validation": settings.full_validation,
            "sample_size": settings.sample_size,
            "tolerance": settings.tolerance,
        }
    run = {
        **common,
        "batch_size": settings.batch_size,
        "parallel_workers": settings.parallel_workers,
        "dry_run": settings.dry_run,
    }
    if kind == "migrate":
        run["checkpoint_interval"] = settings.checkpoint_interval
        if settings.force:
            run["force"] = True  # the flow's parameter of the same name
    return run


def run_with_prefect(kind: str, settings: Settings, database: Database, **extra: Any) -> Any:
    """Run ``migrate``, ``sync``, ``validate`` or ``rollback`` as a flow; return its result.

    A flow that ended Failed because its run failed (file errors, validation) still
    returns the result, for the CLI to print and exit non-zero on, as the local engine
    does; every other error is raised.
    """
    check_api()
    from context_cleaner.orchestration import flows

    runs = {
        "migrate": flows.historical_migration_flow,
        "sync": flows.incremental_sync_flow,
        "validate": flows.validation_flow,
        "rollback": flows.rollback_flow,
    }
    if kind not in runs:
        raise ConfigurationError(f"No Prefect flow for {kind!r}; choose {', '.join(runs)}.")
    _, env = _database_parameter(settings, database)
    with _environment(env):
        try:
            return runs[kind](**flow_parameters(kind, settings, database, **extra))
        except flows.FlowRunFailed as exc:
            if exc.result is None:
                raise
            return exc.result


def serve_flows(settings: Settings, database: Database) -> None:
    """Serve the hourly sync and the daily validation from this process until interrupted."""
    if not os.environ.get(API_ENV):
        raise ConfigurationError(
            "`context-cleaner serve` schedules runs, which needs a running Prefect server: "
            "start one with `prefect server start` and set "
            f"{API_ENV}=http://127.0.0.1:4200/api, then run serve again."
        )
    check_api()
    from prefect import serve
    from prefect.deployments.runner import EntrypointType

    from context_cleaner.orchestration import flows

    _, env = _database_parameter(settings, database)
    os.environ.update(env)  # the served runs are this process's children: they inherit it
    sync = flows.incremental_sync_flow.to_deployment(
        name="hourly-sync",
        cron=settings.sync_cron,
        parameters=flow_parameters("sync", settings, database),
        description="context-cleaner sync every hour (context-cleaner serve).",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    validation = flows.validation_flow.to_deployment(
        name="daily-validation",
        cron=settings.validation_cron,
        parameters={**flow_parameters("validate", settings, database), "full_validation": True},
        description="context-cleaner validate every day (context-cleaner serve).",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    serve(sync, validation, print_starting_message=True)

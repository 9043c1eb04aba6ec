"""The Prefect engine of the CLI: run a flow in this process, or serve the scheduled ones.

``context-cleaner migrate|sync|validate|rollback --engine prefect`` (or ``auto``
with ``PREFECT_API_URL`` set) calls :func:`run_with_prefect`, which runs the
matching flow of :mod:`context_cleaner.orchestration.flows` here, against the
Prefect API in ``PREFECT_API_URL`` (or a temporary server when none is configured:
10-20 s more per run; it dies with this process, :mod:`.temporary_server`), and
returns the same result the local engine returns, so the CLI prints the same text or
JSON and exits with the same code.

``context-cleaner serve`` calls :func:`serve_flows`: the hourly sync and the
daily validation as deployments of this process (``prefect.serve``), which needs a
running ``prefect server start``. They have names of their own, with this host in
them (:func:`served_names`), so they never replace the work-pool deployments of
``deployments/prefect.yaml``; stopping ``serve`` pauses only them (Prefect's runner
pauses what it registered), and starting it again resumes them.

Database passwords never become flow parameters (Prefect stores and shows
those): a password in ``--clickhouse-url`` is moved to
``CONTEXT_CLEANER_CLICKHOUSE_PASSWORD`` for the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.host import default_host
from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import API_ENV, HOST_ENV, PASSWORD_ENV, Settings


def _database_parameter(
    settings: Settings, database: Database
) -> tuple[str | None, dict[str, str]]:
    """The ``clickhouse_url`` parameter (None: the worker's own default), and the
    environment that carries its password; ``database`` is the settings' database, open.
    With a credentials block the run loads the block itself: no URL, no password here."""
    if not settings.clickhouse_url or settings.credentials_block:
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


NO_API_NOTE = (
    "Prefect: PREFECT_API_URL is not set, so this run starts Prefect's temporary server "
    "(10-20 s). Start one with `prefect server start` and set PREFECT_API_URL to keep the "
    "run history in one place.\n"
)


def api_problem(url: str) -> str | None:
    """Why the Prefect API at ``url`` cannot be used (None: it answers its health check).

    Asked of ``url`` itself, through Prefect's client: it sends the API key a Prefect
    Cloud workspace needs (``PREFECT_API_KEY``)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.settings import PREFECT_API_KEY

    with SyncPrefectClient(url, api_key=PREFECT_API_KEY.value()) as client:
        problem = client.api_healthcheck()
    return None if problem is None else str(problem)


def check_api(url: str) -> None:
    """Fail with a clear message when the Prefect API at ``url`` does not answer."""
    if (problem := api_problem(url)) is not None:
        raise ConfigurationError(
            f"The Prefect API at {url} does not answer ({problem}). Start it with "
            "`prefect server start`, fix PREFECT_API_URL, or run with --engine local."
        )


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """The Prefect API of a run, checked; yields its URL. ``PREFECT_API_URL`` or the Prefect
    profile's; with neither, a temporary server of this process for the block."""
    if url := os.environ.get(API_ENV):
        check_api(url)
        yield url
        return
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if url := PREFECT_API_URL.value():
        check_api(url)
        yield url
        return
    sys.stderr.write(NO_API_NOTE)
    from context_cleaner.orchestration.temporary_server import STARTUP_SECONDS, temporary_server

    timeout = max(STARTUP_SECONDS, float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))
    with temporary_server(timeout) as url, temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            yield url
        finally:
            _drain_to_api()


def _drain_to_api() -> None:
    """Send the logs and events still queued, while the temporary server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def flow_parameters(
    kind: str, settings: Settings, database: Database, **extra: Any
) -> dict[str, Any]:
    """The flow parameters for a command's settings (``clickhouse_url`` without password);
    ``extra``: rollback's ``migration_id``, ``mode`` and ``to_checkpoint``."""
    url, _ = _database_parameter(settings, database)
    where = {"clickhouse_url": url, "credentials_block": settings.credentials_block}
    if kind == "rollback":
        return {**extra, **where}
    common = {"source_dirs": settings.sources, **where, "prices": settings.prices}
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
    with prefect_api(), _environment(env):
        try:
            # No flow-level retries here: the person at the terminal sees the failure at
            # once, as with the local engine (the bridge retried connecting already).
            run = runs[kind].with_options(retries=0)
            return run(**flow_parameters(kind, settings, database, **extra))
        except flows.FlowRunFailed as exc:
            if exc.result is None:
                raise
            return exc.result


def served_names(host: str | None = None) -> tuple[str, str]:
    """The names ``serve`` gives its sync and validation deployments: this host's own, so
    neither the work pool's (``hourly-sync``, ``daily-validation``) nor another host's
    ``serve`` is ever replaced."""
    host = re.sub(r"[/%&<>]", "-", host or default_host())  # characters Prefect refuses
    return f"hourly-sync@{host}", f"daily-validation@{host}"


def _check_served(client: Any, flow_name: str, name: str, poll_seconds: float) -> None:
    """Refuse a deployment name ``serve`` did not register, or one another ``serve`` serves."""
    from prefect.exceptions import ObjectNotFound

    try:
        found = client.read_deployment_by_name(f"{flow_name}/{name}")
    except ObjectNotFound:
        return
    if found.work_pool_name:
        raise ConfigurationError(
            f"The deployment {flow_name}/{name} belongs to the work pool "
            f"{found.work_pool_name!r}, not to `context-cleaner serve`, which leaves it "
            f"alone: delete or rename it, or set {HOST_ENV} to serve under "
            "another name."
        )
    if found.last_polled is not None and not found.paused:  # a stopped serve paused it
        since = time.time() - found.last_polled.timestamp()
        if since < 3 * poll_seconds:
            raise ConfigurationError(
                f"Another `context-cleaner serve` serves {flow_name}/{name} (it polled "
                f"{since:.0f} s ago). Stop it first (a killed one is forgotten after "
                f"{3 * poll_seconds:.0f} s), or set {HOST_ENV} to serve under "
                "another name."
            )


def serve_flows(settings: Settings, database: Database) -> None:
    """Serve the hourly sync and the daily validation from this process until interrupted,
    as this host's own deployments (:func:`served_names`)."""
    if not os.environ.get(API_ENV):
        raise ConfigurationError(
            "`context-cleaner serve` schedules runs, which needs a running Prefect server: "
            "start one with `prefect server start` and set "
            f"{API_ENV}=http://127.0.0.1:4200/api, then run serve again."
        )
    check_api(os.environ[API_ENV])
    from prefect import serve
    from prefect.client.orchestration import get_client
    from prefect.deployments.runner import EntrypointType
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY

    from context_cleaner.orchestration import flows

    sync_name, validation_name = served_names()
    poll = float(PREFECT_RUNNER_POLL_FREQUENCY.value())
    with get_client(sync_client=True) as client:
        _check_served(client, flows.incremental_sync_flow.name, sync_name, poll)
        _check_served(client, flows.validation_flow.name, validation_name, poll)
    _, env = _database_parameter(settings, database)
    os.environ.update(env)  # the served runs are this process's children: they inherit it
    sync = flows.incremental_sync_flow.to_deployment(
        name=sync_name,
        cron=settings.sync_cron,
        parameters=flow_parameters("sync", settings, database),
        description="context-cleaner sync every hour, served by `context-cleaner serve`.",
        tags=["context-cleaner", "serve"],
        concurrency_limit=1,  # as the work pool's hourly-sync: a slow sync is not overlapped
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    validation = flows.validation_flow.to_deployment(
        name=validation_name,
        cron=settings.validation_cron,
        parameters={**flow_parameters("validate", settings, database), "full_validation": True},
        description="context-cleaner validate every day, served by `context-cleaner serve`.",
        tags=["context-cleaner", "serve"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # Prefect's runner pauses the deployments it registered when it stops: these two only.
    serve(sync, validation, print_starting_message=True, pause_on_shutdown=True)

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

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from context_cleaner.bridge.url import PASSWORD_ENV, parse_url
from context_cleaner.errors import ConfigurationError

API_ENV = "PREFECT_API_URL"
SYNC_CRON = "0 * * * *"
VALIDATION_CRON = "30 3 * * *"


def _database_parameter(args: argparse.Namespace) -> tuple[str | None, dict[str, str]]:
    """The ``clickhouse_url`` parameter, and the environment that carries its password."""
    raw = getattr(args, "clickhouse_url", None)
    if not raw:
        return None, {}
    url = parse_url(raw)
    if url.is_embedded or not url.password:
        return raw, {}
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


def flow_parameters(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The flow parameters for a CLI command's flags (``clickhouse_url`` without password)."""
    url, _ = _database_parameter(args)
    if kind == "rollback":
        return {
            "migration_id": args.migration_id,
            "mode": args.mode,
            "to_checkpoint": args.to_checkpoint,
            "clickhouse_url": url,
        }
    common = {"source_dirs": args.source_dir, "clickhouse_url": url, "prices": args.prices}
    if kind == "validate":
        return {
            **common,
            "full_validation": args.full_validation,
            "sample_size": args.sample_size,
            "tolerance": args.tolerance,
        }
    run = {
        **common,
        "batch_size": args.batch_size,
        "parallel_workers": args.parallel_workers,
        "dry_run": args.dry_run,
    }
    if kind == "migrate":
        run["checkpoint_interval"] = args.checkpoint_interval
        if getattr(args, "force", False):
            run["force"] = True  # the flow's parameter of the same name
    return run


def run_with_prefect(kind: str, args: argparse.Namespace) -> Any:
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
    _, env = _database_parameter(args)
    with _environment(env):
        try:
            return runs[kind](**flow_parameters(kind, args))
        except flows.FlowRunFailed as exc:
            if exc.result is None:
                raise
            return exc.result


def serve_flows(args: argparse.Namespace) -> None:
    """Serve the hourly sync and the daily validation from this process until interrupted."""
    if not os.environ.get(API_ENV):
        raise ConfigurationError(
            "`context-cleaner serve` schedules runs, which needs a running Prefect server: "
            "start one with `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api, then run serve again."
        )
    check_api()
    from prefect import serve
    from prefect.deployments.runner import EntrypointType

    from context_cleaner.orchestration import flows

    url, env = _database_parameter(args)
    os.environ.update(env)  # the served runs are this process's children: they inherit it
    source = {"source_dirs": args.source_dir, "clickhouse_url": url, "prices": args.prices}
    sync = flows.incremental_sync_flow.to_deployment(
        name="hourly-sync",
        cron=args.sync_cron,
        parameters={
            **source,
            "batch_size": args.batch_size,
            "parallel_workers": args.parallel_workers,
        },
        description="context-cleaner sync every hour (context-cleaner serve).",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    validation = flows.validation_flow.to_deployment(
        name="daily-validation",
        cron=args.validation_cron,
        parameters={**source, "full_validation": True},
        description="context-cleaner validate every day (context-cleaner serve).",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    serve(sync, validation, print_starting_message=True)

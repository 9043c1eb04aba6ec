"""``context-cleaner dashboard``: flags, checks, then uvicorn.

FastAPI and uvicorn are imported only when the command runs, so the rest of
the CLI (and ``--help``) stays fast.
"""

from __future__ import annotations

import argparse
import socket
import sys

from context_cleaner.cli.common import (
    add_command,
    add_database_args,
    add_pricing_args,
    add_source_args,
    command_settings,
)
from context_cleaner.cli.types import integer
from context_cleaner.dashboard.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SOURCES,
    TOKEN_ENV,
    DashboardSettings,
    is_loopback,
)
from context_cleaner.errors import ConfigurationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}); any non-loopback address "
        "requires a token",
    )
    parser.add_argument(
        "--port",
        type=integer(0, 65535),
        default=DEFAULT_PORT,
        help=f"TCP port (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="database",
        help="database (the migrated data) or direct (read the transcripts: immediate "
        "rollback while the database is repaired); default database",
    )
    add_database_args(parser)
    add_source_args(
        parser, "transcript folder for --source direct; repeatable (default: the Claude folders)"
    )
    add_pricing_args(parser, "JSON price overrides (as for `analyze --prices`)")
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"require this token on every request (default ${TOKEN_ENV}); "
        "needed for a non-loopback --host",
    )


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another "
                "--port (or stop what is using it) and run again."
            ) from exc


def cmd_dashboard(args: argparse.Namespace) -> int:
    """serve the usage and migration dashboard in your browser

    A web page with token and cost totals, tokens and cost per day, by model and project, top
    sessions, recent migration runs and data freshness, read from the database (or, with
    --source direct, straight from the transcripts). Listens on {host}:{port} by default;
    another address needs a token.
    """
    run = command_settings(args)  # the database, transcripts and prices, as every command
    settings = DashboardSettings.build(
        host=args.host,
        port=args.port,
        source=args.source,
        clickhouse_url=run.clickhouse_url,
        source_dirs=run.sources,
        prices=run.prices,
        token=args.token,
    )
    _check_port(settings.host, settings.port)
    import uvicorn

    from context_cleaner.dashboard.app import LOOPBACK_HOSTS, create_app
    from context_cleaner.dashboard.sources import open_source

    source = open_source(settings)
    allowed = None
    if not settings.token and is_loopback(settings.host):
        allowed = LOOPBACK_HOSTS | {settings.host}
    app = create_app(source, token=settings.token, allowed_hosts=allowed)
    database = getattr(source, "database", None)
    where = database.url.redacted() if database is not None else "transcripts"
    sys.stderr.write(
        f"Dashboard ({settings.source}: {where}) at {settings.url()}\nPress Ctrl+C to stop.\n"
    )
    sys.stderr.flush()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``dashboard`` subcommand to the CLI."""
    parser = add_command(sub, cmd_dashboard, host=DEFAULT_HOST, port=DEFAULT_PORT)
    add_arguments(parser)

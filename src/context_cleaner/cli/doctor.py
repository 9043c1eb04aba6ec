"""``context-cleaner doctor``: is everything in place to keep the whole history?

Checks the transcript roots, Claude Code's ``cleanupPeriodDays``, the database, the last
sync, the hourly schedule and the dashboard token. Exit 0 unless a check fails.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from context_cleaner.migration.doctor import Check, run_checks


def check_dashboard_token(environ: Mapping[str, str]) -> Check:
    from context_cleaner.dashboard.settings import MIN_TOKEN_LENGTH, TOKEN_ENV

    token = environ.get(TOKEN_ENV, "")
    if not token:
        return Check(
            "dashboard_token",
            "ok",
            f"{TOKEN_ENV} is not set: the dashboard may listen on the loopback interface only.",
            f"to serve other machines, set {TOKEN_ENV} (16+ characters) first",
        )
    if len(token) < MIN_TOKEN_LENGTH:
        return Check(
            "dashboard_token",
            "fail",
            f"{TOKEN_ENV} is shorter than {MIN_TOKEN_LENGTH} characters.",
            f"set {TOKEN_ENV} to a random value, e.g. $(openssl rand -hex 24)",
        )
    return Check("dashboard_token", "ok", f"{TOKEN_ENV} is set for non-loopback use.")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from context_cleaner.cli.common import add_database_args, add_source_args

    p = sub.add_parser(
        "doctor",
        help="check what keeps your history: retention, database, sync schedule",
        description="Check the transcript roots, Claude Code's cleanupPeriodDays, the "
        "database, the last sync, the hourly schedule and the dashboard token.",
        epilog="Exit status: 0 when no check fails (warnings included), 1 when one fails.",
    )
    add_source_args(p)
    add_database_args(p)
    p.add_argument("--json", action="store_true", help='{"checks": [{name, status, message, fix}]}')
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from context_cleaner.cli.common import (
        EXIT_FAILED,
        EXIT_OK,
        command_settings,
        escape,
        print_json,
        stdout_console,
    )

    settings = command_settings(args)
    checks = run_checks(settings.clickhouse_url, settings.sources)
    checks.append(check_dashboard_token(os.environ))
    if args.json:
        print_json({"checks": [c.as_dict() for c in checks]})
    else:
        out = stdout_console()
        marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        for c in checks:
            out.print(f"{marks[c.status]} {c.name}: {escape(c.message)}", soft_wrap=True)
            if c.fix and c.status != "ok":
                out.print(f"     fix: {escape(c.fix)}", soft_wrap=True)
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else EXIT_OK

"""Helpers for the migration tests: run the CLI, read the database, compare with the analyser."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.report import AnalysisReport
from context_cleaner.bridge import SUMMARIES, Database
from context_cleaner.bridge.buckets import BUCKETS, rollup_differences
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge, query_rows
from context_cleaner.testing.transcripts import TOKEN_KEYS as MANIFEST_KEYS

REPO = Path(__file__).resolve().parents[2]
URL_ENV = "CONTEXT_CLEANER_CLICKHOUSE_URL"
TOKEN_KEYS = (*MANIFEST_KEYS, "records")
#: The tables a migration writes and a rollback restores (compared row for row).
DATA_TABLES = (
    "enhanced_token_details",
    "enhanced_token_summaries",
    "enhanced_token_buckets",
    "migration_file_tracking",
)


def cli_env(url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: the local engine, the bundled prices, ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
    env.pop("CONTEXT_CLEANER_PRICES", None)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if url is not None:
        env[URL_ENV] = url
    env.update(extra)
    return env


def run_script_once(script: Path, timeout: float = 300) -> list[str]:
    """Run a user's ``script`` as ``python script.py``; its output lines, after checking it
    succeeded and ran once (it prints ``SCRIPT STARTED`` first: a reader process that
    imported it again would print it again)."""
    out = subprocess.run(
        [sys.executable, str(script)],
        env=cli_env(),
        cwd=script.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert sum(line.startswith("SCRIPT STARTED") for line in lines) == 1, out.stdout
    return lines


def cli_command(*args: str, module: str = "context_cleaner") -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_cli(
    *args: str,
    url: str | None = None,
    module: str = "context_cleaner",
    timeout: float = 180,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module> ARGS`` to completion (stdin is not a terminal)."""
    return subprocess.run(
        cli_command(*args, module=module),
        env=dict(env) if env is not None else cli_env(url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def run_json(*args: str, url: str, ok: bool = True, **kw: Any) -> dict[str, Any]:
    """Run a command with ``--json`` and parse its output (asserting its exit code)."""
    out = run_cli(*args, "--json", url=url, **kw)
    if ok:
        assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr}"
    else:
        assert out.returncode != 0, out.stdout[-3000:]
    return json.loads(out.stdout)


def analyse(source: Path | str) -> AnalysisReport:
    """What the analyser says of ``source`` (the reference every database state must equal)."""
    return EnhancedTokenCounter([str(source)], workers=1).analyze()


def bridge(url: str) -> EnhancedTokenDatabaseBridge:
    return EnhancedTokenDatabaseBridge(Database(url, lock_timeout=30))


def pick(totals: Mapping[str, Any]) -> dict[str, Any]:
    """The exact (integer) keys of a totals mapping."""
    return {k: totals[k] for k in TOKEN_KEYS}


def assert_database_equals(b: EnhancedTokenDatabaseBridge, report: AnalysisReport) -> None:
    """Totals (rows and rollup), per session and per day: the database equals the analyser."""
    with b.database.held():  # one open engine for all the reads
        _assert_database_equals(b, report)


def _assert_database_equals(b: EnhancedTokenDatabaseBridge, report: AnalysisReport) -> None:
    want = report.totals.model_dump()
    for name, got in (
        ("get_migration_totals", b.get_migration_totals()),
        ("summary_totals", b.summary_totals()),
    ):
        assert pick(got) == pick(want), name
        assert got["cost_usd"] == pytest.approx(want["cost_usd"], rel=1e-9, abs=1e-9), name
    sessions = {s.session_id: pick(s.model_dump()) for s in report.sessions}
    by_session = {row["session"]: pick(row) for row in b.totals_by("session")}
    assert by_session == sessions
    detail_sessions = {k: pick(v) for k, v in b.detail_totals_by_session().items()}
    assert detail_sessions == sessions
    days = {d.date: pick(d.model_dump()) for d in report.days}
    assert {row["day"]: pick(row) for row in b.totals_by("day")} == days
    assert count_counted(b) == report.totals.records
    with b.database.session() as client:  # every rollup group equals its counted rows
        assert rollup_differences(client) == {SUMMARIES: [], BUCKETS: []}


def count_counted(b: EnhancedTokenDatabaseBridge) -> int:
    """Rows of the counted view (FINAL, rule 4): one per counted record, never a duplicate."""
    with b.database.session() as client:
        return int(query_rows(client, "SELECT count() FROM counted_token_details")[0][0])


def dump_tables(
    db: str | Database, tables: Sequence[str] = DATA_TABLES
) -> dict[str, list[tuple[Any, ...]] | None]:
    """Every row of each table, sorted (``None`` for a table that does not exist).

    Tables of the Replacing family are read with ``FINAL``: a background merge may
    collapse replaced versions at any moment without changing what the table holds.
    """
    out: dict[str, Any] = {}
    database = db if isinstance(db, Database) else Database(db, lock_timeout=30)
    with database.session() as client:
        engines = dict(
            query_rows(
                client,
                "SELECT name, engine FROM system.tables WHERE database = currentDatabase()",
            )
        )
        for table in tables:
            if table not in engines:
                out[table] = None
                continue
            final = " FINAL" if "Replacing" in engines[table] else ""
            rows = query_rows(client, f"SELECT * FROM {table}{final} ORDER BY ALL")
            out[table] = [tuple(r) for r in rows]
    return out


def owned_tables(url: str) -> list[str]:
    """Names of the tables and views in the database."""
    with Database(url, lock_timeout=30).session() as client:
        rows = query_rows(
            client, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY 1"
        )
    return [r[0] for r in rows]


def readable(fd: int, timeout: float) -> bool:
    """Whether ``fd`` has something to read (or has ended) within ``timeout`` seconds.

    ``poll``, not ``select``: ``select`` refuses descriptors numbered 1024 or more, and a
    long test process holds many (the embedded engine keeps per-thread files open).
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(timeout * 1000))

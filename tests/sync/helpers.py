"""Helpers for the sync tests: transcript lines, the analyser as reference, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.report import AnalysisReport
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

REPO = Path(__file__).resolve().parents[2]
URL_ENV = "CONTEXT_CLEANER_CLICKHOUSE_URL"
EXACT_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "total_tokens",
    "records",
)


def migrator(url: str, **kw: Any) -> HistoricalDataMigrator:
    """A new migrator on ``url`` (a "restart": nothing shared with earlier objects)."""
    bridge = EnhancedTokenDatabaseBridge(Database(url, lock_timeout=30))
    return HistoricalDataMigrator(bridge_service=bridge, parallel_workers=1, **kw)


def analyse(source: Path) -> AnalysisReport:
    return EnhancedTokenCounter([str(source)], workers=1).analyze()


def exact(totals: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(totals[k]) for k in EXACT_KEYS}


def database_state(m: HistoricalDataMigrator) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(totals, per-session totals) from the usage rows, and the rollup checked equal to them."""
    b = m.bridge
    with b.reading():
        totals = exact(b.get_migration_totals())
        sessions = {s: exact(t) for s, t in b.detail_totals_by_session().items()}
        rollup = exact(b.summary_totals())
        rollup_sessions = {r["session"]: exact(r) for r in b.totals_by("session")}
    assert rollup == totals, "the summaries disagree with the usage rows"
    assert rollup_sessions == sessions, "the per-session summaries disagree with the usage rows"
    return totals, sessions


def assert_matches_analyser(m: HistoricalDataMigrator, source: Path) -> None:
    """The database equals the analyser on the files as they are now, to the token."""
    report = analyse(source)
    totals, sessions = database_state(m)
    assert totals == exact(report.totals.model_dump())
    assert sessions == {s.session_id: exact(s.model_dump()) for s in report.sessions}


def assistant_line(
    message_id: str,
    output_tokens: int,
    *,
    timestamp: str = "2026-01-05T10:00:00.000Z",
    session_id: str = "s1",
    request_id: str | None = None,
    input_tokens: int = 10,
    cache_read: int = 100,
    sidechain: bool = False,
) -> bytes:
    """One Claude Code assistant line (with newline) carrying ``message.usage``."""
    doc = {
        "type": "assistant",
        "sessionId": session_id,
        "isSidechain": sidechain,
        "timestamp": timestamp,
        "requestId": request_id or f"req_{message_id}",
        "uuid": f"u-{message_id}-{output_tokens}",
        "message": {
            "id": message_id,
            "model": "claude-sonnet-4-5-20250929",
            "role": "assistant",
            "content": [{"type": "text", "text": "x" * 40}],
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": cache_read,
            },
        },
    }
    return json.dumps(doc).encode() + b"\n"


def user_line(text: str = "hello", session_id: str = "s1") -> bytes:
    doc = {"type": "user", "sessionId": session_id, "message": {"role": "user", "content": text}}
    return json.dumps(doc).encode() + b"\n"


def cli_env(url: str, **extra: str) -> dict[str, str]:
    """A CLI subprocess's environment: this checkout's sources, the database ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
    env.pop("CONTEXT_CLEANER_PRICES", None)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env[URL_ENV] = url
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "context_cleaner", *args]


def run_cli(*args: str, url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args),
        env=cli_env(url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def status_json(url: str) -> dict[str, Any]:
    out = run_cli("status", "--json", url=url)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


_HOLDER = """
import pathlib, sys, time
from context_cleaner.bridge.database import Database
with Database(sys.argv[1]).session():
    pathlib.Path(sys.argv[2]).touch()
    while not pathlib.Path(sys.argv[3]).exists():
        time.sleep(0.02)
"""


@contextlib.contextmanager
def hold_database(url: str, folder: Path, name: str = "holder") -> Iterator[None]:
    """Another process holds the database (its lock and engine) for the block."""
    ready, stop = folder / f"{name}.ready", folder / f"{name}.stop"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, str(ready), str(stop)], env=cli_env(url)
    )
    try:
        while not ready.exists():
            assert holder.poll() is None, "the holder process died"
            time.sleep(0.02)
        yield
    finally:
        stop.touch()
        holder.wait(timeout=30)

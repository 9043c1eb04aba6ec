"""Helpers for the report tests: ccusage 20.0.24 (installed once), the CLI, token tuples."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CCUSAGE_VERSION = "20.0.24"
TOOLS = REPO / ".tools"
CCUSAGE_ENV = "CONTEXT_CLEANER_CCUSAGE"


def _installed() -> Path | None:
    for candidate in (os.environ.get(CCUSAGE_ENV), TOOLS / "node_modules" / ".bin" / "ccusage"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def ccusage() -> Path:
    """ccusage 20.0.24: ``$CONTEXT_CLEANER_CCUSAGE``, else ``<repo>/.tools``, installed there
    from the npm registry on first use (skipped only when npm itself is missing)."""
    found = _installed()
    if found is not None:
        return found
    # Test workers run in parallel: one installs, the others wait for it and find it installed.
    TOOLS.mkdir(exist_ok=True)
    with (TOOLS / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _installed() or _install()


def _install() -> Path:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install ccusage to compare with (install Node)")
    subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(TOOLS),
            f"ccusage@{CCUSAGE_VERSION}",
            f"@ccusage/ccusage-linux-x64@{CCUSAGE_VERSION}",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    found = _installed()
    assert found is not None, (
        f"npm installed ccusage but {TOOLS}/node_modules/.bin/ccusage is missing"
    )
    return found


def run_ccusage(ccusage: Path, config_dir: Path, *args: str) -> dict[str, Any]:
    """``ccusage ARGS --json --offline`` over ``config_dir`` (a folder holding ``projects/``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_")}
    env.update(TZ="UTC", CLAUDE_CONFIG_DIR=str(config_dir))
    out = subprocess.run(
        [str(ccusage), "claude", *args, "--json", "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


THEIR_KEYS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cacheCreationTokens": "cache_creation_tokens",
    "cacheReadTokens": "cache_read_tokens",
    "totalTokens": "total_tokens",
}


def tokens(row: dict[str, Any]) -> tuple[int, ...]:
    """Our row's four token counts and total."""
    return tuple(int(row[k]) for k in THEIR_KEYS.values())


def their_tokens(row: dict[str, Any]) -> tuple[int, ...]:
    if "tokenCounts" in row:  # blocks
        t = row["tokenCounts"]
        return (
            t["inputTokens"],
            t["outputTokens"],
            t["cacheCreationInputTokens"],
            t["cacheReadInputTokens"],
            row["totalTokens"],
        )
    return tuple(int(row[k]) for k in THEIR_KEYS)


def cli_env(**extra: str) -> dict[str, str]:
    """A CLI subprocess's environment: this checkout's src/, no Claude or Prefect settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
    env.pop("CONTEXT_CLEANER_PRICES", None)
    env["PYTHONPATH"] = str(REPO / "src")
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "context_cleaner", *args],
        env=env if env is not None else cli_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def report_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``context-cleaner report ARGS --json`` in a subprocess (as a user runs it)."""
    out = run_cli("report", *args, "--json", env=env)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr}"
    return json.loads(out.stdout)


def sums(rows: Sequence[dict[str, Any]]) -> tuple[int, ...]:
    return tuple(sum(int(r[k]) for r in rows) for k in THEIR_KEYS.values())

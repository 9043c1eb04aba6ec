"""The Python API from a user's script as users write them: no ``__main__`` guard, a
notebook-like main without a file, inside a running event loop.

The reader processes are spawned (a thread started first makes forking unsafe,
``readers.worker_start_method``): a spawned worker must not run the user's script again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .helpers import cli_env

pytestmark = pytest.mark.slow

_SCRIPT = """
import json, os, threading
print("SCRIPT STARTED", os.getpid(), flush=True)
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()  # forking is unsafe now: spawn
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.readers import worker_start_method
print("START METHOD", worker_start_method(), flush=True)
m = HistoricalDataMigrator({url!r}, parallel_workers=2)
{call}
print("TOTALS " + json.dumps(m.bridge.get_migration_totals()), flush=True)
print("MIGRATED", result.total_tokens_migrated, result.success, flush=True)
stop.set()
"""

_SYNC = "result = m.run({source!r})"
_ASYNC = """import asyncio
async def main():
    return await m.migrate_all_historical_data({source!r})
result = asyncio.run(main())"""


@pytest.mark.parametrize(
    ("how", "call"),
    [("script file", _SYNC), ("stdin, no file, asyncio.run", _ASYNC)],
    ids=["script", "stdin-asyncio"],
)
def test_a_script_without_main_guard_migrates_once_with_spawned_readers(
    tmp_path: Path,
    fixtures_dir: Path,
    expected_daily: dict[str, Any],
    how: str,
    call: str,
) -> None:
    source = str(fixtures_dir / "projects")
    code = _SCRIPT.format(url=f"chdb://{tmp_path / 'db'}", call=call.format(source=source))
    if how == "script file":
        script = tmp_path / "user_script.py"
        script.write_text(code)
        command, stdin = [sys.executable, str(script)], None
    else:  # like a notebook: ``__main__`` has no importable file (``python -`` reads stdin)
        command, stdin = [sys.executable, "-"], code
    out = subprocess.run(
        command,
        input=stdin,
        env=cli_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    # The script ran once: the spawned readers did not import it again.
    assert sum(line.startswith("SCRIPT STARTED") for line in lines) == 1, out.stdout
    assert "START METHOD spawn" in lines
    totals = json.loads(next(x for x in lines if x.startswith("TOTALS "))[len("TOTALS ") :])
    want = expected_daily["totals"]
    assert totals["input_tokens"] == want["inputTokens"]
    assert totals["output_tokens"] == want["outputTokens"]
    assert totals["cache_creation_tokens"] == want["cacheCreationTokens"]
    assert totals["cache_read_tokens"] == want["cacheReadTokens"]
    assert totals["total_tokens"] == want["totalTokens"]
    assert f"MIGRATED {want['totalTokens']} True" in lines

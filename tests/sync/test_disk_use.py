"""The database's disk use stays bounded over many short runs.

An embedded engine lives for one command; the engine deletes the parts a merge or a
rebuild replaced only from its cleanup, which ran 30-40 s after it started, so never:
150 hourly-style syncs left 640 outdated parts, 11,000 files and 49 MB beside 100 kB of
data, and every later start loaded them all. Now the cleanup runs after 1 s
(sql/007_prompt_cleanup.sql) and a command leaving many waits for it
(``bridge.connection.let_cleanup_run``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from context_cleaner.bridge.connection import OUTDATED_PARTS_WAIT_ABOVE
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, usage

from .helpers import run_cli

pytestmark = pytest.mark.slow  # 20 CLI processes, ~25 s

SYNCS = 20  # ~7 outdated parts each before: 140 > the bound


def _parts(db: Path) -> tuple[int, int]:
    """Active and outdated parts of the database, read by a separate process."""
    code = (
        "import chdb.session as s, sys, time\n"
        "c = s.Session(sys.argv[1])\n"
        "time.sleep(0.3)\n"  # the engine lists the outdated parts in the background at start
        "q = 'SELECT countIf(active), countIf(NOT active) FROM system.parts "
        "WHERE database = currentDatabase() FORMAT JSONCompact'\n"
        "print(c.query(q).bytes().decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    active, outdated = json.loads(out.stdout)["data"][0]
    return int(active), int(outdated)


def test_many_short_syncs_leave_a_bounded_number_of_parts(tmp_path: Path) -> None:
    projects = tmp_path / "claude" / "projects" / "-home-u-p"
    projects.mkdir(parents=True)
    db = tmp_path / "db"
    for n in range(SYNCS):
        line = assistant(
            msg_id=f"msg_{n}", request_id=f"req_{n}", usage_obj=usage(10, 1), ts_ms=BASE_MS + n
        )
        with (projects / f"s{n % 5}.jsonl").open("ab") as f:
            f.write(dumps(line) + b"\n")
        done = run_cli("sync", "--source-dir", str(projects.parent), url=f"chdb://{db}")
        assert done.returncode == 0, done.stderr
    active, outdated = _parts(db)
    assert outdated <= OUTDATED_PARTS_WAIT_ABOVE, (active, outdated)
    assert active < 60, (active, outdated)

"""How the program ends after using the embedded engine: its output whole, its exit code kept.

``context-cleaner`` ends with ``os._exit`` once a command that loaded the engine has
finished (the engine's teardown is skipped, see ``cli.run``); these runs check that
nothing the user sees is lost on the way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import REPO, run_cli

pytestmark = pytest.mark.slow

SAMPLE = REPO / "src" / "context_cleaner" / "sample"


def test_a_finished_command_prints_everything_and_exits_zero(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'db'}"
    out = run_cli("migrate", "--source-dir", str(SAMPLE), "--json", url=url)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # the whole document: the buffer was flushed
    assert doc["success"] and doc["total_records_inserted"] > 0

    plain = run_cli("status", url=url)
    assert plain.returncode == 0, plain.stderr
    assert doc["migration_id"] in plain.stdout


def test_a_failed_command_keeps_its_exit_code_and_message(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'db'}"
    assert run_cli("migrate", "--source-dir", str(SAMPLE), "--json", url=url).returncode == 0
    out = run_cli("rollback", "--migration-id", "no-such-run", "--yes", url=url)
    assert out.returncode == 1
    assert "Unknown migration id 'no-such-run'" in out.stderr

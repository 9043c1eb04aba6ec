"""What a command imports before it works: each run registers only its command's group, and
a ``sync`` with nothing new (run hourly, usually idle) stays on its stat-only path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from context_cleaner.cli.main import COMMAND_GROUPS, GROUPS, build_parser, command_of
from context_cleaner.settings import URL_ENV
from context_cleaner.testing.transcripts import generate_corpus

#: Loaded by a no-op sync, these would be start-up cost for nothing: the other command
#: groups, the dashboard's settings, the doctor's checks, the bridge's reads and writes,
#: the pipeline and the process table (psutil: only a run's writer needs it); the planner,
#: the data lag's transcript reader, rich (its one line is plain text), ``secrets`` and
#: ``getpass`` (the stat cache's quiet walk answers it: no walk, no plan, no lag, no row).
NOT_ON_THE_NOOP_SYNC = (
    "context_cleaner.cli.dashboard",
    "context_cleaner.cli.database",
    "context_cleaner.cli.doctor",
    "context_cleaner.cli.report",
    "context_cleaner.dashboard.settings",
    "context_cleaner.migration.doctor",
    "context_cleaner.bridge.reads",
    "context_cleaner.bridge.writes",
    "context_cleaner.migration.pipeline",
    "context_cleaner.migration.commits",
    "psutil",
    "context_cleaner.migration.planning",
    "context_cleaner.migration.file_state",
    "context_cleaner.migration.freshness",
    "context_cleaner.migration.models",  # its dataclasses: ~20 ms (run_results has the sync's)
    "context_cleaner.analysis.reader",
    "context_cleaner.cli.render",
    "rich",
    "secrets",
    "getpass",
)

SYNC_AND_LIST_MODULES = """
import sys
from context_cleaner.cli.main import main
code = main(sys.argv[1:])
print("\\n".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _subcommands(parser: object) -> dict[str, object]:
    return parser._subparsers._group_actions[0].choices  # type: ignore[attr-defined]


def test_every_command_is_listed_under_the_group_that_registers_it() -> None:
    everything = _subcommands(build_parser())
    assert set(everything) == {*COMMAND_GROUPS, "analyze"}
    assert set(COMMAND_GROUPS.values()) == set(GROUPS)
    for command, group in COMMAND_GROUPS.items():
        alone = _subcommands(build_parser(["--debug", command, "--help"]))
        assert command in alone
        assert {c for c, g in COMMAND_GROUPS.items() if g == group} | {"analyze"} == set(alone)


def test_the_command_word_is_the_first_word_that_is_not_a_flag() -> None:
    assert command_of(["--debug", "sync", "--json"]) == "sync"
    assert command_of(["--version"]) is None
    assert command_of([]) is None


@pytest.mark.slow  # a migrate and two syncs in processes of their own (~4 s)
def test_a_sync_with_nothing_new_imports_only_its_own_path(tmp_path: Path) -> None:
    generate_corpus(tmp_path / "corpus", 40_000, seed=3)
    source = str(tmp_path / "corpus" / "projects")
    base = [sys.executable, "-c", SYNC_AND_LIST_MODULES]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
    env[URL_ENV] = f"chdb://{tmp_path}/db"
    for argv in (["migrate", "--engine", "local", "--no-validate"], ["sync"]):
        subprocess.run([*base, *argv, "--source-dir", source], env=env, check=True, timeout=120)
    done = subprocess.run(
        [*base, "sync", "--source-dir", source],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.startswith("Synced 0 of ") and "0 records and 0 tokens added" in done.stdout
    loaded = set(done.stderr.split())
    assert "context_cleaner.migration.incremental" in loaded  # the list is the sync's own
    assert loaded & set(NOT_ON_THE_NOOP_SYNC) == set()

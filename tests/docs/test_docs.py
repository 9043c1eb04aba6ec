"""The docs are true: every command is documented and the README's examples run."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from context_cleaner.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_command_is_in_the_readme_and_has_help(command: str) -> None:
    readme = (REPO / "README.md").read_text()
    assert f"context-cleaner {command}" in readme
    out = subprocess.run(
        [sys.executable, "-m", "context_cleaner", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(out.splitlines()) > 3


def test_the_readme_opens_with_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    setup = readme.index("## Set-up")
    first_block = readme[setup : readme.index("```", readme.index("```", setup) + 3)]
    assert "make run" in first_block and "make test" in first_block


def test_the_readme_analyze_example_runs(fixtures_dir: Path) -> None:
    """The first README example, pointed at the real fixtures, gives the known total."""
    readme = (REPO / "README.md").read_text()
    example = re.search(r"^context-cleaner analyze --timezone (\S+)$", readme, re.M)
    assert example is not None
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "context_cleaner",
            "analyze",
            "--timezone",
            example[1],
            "--source-dir",
            str(fixtures_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"total_tokens": 15537336' in out


def test_documented_files_exist() -> None:
    readme = (REPO / "README.md").read_text()
    for link in re.findall(r"\]\(((?:docs|deployments)/[^)#]+)\)", readme):
        assert (REPO / link).exists(), link

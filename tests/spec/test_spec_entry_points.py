"""The spec's module entry points name themselves in their help (they run ``migrate`` and
``validate`` of the command line)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a process each (~1 s)


@pytest.mark.parametrize(
    ("module", "flag"),
    [
        ("context_cleaner.migration.historical_migrator", "--checkpoint-interval"),
        ("context_cleaner.migration.validator", "--full-validation"),
    ],
)
def test_the_spec_entry_points_name_themselves(module: str, flag: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith(f"usage: python -m {module}")
    assert flag in out.stdout and "context-cleaner migrate" not in out.stdout

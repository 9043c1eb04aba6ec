"""A full disk: a clear message, a consistent database, and a run that resumes exactly.

The database lives on a small tmpfs (mounting needs root, as CI runs; skipped
otherwise). The first migration runs out of space part-way; after the volume is
grown, running again ends with exactly the analyser's totals.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.testing.transcripts import generate_corpus

from .helpers import run_cli, run_json

pytestmark = pytest.mark.slow


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_is_reported_and_the_next_run_completes(
    small_volume: Path, tmp_path: Path
) -> None:
    manifest: dict[str, Any] = generate_corpus(tmp_path / "corpus", 100_000_000, seed=5)
    source = str(tmp_path / "corpus" / "projects")
    url = f"chdb://{small_volume}/db"

    full = run_cli(  # a commit per batch: the disk fills after some have landed
        "migrate",
        "--source-dir",
        source,
        "--batch-size",
        "20",
        "--commit-every",
        "0",
        "--no-validate",
        url=url,
    )
    assert full.returncode == 1, full.stdout[-2000:]
    message = full.stderr.strip().splitlines()[-1]
    assert "not enough space" in message.lower()
    assert "Free disk space" in message and "run again" in message
    assert "Traceback" not in full.stderr

    subprocess.run(["mount", "-o", "remount,size=400m", str(small_volume)], check=True)
    done = run_json("migrate", "--source-dir", source, url=url)
    assert done["validation_passed"] is True
    want = manifest["totals"]
    got = done["database_totals"]
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_creation_tokens",
        "cache_read_tokens",
        "total_tokens",
    ):
        assert got[key] == want[key], key
    status = run_json("status", url=url)
    assert status["totals"]["total_tokens"] == want["total_tokens"]

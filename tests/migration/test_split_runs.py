"""Any split of a corpus, migrated in any sequence of runs, ends equal to the analyser.

Hypothesis writes each file of a generated corpus in parts (a prefix of its
bytes, often ending mid-line, then more, then the rest), running ``migrate`` or
``sync`` after each part. After every run the database must equal the analyser
on the files as they are then (a torn last line counts on neither side); after
the last, the analyser on the whole corpus.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

from .conftest import Target
from .helpers import analyse, assert_database_equals, bridge

KINDS = ("migrate", "sync")


@dataclass(frozen=True)
class Step:
    """One run: each file grown to ``sizes[i]`` bytes (``None``: not created yet), then ``kind``."""

    sizes: tuple[int | None, ...]
    kind: str


@st.composite
def schedules(draw: st.DrawFn, full_sizes: tuple[int, ...]) -> list[Step]:
    """Growing prefixes of every file, ending with the whole files."""
    parts = draw(st.integers(1, 3))
    cuts = [
        sorted(draw(st.lists(st.integers(0, size), min_size=parts - 1, max_size=parts - 1)))
        for size in full_sizes
    ]
    # A file may appear only at some step (before it, it does not exist at all).
    born = [draw(st.integers(0, parts - 1)) for _ in full_sizes]
    steps = []
    for p in range(parts):
        sizes: list[int | None] = []
        for i, size in enumerate(full_sizes):
            if p < born[i]:
                sizes.append(None)
            else:
                sizes.append(cuts[i][p] if p < parts - 1 else size)
        steps.append(Step(tuple(sizes), draw(st.sampled_from(KINDS))))
    return steps


def grow(source: Path, dest: Path, files: list[str], sizes: tuple[int | None, ...]) -> None:
    """Append to each file of ``dest`` the bytes of ``source`` up to its size in ``sizes``."""
    for rel, size in zip(files, sizes, strict=True):
        if size is None:
            continue
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        have = path.stat().st_size if path.exists() else 0
        with open(source / rel, "rb") as src, open(path, "ab") as out:
            src.seek(have)
            out.write(src.read(size - have))


@pytest.mark.slow
def test_any_split_in_any_sequence_of_runs_ends_equal_to_the_analyser(
    target: Target,
    corpus_small: tuple[Path, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root, manifest = corpus_small
    source = root / "projects"
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*.jsonl"))
    full = tuple((source / rel).stat().st_size for rel in files)

    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(steps=schedules(full))
    def check(steps: list[Step]) -> None:
        work = tmp_path_factory.mktemp("split")
        dest = work / "projects"
        dest.mkdir()
        url = target.new_url()
        migrator = HistoricalDataMigrator(
            bridge_service=bridge(url),
            batch_size=3,
            parallel_workers=1,
            checkpoint_interval=2,
            validation_enabled=False,  # compared below, more strictly, after every run
        )
        try:
            for step in steps:
                grow(source, dest, files, step.sizes)
                if step.kind == "migrate":
                    result = migrator.run(str(dest))
                    assert result.success, result.errors
                else:
                    synced = migrator.sync(str(dest), modified_files_only=False)
                    assert synced.success, synced.errors
                assert_database_equals(migrator.bridge, analyse(dest))
            final = migrator.bridge.get_migration_totals()
            assert final["total_tokens"] == manifest["totals"]["total_tokens"]
            assert final["records"] == manifest["kept_records"]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    check()

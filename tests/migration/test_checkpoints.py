"""Checkpoints exist (DESIGN §6): ``--checkpoint-interval N`` records a checkpoint, with a
rollback point, every N files whatever the commit grouping, the result lists them, and
``rollback --to-checkpoint C`` returns to each one listed: the database then equals a
fresh analysis of exactly the files up to that checkpoint. A run takes at most
``MAX_CHECKPOINTS`` of them (a wider interval, said in a warning), so what it keeps does
not grow with the number of files.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from context_cleaner.bridge.snapshot import SNAPSHOT_INFIX
from context_cleaner.errors import ConfigurationError
from context_cleaner.migration.checkpoints import bounded_interval
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.pipeline import (
    RunOptions,
    checkpoint_ends,
    discover_and_plan,
    split_at_checkpoints,
)
from context_cleaner.migration.planning import batches
from context_cleaner.settings import MAX_CHECKPOINTS, SPEC_CHECKPOINT_INTERVAL
from context_cleaner.testing.transcripts import generate_transcripts

from .helpers import (
    analyse,
    assert_database_equals,
    bridge,
    dump_tables,
    owned_tables,
    run_cli,
    run_json,
)

FILES = 120
INTERVAL = 20


def corpus_of(dest: Path, files: int) -> Path:
    """A generated corpus of exactly ``files`` small transcript files; returns its root."""
    tokens = 2_000_000
    while True:
        made = generate_transcripts(dest, target_tokens=tokens, seed=7)
        if made.files >= files:
            break
        tokens *= 2
    projects = dest / "projects"
    paths = sorted(projects.rglob("*.jsonl"))
    for extra in paths[files:]:
        extra.unlink()
    assert len(list(projects.rglob("*.jsonl"))) == files
    return projects


def plan_order(source: Path) -> list[str]:
    """The files in the order a migration reads them (relative paths)."""
    _, plan = discover_and_plan(None, RunOptions(source_dirs=[str(source)]))
    return [item.file.relative_path for item in plan.items]


def subset(source: Path, dest: Path, relative: list[str]) -> Path:
    """A folder holding (hard links to) only ``relative`` of ``source``'s files."""
    for rel in relative:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source / rel, target)
    return dest


@pytest.mark.slow
def test_every_listed_checkpoint_can_be_returned_to(tmp_path: Path) -> None:
    source = corpus_of(tmp_path / "corpus", FILES)
    order = plan_order(source)
    url = f"chdb://{tmp_path / 'db'}"
    # Default flags but the interval: batches of 100 files, commits grouped by time.
    result = run_json(
        "migrate", "--source-dir", str(source), "--checkpoint-interval", str(INTERVAL), url=url
    )
    assert result["success"], result["errors"]
    listed = result["checkpoints"]
    assert listed == [f"cp{k}" for k in range(1, FILES // INTERVAL + 1)], listed
    mid = result["migration_id"]
    b = bridge(url)
    full = analyse(source)
    assert_database_equals(b, full)

    # Back and forth: each checkpoint holds exactly its first k * INTERVAL files.
    for step, cp in enumerate([*reversed(listed), listed[2], listed[0]]):
        k = int(cp[2:])
        done = run_json("rollback", "--migration-id", mid, "--to-checkpoint", cp, "--yes", url=url)
        assert done["mode"] == "partial" and done["snapshot"] == f"{mid}_{cp}", done
        files = order[: k * INTERVAL]
        assert_database_equals(b, analyse(subset(source, tmp_path / f"upto-{step}-{cp}", files)))
        tracked = {t.file_path for t in b.tracked_files()}
        assert tracked == set(files), cp

    # A run from the first checkpoint reads exactly what is missing.
    again = run_json("migrate", "--source-dir", str(source), "--no-validate", url=url)
    assert again["files_processed"] == FILES - INTERVAL, again
    assert_database_equals(b, full)


@pytest.mark.slow
def test_the_human_summary_lists_the_checkpoints_and_says_when_it_took_fewer(
    tmp_path: Path,
) -> None:
    source = corpus_of(tmp_path / "corpus", 24)
    out = run_cli(
        "migrate",
        "--source-dir",
        str(source),
        "--checkpoint-interval",
        "2",  # 12 checkpoints: more than a run takes
        "--no-validate",
        url=f"chdb://{tmp_path / 'db'}",
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "Checkpoints (rollback points): cp1, cp2, cp3, cp4, cp5, cp6;" in text, text
    assert "--to-checkpoint CP" in text
    assert (
        "warning: a checkpoint every 2 files would take 12 checkpoints over 24 files; "
        "taking one every 4 files instead (6 checkpoints" in text
    ), text


@pytest.mark.slow
def test_a_spec_default_run_keeps_a_bounded_number_of_snapshots(tmp_path: Path) -> None:
    """The Python API checkpoints every 10 files by default: on more than MAX_CHECKPOINTS
    x 10 files it takes at most MAX_CHECKPOINTS, says so, and each one it lists is exact."""
    files = 12 * MAX_CHECKPOINTS + 5  # 12 checkpoints every 10 files; the last not at the end
    source = corpus_of(tmp_path / "corpus", files)
    order = plan_order(source)
    url = f"chdb://{tmp_path / 'db'}"
    migrator = HistoricalDataMigrator(url, parallel_workers=1, validation_enabled=False)
    result = asyncio.run(migrator.migrate_all_historical_data(str(source)))
    assert result.success, result.errors
    every = 2 * SPEC_CHECKPOINT_INTERVAL  # the smallest multiple of 10 that fits
    taken = files // every
    assert result.checkpoints == [f"cp{k}" for k in range(1, taken + 1)]
    assert len(result.checkpoints) <= MAX_CHECKPOINTS
    assert [w for w in result.warnings if "checkpoint" in w] == [
        f"a checkpoint every 10 files would take {files // 10} checkpoints over {files} "
        f"files; taking one every {every} files instead ({taken} checkpoints, the most one "
        "run takes: each kept snapshot slows every opening of the database)"
    ]
    # What stays behind: the snapshot before the run and one per checkpoint, 4 tables each.
    snapshots = [t for t in owned_tables(url) if SNAPSHOT_INFIX in t]
    assert len(snapshots) == 4 * (1 + taken) <= 4 * (1 + MAX_CHECKPOINTS), snapshots

    mid = result.migration_id
    last = result.checkpoints[-1]
    assert migrator.rollback(mid, last).snapshot == f"{mid}_{last}"
    covered = order[: taken * every]
    assert len(covered) < files
    b = bridge(url)
    assert_database_equals(b, analyse(subset(source, tmp_path / "covered", covered)))
    assert {t.file_path for t in b.tracked_files()} == set(covered)

    # A checkpoint the asked-for interval would have made, never taken: the usual refusal.
    with pytest.raises(ConfigurationError, match="has no checkpoint 'cp12' kept"):
        migrator.rollback(mid, "cp12")


@pytest.mark.slow
def test_only_the_newest_checkpoints_made_on_request_are_kept(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """Checkpoints made on request (the spec's ``create_migration_checkpoint``, called every
    few files by a caller's loop) are bounded too: the newest ones are kept."""
    url = f"chdb://{tmp_path / 'db'}"
    migrator = HistoricalDataMigrator(
        url, parallel_workers=1, validation_enabled=False, checkpoint_interval=0
    )
    mid = migrator.run(str(fixtures_dir)).migration_id
    made = [
        migrator.checkpoint({"migration_id": mid, "completed_files": []}).checkpoint
        for _ in range(MAX_CHECKPOINTS + 1)
    ]
    snapshots = [t for t in owned_tables(url) if SNAPSHOT_INFIX in t]
    assert len(snapshots) == 4 * (1 + MAX_CHECKPOINTS), snapshots
    assert all(any(t.endswith(cp.replace("-", "_")) for t in snapshots) for cp in made[1:])

    with pytest.raises(ConfigurationError, match=f"has no checkpoint '{made[0]}' kept"):
        migrator.rollback(mid, made[0])
    before = dump_tables(url)
    assert migrator.rollback(mid, made[-1]).snapshot == f"{mid}_{made[-1]}"
    assert dump_tables(url) == before


def test_a_run_takes_at_most_the_bound_of_checkpoints() -> None:
    """The interval used: the one asked for when it fits, else its smallest multiple that
    makes at most the bound (no smaller multiple fits)."""
    from hypothesis import given
    from hypothesis import strategies as st

    @given(
        files=st.integers(min_value=0, max_value=100_000),
        interval=st.integers(min_value=0, max_value=500),
        most=st.integers(min_value=1, max_value=30),
    )
    def check(files: int, interval: int, most: int) -> None:
        every, note = bounded_interval(files, interval, most)
        if interval == 0 or files // interval <= most:
            assert (every, note) == (interval, "")
            return
        assert every % interval == 0 and files // every <= most
        assert files // (every - interval) > most
        assert f"taking one every {every:,} files instead ({files // every} checkpoints" in note

    check()
    assert bounded_interval(20_000, 10)[0] == 1_820  # MAX_CHECKPOINTS checkpoints


def test_batches_end_at_every_checkpoint() -> None:
    """Read batches (and so commit units) are cut where a checkpoint falls, and only there."""
    from hypothesis import given
    from hypothesis import strategies as st

    @given(
        sizes=st.lists(st.integers(min_value=1, max_value=5_000), min_size=0, max_size=300),
        batch_size=st.integers(min_value=1, max_value=150),
        interval=st.integers(min_value=0, max_value=60),
    )
    def check(sizes: list[int], batch_size: int, interval: int) -> None:
        items = [_item(i, size) for i, size in enumerate(sizes)]
        made = batches(items, batch_size, 20_000)
        cut = split_at_checkpoints(made, interval)
        assert [i for b in cut for i in b] == items  # same files, same order
        assert all(b for b in cut) and all(len(b) <= batch_size for b in cut)
        ends = checkpoint_ends(cut, interval)
        done = 0
        for index, batch in enumerate(cut):
            before, done = done, done + len(batch)
            if interval:
                # No batch crosses a checkpoint: one ends exactly at each.
                assert before // interval == (done - 1) // interval
                assert (index in ends) == (done % interval == 0)
        if interval:
            assert len(ends) == len(items) // interval
        else:
            assert cut == made and not ends

    check()


def _item(index: int, size: int):  # type: ignore[no-untyped-def]
    from context_cleaner.analysis.discovery import TranscriptFile
    from context_cleaner.migration.planning import WorkItem

    f = TranscriptFile(
        root=Path("/r"),
        path=Path(f"/r/{index}.jsonl"),
        relative_path=f"{index}.jsonl",
        size=size,
        mtime_ns=0,
        device=0,
        inode=index,
    )
    return WorkItem(file=f, start_offset=0, start_line=0, reason="new")

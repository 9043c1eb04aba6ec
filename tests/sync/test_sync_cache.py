"""The stat cache's per-file questions, answered at C speed, agree with the plain rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from context_cleaner.analysis.discovery import Discovery, TranscriptFile
from context_cleaner.migration.sync_cache import (
    FileStamp,
    SyncCache,
    count_missing,
    file_key,
    keys_of,
    pair_keys,
)

ROOTS = (Path("/data/a/projects"), Path("/data/b/projects"))


def _files() -> list[TranscriptFile]:
    out = []
    for r, root in enumerate(ROOTS):
        for i in range(3):
            rel = f"p{i}/s{i}.jsonl"
            out.append(TranscriptFile(root, f"{root}/{rel}", rel, 100 + i, 10**18 + i, 7 + r, i))
    return out


def _cache(files: list[TranscriptFile]) -> SyncCache:
    stamps = {
        file_key(str(f.root), f.relative_path): FileStamp(f.device, f.inode, f.size, f.mtime_ns)
        for f in files
    }
    return SyncCache(host="h", database=(1, 2), generation="g", files=stamps)


def test_keys_are_the_file_keys_in_order() -> None:
    files = _files()
    assert keys_of(files) == [file_key(str(f.root), f.relative_path) for f in files]
    pairs = [(str(f.root), f.relative_path) for f in files]
    assert list(pair_keys(pairs)) == [file_key(*p) for p in pairs]


@pytest.mark.parametrize("field", ["size", "mtime_ns", "inode", "device"])
def test_any_stamp_field_that_moved_is_not_covered(field: str) -> None:
    files = _files()
    cache = _cache(files)
    assert cache.covers(files)
    f = files[4]
    values = {k: getattr(f, k) for k in ("size", "mtime_ns", "device", "inode")}
    values[field] += 1
    moved = TranscriptFile(f.root, f.path_str, f.relative_path, **values)
    assert not cache.covers([*files[:4], moved, *files[5:]])


def test_a_file_the_cache_does_not_know_is_not_covered() -> None:
    files = _files()
    cache = _cache(files[:-1])
    assert cache.covers(files[:-1]) and not cache.covers(files)


def test_missing_counts_committed_files_not_found_under_the_roots() -> None:
    files = _files()
    keys = [*keys_of(files), file_key("/elsewhere/projects", "p/x.jsonl")]
    found = Discovery(roots=list(ROOTS), files=files[1:4])
    assert count_missing(keys, found) == 3  # files 0, 4 and 5; not the other root's

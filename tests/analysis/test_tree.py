"""The quiet walk's check (analysis/tree.py): every change a walk would see is seen.

The check lists each folder and stats each entry again instead of walking; it must never
say "unchanged" when a walk would find other files or other stamps. Appending in place
changes neither the folder's listing nor its modification time, so the entries' own
stamps have to catch it; each case below is one way a transcript tree changes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.analysis.discovery import Discovery, discover
from context_cleaner.analysis.tree import TreeSnapshot, tree_unchanged

LINE = b'{"type":"user"}\n'


def _tree(root: Path) -> None:
    for rel in ("p1/a.jsonl", "p1/b.jsonl", "p2/s1.jsonl", "p2/s1/subagents/agent-1.jsonl"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(LINE * 3)
    (root / "p1" / "notes.txt").write_text("not a transcript")


def _walk(root: Path) -> tuple[Discovery, TreeSnapshot]:
    found = discover([root], snapshot=True)
    assert found.tree is not None
    return found, found.tree


def _same_times(path: Path, like: os.stat_result) -> None:
    os.utime(path, ns=(like.st_atime_ns, like.st_mtime_ns))


def _append(root: Path) -> None:
    folder_mtime = (root / "p1").stat().st_mtime_ns
    with open(root / "p1" / "a.jsonl", "r+b") as out:  # an existing file: never created here
        out.seek(0, os.SEEK_END)
        out.write(LINE)
    assert (root / "p1").stat().st_mtime_ns == folder_mtime  # the folder does not tell


def _append_keeping_mtime(root: Path) -> None:
    path = root / "p1" / "a.jsonl"
    before = path.stat()
    with open(path, "ab") as out:
        out.write(LINE)
    _same_times(path, before)


def _truncate(root: Path) -> None:
    path = root / "p1" / "a.jsonl"
    before = path.stat()
    with open(path, "r+b") as out:
        out.truncate(len(LINE))
    _same_times(path, before)


def _replace_same_size_and_time(root: Path) -> None:  # an editor's save: only the inode moves
    path = root / "p1" / "a.jsonl"
    before = path.stat()
    tmp = path.with_name("a.jsonl.tmp")
    tmp.write_bytes(path.read_bytes())
    _same_times(tmp, before)
    os.replace(tmp, path)
    _same_times(root / "p1", (root / "p1").stat())


def _delete(root: Path) -> None:
    (root / "p1" / "b.jsonl").unlink()


def _new_file_in_old_folder(root: Path) -> None:
    (root / "p1" / "c.jsonl").write_bytes(LINE)


def _new_folder(root: Path) -> None:
    (root / "p3").mkdir()
    (root / "p3" / "x.jsonl").write_bytes(LINE)


def _new_nested_folder(root: Path) -> None:
    nested = root / "p2" / "s1" / "subagents" / "deeper"
    nested.mkdir()
    (nested / "agent-2.jsonl").write_bytes(LINE)


def _file_becomes_folder(root: Path) -> None:
    path = root / "p1" / "notes.txt"
    path.unlink()
    path.mkdir()
    (path / "hidden.jsonl").write_bytes(LINE)


def _touch(root: Path) -> None:
    path = root / "p1" / "a.jsonl"
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))


def _rename(root: Path) -> None:
    os.rename(root / "p1" / "a.jsonl", root / "p1" / "renamed.jsonl")


def _link_retargeted(root: Path) -> None:
    (root / "p1" / "b.jsonl").unlink()
    os.symlink(root / "p2" / "s1.jsonl", root / "p1" / "b.jsonl")


def _fifo(root: Path) -> None:
    path = root / "p1" / "b.jsonl"
    path.unlink()
    os.mkfifo(path)


def _folder_deleted(root: Path) -> None:
    shutil.rmtree(root / "p2" / "s1")


CHANGES: dict[str, Callable[[Path], None]] = {
    "appended in place": _append,
    "appended, modification time put back": _append_keeping_mtime,
    "truncated, modification time put back": _truncate,
    "replaced by a copy (same size and times)": _replace_same_size_and_time,
    "deleted": _delete,
    "new file in an old folder": _new_file_in_old_folder,
    "new folder": _new_folder,
    "new nested folder": _new_nested_folder,
    "a file turned folder": _file_becomes_folder,
    "touched": _touch,
    "renamed": _rename,
    "replaced by a link to another transcript": _link_retargeted,
    "replaced by a FIFO": _fifo,
    "a folder deleted": _folder_deleted,
}


def test_an_untouched_tree_is_unchanged(tmp_path: Path) -> None:
    _tree(tmp_path)
    _found, snapshot = _walk(tmp_path)
    assert tree_unchanged(snapshot, [str(tmp_path)])
    assert not tree_unchanged(snapshot, [str(tmp_path), str(tmp_path / "p1")])  # other roots


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_every_change_is_seen(tmp_path: Path, change: str) -> None:
    _tree(tmp_path)
    before, snapshot = _walk(tmp_path)
    CHANGES[change](tmp_path)
    assert not tree_unchanged(snapshot, [str(tmp_path)])
    assert discover([tmp_path]).files != before.files  # a change the sync must see


def test_a_walk_with_problems_keeps_no_snapshot(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.symlink(tmp_path / "missing", tmp_path / "p1" / "dangling.jsonl")
    assert discover([tmp_path], snapshot=True).tree is None
    assert discover([tmp_path]).tree is None  # not asked for


_OPS = st.lists(st.sampled_from(sorted(CHANGES)), min_size=1, max_size=4, unique=True)


@given(ops=_OPS)
def test_any_sequence_of_changes_is_seen(
    tmp_path_factory: pytest.TempPathFactory, ops: list[str]
) -> None:
    """Changes in any order and combination: the walk finds other files or other stamps,
    and the check never calls the tree unchanged."""
    root = tmp_path_factory.mktemp("tree")
    _tree(root)
    before, snapshot = _walk(root)
    for op in ops:
        try:
            CHANGES[op](root)
        except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # an earlier change took what this one needs (the first always applies)
    assert discover([root]).files != before.files
    assert not tree_unchanged(snapshot, [str(root)])

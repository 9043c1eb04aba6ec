"""Where the transcripts are (DESIGN §2): roots, overrides, every ``*.jsonl`` below them."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.discovery import (
    Discovery,
    DiscoveryProblem,
    TranscriptFile,
    default_roots,
    discover,
    resolve_roots,
)
from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, usage


def write_session(root: Path, relative_path: str, *, input_tokens: int, msg: str = "") -> Path:
    """One transcript file with one response of ``input_tokens`` input tokens."""
    path = root / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    msg = msg or f"msg_{relative_path}"
    line = assistant(
        msg_id=msg, request_id=f"req_{msg}", usage_obj=usage(input_tokens, 1), ts_ms=BASE_MS
    )
    with open(path, "ab") as f:
        f.write(dumps(line) + b"\n")
    return path


def run_analyze(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "context_cleaner", "analyze", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home folder, with no ``CLAUDE_CONFIG_DIR``."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CONTEXT_CLEANER_PRICES", raising=False)
    return home


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CLAUDE_CONFIG_DIR", "HOME"}}
    return {**env, "HOME": str(home), "CONTEXT_CLEANER_PRICES": "", **extra}


def input_total(*roots: Path | str) -> int:
    report = EnhancedTokenCounter(list(roots) or None, prices=PriceTable(), workers=1).analyze()
    return report.totals.input_tokens


# -- roots -------------------------------------------------------------------------


def test_default_roots_are_the_two_claude_folders_in_order() -> None:
    assert default_roots({"HOME": "/h"}) == [
        Path("/h/.config/claude/projects"),
        Path("/h/.claude/projects"),
    ]
    # A blank CLAUDE_CONFIG_DIR is no setting at all.
    assert default_roots({"HOME": "/h", "CLAUDE_CONFIG_DIR": "  "}) == default_roots({"HOME": "/h"})


def test_both_default_roots_are_read_when_both_exist(home: Path) -> None:
    write_session(home / ".config/claude/projects", "p/s1.jsonl", input_tokens=1)
    write_session(home / ".claude/projects", "p/s2.jsonl", input_tokens=10)
    assert resolve_roots() == [home / ".config/claude/projects", home / ".claude/projects"]
    assert input_total() == 11


def test_one_default_root_is_enough(home: Path) -> None:
    write_session(home / ".claude/projects", "p/s2.jsonl", input_tokens=10)
    assert resolve_roots() == [home / ".claude/projects"]
    assert input_total() == 10


def test_claude_config_dir_replaces_the_defaults(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_session(home / ".claude/projects", "p/ignored.jsonl", input_tokens=1000)
    write_session(tmp_path / "cfg/projects", "p/s.jsonl", input_tokens=7)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert resolve_roots() == [tmp_path / "cfg/projects"]
    assert input_total() == 7


def test_claude_config_dir_as_a_comma_list_of_config_and_projects_folders(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_session(tmp_path / "a/projects", "p/s.jsonl", input_tokens=1)
    write_session(tmp_path / "b/projects", "p/s.jsonl", input_tokens=20, msg="other")
    write_session(home / "c/projects", "q/t.jsonl", input_tokens=300)
    entries = [
        str(tmp_path / "a"),  # a config folder
        f" {tmp_path / 'b' / 'projects'} ",  # its projects/ folder, with spaces around
        "",
        str(tmp_path / "missing"),  # does not exist: passed over
        "~/c",  # in the home folder
        str(tmp_path / "a" / "projects"),  # the first again: read once
    ]
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", ",".join(entries))
    assert resolve_roots() == [
        tmp_path / "a/projects",
        tmp_path / "b/projects",
        home / "c/projects",
    ]
    assert input_total() == 321


def test_source_dirs_override_everything(home: Path, tmp_path: Path) -> None:
    write_session(home / ".claude/projects", "p/home.jsonl", input_tokens=1000)
    write_session(tmp_path / "env/projects", "p/env.jsonl", input_tokens=2000)
    write_session(tmp_path / "one/projects", "p/one.jsonl", input_tokens=3)
    write_session(tmp_path / "two/projects", "p/two.jsonl", input_tokens=40)
    write_session(tmp_path / "bare", "p/bare.jsonl", input_tokens=500)  # no projects/ inside
    out = run_analyze(
        "--source-dir",
        str(tmp_path / "one"),
        "--source-dir",
        str(tmp_path / "two" / "projects"),
        "--source-dir",
        str(tmp_path / "bare"),
        "--json",
        env=clean_env(home, CLAUDE_CONFIG_DIR=str(tmp_path / "env")),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["roots"] == [
        str(tmp_path / "one/projects"),
        str(tmp_path / "two/projects"),
        str(tmp_path / "bare"),
    ]
    assert sorted(Path(f["path"]).name for f in doc["files"]) == [
        "bare.jsonl",
        "one.jsonl",
        "two.jsonl",
    ]
    assert doc["totals"]["input_tokens"] == 543


def test_source_dirs_that_do_not_exist_are_skipped_when_another_does(
    home: Path, tmp_path: Path
) -> None:
    write_session(tmp_path / "real", "p/s.jsonl", input_tokens=5)
    assert resolve_roots([tmp_path / "nope", tmp_path / "real"]) == [tmp_path / "real"]


def test_the_same_folder_twice_is_one_root_and_each_file_is_found_once(home: Path) -> None:
    """``~/.config/claude`` linked to ``~/.claude`` (both default roots): every file was read
    and tracked twice, once under each."""
    write_session(home / ".claude/projects", "p/s.jsonl", input_tokens=7)
    (home / ".config").mkdir()
    (home / ".config" / "claude").symlink_to(home / ".claude")
    roots = resolve_roots()
    assert roots == [home / ".config/claude/projects"]
    assert [f.relative_path for f in discover(roots).files] == ["p/s.jsonl"]


@pytest.mark.parametrize("inner_first", [True, False])
def test_a_root_inside_another_is_walked_as_part_of_it(tmp_path: Path, inner_first: bool) -> None:
    """``--source-dir`` given a projects folder and one of its projects: the project's files
    were read twice, and under the inner root they had no project."""
    outer = tmp_path / "projects"
    write_session(outer, "-home-u-a/s.jsonl", input_tokens=7)
    write_session(outer, "-home-u-b/t.jsonl", input_tokens=8)
    given = [outer / "-home-u-a", outer] if inner_first else [outer, outer / "-home-u-a"]
    roots = resolve_roots(given)
    assert roots == [outer]
    found = discover(roots).files
    assert [(f.relative_path, f.project) for f in found] == [
        ("-home-u-a/s.jsonl", "-home-u-a"),
        ("-home-u-b/t.jsonl", "-home-u-b"),
    ]


# -- no root at all -------------------------------------------------------------------


def test_no_root_raises_naming_where_it_looked(home: Path) -> None:
    with pytest.raises(SourceNotFoundError) as caught:
        resolve_roots()
    message = str(caught.value)
    assert str(home / ".config/claude/projects") in message
    assert str(home / ".claude/projects") in message
    assert "CLAUDE_CONFIG_DIR" in message and "--source-dir" in message
    with pytest.raises(SourceNotFoundError):
        EnhancedTokenCounter(prices=PriceTable()).analyze()


def test_cli_without_any_root_fails_with_a_message_naming_where_it_looked(home: Path) -> None:
    out = run_analyze(env=clean_env(home))
    assert out.returncode == 1
    assert "No transcript folder found" in out.stderr
    assert str(home / ".claude" / "projects") in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_cli_with_a_missing_source_dir_fails_naming_it(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "not-here"
    out = run_analyze("--source-dir", str(missing), "--json", env=clean_env(home))
    assert out.returncode == 1
    assert str(missing) in out.stderr and "--source-dir" in out.stderr
    assert out.stdout == ""


def test_cli_with_claude_config_dir_missing_names_it(home: Path, tmp_path: Path) -> None:
    out = run_analyze(env=clean_env(home, CLAUDE_CONFIG_DIR=str(tmp_path / "gone")))
    assert out.returncode == 1
    assert str(tmp_path / "gone" / "projects") in out.stderr
    assert str(home / ".claude") not in out.stderr  # the defaults were replaced, not tried


# -- files ---------------------------------------------------------------------------


def test_every_jsonl_below_a_root_is_found_with_its_session(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    write_session(root, "-home-u-alpha/1111.jsonl", input_tokens=1)
    write_session(root, "-home-u-alpha/1111/subagents/agent-a1.jsonl", input_tokens=2)
    write_session(root, "-home-u-alpha/1111/subagents/agent-acompact-ff.jsonl", input_tokens=3)
    write_session(root, "-home-u-beta/2222.jsonl", input_tokens=4)
    write_session(root, "loose.jsonl", input_tokens=5)
    (root / "-home-u-beta/notes.json").write_text("{}")
    (root / "-home-u-beta/2222.jsonl.bak").write_text("{}")
    found = discover([root])
    got = [(f.relative_path, f.project, f.session_id, f.is_subagent) for f in found.files]
    assert got == [
        ("-home-u-alpha/1111.jsonl", "-home-u-alpha", "1111", False),
        ("-home-u-alpha/1111/subagents/agent-a1.jsonl", "-home-u-alpha", "1111", True),
        ("-home-u-alpha/1111/subagents/agent-acompact-ff.jsonl", "-home-u-alpha", "1111", True),
        ("-home-u-beta/2222.jsonl", "-home-u-beta", "2222", False),
        ("loose.jsonl", "", "loose", False),
    ]
    assert found.problems == []
    for f in found.files:
        st = f.path.stat()
        assert (f.size, f.inode, f.device, f.mtime_ns) == (
            st.st_size,
            st.st_ino,
            st.st_dev,
            st.st_mtime_ns,
        )
    assert found.total_bytes == sum(f.size for f in found.files)


def test_subagent_usage_belongs_to_the_parent_session(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    write_session(root, "-home-u-alpha/1111.jsonl", input_tokens=1)
    write_session(root, "-home-u-alpha/1111/subagents/agent-a1.jsonl", input_tokens=20)
    write_session(root, "-home-u-alpha/2222.jsonl", input_tokens=300)
    report = EnhancedTokenCounter([root], prices=PriceTable(), workers=1).analyze()
    sessions = {s.session_id: (s.project, s.input_tokens) for s in report.sessions}
    assert sessions == {"1111": ("-home-u-alpha", 21), "2222": ("-home-u-alpha", 300)}
    assert {f.session_id for f in report.files} == {"1111", "2222"}


def test_the_real_subagent_transcripts_belong_to_their_session(fixtures_dir: Path) -> None:
    found = discover([fixtures_dir / "projects"])
    subagents = [f for f in found.files if f.is_subagent]
    assert {f.path.name for f in subagents} == {
        "agent-a881341.jsonl",
        "agent-acompact-fffbd0.jsonl",
    }
    assert {f.session_id for f in subagents} == {"258c7280-ae70-4798-800f-63464d01a85d"}


def test_a_symlinked_root_and_folders_are_followed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    write_session(real, "p/s.jsonl", input_tokens=3)
    outside = tmp_path / "outside-project"
    write_session(outside, "t.jsonl", input_tokens=40)
    (tmp_path / "link-root").symlink_to(real)
    (real / "linked-project").symlink_to(outside)
    found = discover([tmp_path / "link-root"])
    assert [(f.relative_path, f.project) for f in found.files] == [
        ("linked-project/t.jsonl", "linked-project"),
        ("p/s.jsonl", "p"),
    ]
    assert found.problems == []


def test_a_symlink_loop_is_reported_and_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    write_session(root, "p/s.jsonl", input_tokens=3)
    (root / "p" / "back").symlink_to("..")
    (root / "p" / "deeper").mkdir()
    (root / "p" / "deeper" / "up").symlink_to("../..")
    found = discover([root])
    assert [f.relative_path for f in found.files] == ["p/s.jsonl"]
    reasons = {Path(p.path).relative_to(root).as_posix(): p.reason for p in found.problems}
    assert reasons == {
        "p/back": "symlink loop: already walked",
        "p/deeper/up": "symlink loop: already walked",
    }
    assert input_total(root) == 3


def test_a_folder_linked_inside_the_root_keeps_its_own_name(tmp_path: Path) -> None:
    """A link to a project folder of the same root must not take its files (or their project)."""
    root = tmp_path / "projects"
    write_session(root, "zzz-real/s.jsonl", input_tokens=3)
    write_session(root, "zzz-real/s/subagents/agent-a.jsonl", input_tokens=40)
    (root / "aaa-alias").symlink_to("zzz-real")
    (root / "mmm").mkdir()
    (root / "mmm" / "nested-alias").symlink_to("../zzz-real/s")
    found = discover([root])
    assert [(f.relative_path, f.project, f.session_id) for f in found.files] == [
        ("zzz-real/s.jsonl", "zzz-real", "s"),
        ("zzz-real/s/subagents/agent-a.jsonl", "zzz-real", "s"),
    ]
    assert {Path(p.path).name for p in found.problems} == {"aaa-alias", "nested-alias"}


def test_relative_source_dir_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is committed for a file must not depend on the folder a command ran from."""
    (tmp_path / "cfg" / "projects").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    roots = resolve_roots(["cfg"])
    assert roots == [tmp_path / "cfg" / "projects"]
    assert all(r.is_absolute() for r in roots)


def _same(a: Discovery, b: Discovery) -> None:
    assert b.roots == a.roots and b.problems == a.problems and b.tree == a.tree
    assert b.files == a.files
    assert [f.path_str for f in b.files] == [f.path_str for f in a.files]
    assert [f.root is b.roots[a.roots.index(f.root)] for f in b.files] == [True] * len(b.files)


def test_a_discovery_pickles_as_columns_and_comes_back_equal(tmp_path: Path) -> None:
    """A reader process discovers for the run's process (``BatchReader.discover``): files of
    two roots, a symlinked folder and a symlink loop come back as they were."""
    first, second = tmp_path / "a" / "projects", tmp_path / "b" / "projects"
    write_session(first, "p/s.jsonl", input_tokens=3)
    write_session(first, "p/s/subagents/agent-x.jsonl", input_tokens=4)
    write_session(second, "q/t.jsonl", input_tokens=5)
    (first / "p" / "back").symlink_to("..")
    outside = tmp_path / "outside"
    write_session(outside, "u.jsonl", input_tokens=6)
    (second / "linked").symlink_to(outside)
    found = discover([first, second], snapshot=False)
    assert len(found.files) == 4 and found.problems
    _same(found, pickle.loads(pickle.dumps(found)))


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1]),
            st.text(st.characters(blacklist_characters="/\x00", codec="utf-8"), min_size=1),
            st.integers(0, 2**40),
            st.integers(0, 2**62),
            st.integers(0, 2**63 - 1),
            st.integers(0, 2**63 - 1),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_any_discovery_pickles_back_equal(files: list[tuple[Any, ...]]) -> None:
    """Property: whatever the files (a path that is not its root's and its relative path's
    joined is sent whole), pickling gives the same discovery back."""
    roots = [Path("/r/one"), Path("/r/two")]
    made = [
        TranscriptFile(
            roots[n],
            f"{roots[n]}/p/{name}" if joined else f"/elsewhere/{name}",
            f"p/{name}",
            size,
            mtime,
            device,
            inode,
        )
        for n, name, size, mtime, device, inode, joined in files
    ]
    found = Discovery(roots, made, [DiscoveryProblem("/r/one/x", "symlink loop: already walked")])
    _same(found, pickle.loads(pickle.dumps(found)))

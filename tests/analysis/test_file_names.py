"""File and folder names that are not UTF-8 (bytes Python hands over as lone surrogates).

Claude Code writes UTF-8 names, but a folder restored from another system may hold
others. Such a name is stored written ``\\xNN`` (``discovery.storable``), which every
database, JSON document and terminal takes, and the file is found again from it
(``discovery.os_path``); valid names never change. Before, one such name ended the whole
migration with a ``UnicodeEncodeError``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.discovery import (
    discover,
    os_path,
    resolve_roots,
    session_of,
    storable,
)
from context_cleaner.analysis.scan import scan_files
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.testing.transcripts.lines import BASE_MS, assistant, dumps, usage


def _transcript(path: bytes, msg: str, input_tokens: int) -> None:
    line = assistant(
        msg_id=msg, request_id=f"req_{msg}", usage_obj=usage(input_tokens, 1), ts_ms=BASE_MS
    )
    with open(path, "wb") as f:
        f.write(dumps(line) + b"\n")


def test_names_that_are_not_utf8_are_found_stored_escaped_and_found_again(
    tmp_path: Path,
) -> None:
    root = os.fsencode(tmp_path / "projects")
    os.makedirs(root + b"/-home-u-caf\xe9")
    _transcript(root + b"/-home-u-caf\xe9/s\xff1.jsonl", "msg_a", 10)
    _transcript(root + b"/-home-u-caf\xe9/plain.jsonl", "msg_b", 20)
    os.makedirs(root + b"/-home-u-ok/sess\xfe/subagents")
    _transcript(root + b"/-home-u-ok/sess\xfe/subagents/agent-1.jsonl", "msg_c", 30)

    found = discover([tmp_path / "projects"], snapshot=True)
    relative = sorted(f.relative_path for f in found.files)
    assert relative == [
        "-home-u-caf\\xe9/plain.jsonl",
        "-home-u-caf\\xe9/s\\xff1.jsonl",
        "-home-u-ok/sess\\xfe/subagents/agent-1.jsonl",
    ]
    assert not found.problems
    # The stat cache's quiet walk keeps every name: none is made for such a tree.
    assert found.tree is None
    for f in found.files:
        f.relative_path.encode()  # storable
        real = os_path(str(f.root), f.relative_path)
        assert os.path.samefile(real, f.path_str), (real, f.path_str)
    assert session_of("-home-u-ok/sess\\xfe/subagents/agent-1.jsonl") == "sess\\xfe"

    scan = scan_files(found.files)
    assert sum(r.input_tokens for r in scan.collector.candidates()) == 60
    for stats in scan.files:
        assert not stats.error, stats
        stats.path.encode()  # what messages and the readers' batches carry
        assert stats.path.endswith("/" + stats.relative_path)
    assert {r.file_path for r in scan.collector.candidates()} == set(relative)


def test_a_name_that_escaped_is_another_entrys_name_is_reported_not_read(
    tmp_path: Path,
) -> None:
    folder = os.fsencode(tmp_path / "projects" / "-home-u-p")
    os.makedirs(folder)
    _transcript(folder + b"/caf\xe9.jsonl", "msg_raw", 1)
    _transcript(folder + b"/caf\\xe9.jsonl", "msg_literal", 2)  # literally backslash-x-e-9

    found = discover([tmp_path / "projects"])
    assert [f.relative_path for f in found.files] == ["-home-u-p/caf\\xe9.jsonl"]
    assert found.files[0].path_str.endswith("caf\\xe9.jsonl")  # the literal one
    assert len(found.problems) == 1, found.problems
    problem = found.problems[0]
    assert problem.path.endswith("-home-u-p/caf\\xe9.jsonl") and "not valid UTF-8" in problem.reason
    problem.path.encode()
    # What is stored names the literal file, and finds it.
    real = os_path(str(tmp_path / "projects"), "-home-u-p/caf\\xe9.jsonl")
    assert real == os.path.join(tmp_path, "projects", "-home-u-p", "caf\\xe9.jsonl")


def test_a_transcript_folder_whose_path_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    os.makedirs(os.fsencode(tmp_path) + b"/r\xe9/projects")
    with pytest.raises(SourceNotFoundError, match=r"r\\xe9/projects has a path that is not valid"):
        resolve_roots([os.fsdecode(os.fsencode(tmp_path) + b"/r\xe9")])


_NAME_BYTES = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(_NAME_BYTES, min_size=1, max_size=4, unique=True))
def test_any_names_are_stored_as_utf8_and_each_file_is_found_again(names: list[bytes]) -> None:
    """Whatever the bytes: every stored name is UTF-8, a UTF-8 name is stored as it is,
    no two files share a stored name, and each stored name leads back to its file."""
    with tempfile.TemporaryDirectory() as tmp:
        root = os.fsencode(tmp) + b"/projects"
        os.makedirs(root + b"/p")
        for n, name in enumerate(names):
            _transcript(root + b"/p/" + name + b".jsonl", f"msg_{n}", n + 1)
        found = discover([Path(os.fsdecode(root))])
        stored = [f.relative_path for f in found.files]
        assert len(stored) == len(set(stored))
        assert len(found.files) + len(found.problems) == len(names)
        for f in found.files:
            f.relative_path.encode()
            name = os.fsencode(f.path_str).rsplit(b"/", 1)[1]
            try:
                assert f.relative_path == "p/" + name.decode()  # valid UTF-8: unchanged
            except UnicodeDecodeError:
                assert f.relative_path == "p/" + storable(os.fsdecode(name))
            real = os_path(os.fsdecode(root), f.relative_path)
            assert os.path.samefile(real, f.path_str)
        for problem in found.problems:  # only a stored form that is another's name
            assert "another entry" in problem.reason

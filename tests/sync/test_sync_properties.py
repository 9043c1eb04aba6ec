"""Property: any sequence of appends, syncs and restarts ends with the database equal to the
analyser on the final files, to the token (totals and per session).

The appends replay a generated corpus (sessions, subagent files, responses written as
several lines whose usage grows to its final numbers, progress lines, a resumed session)
into an empty folder, cutting at any byte: lines are torn, a response's partial line is
synced in one run and its final line in a later one, files appear between syncs. Restarts
build new migrator objects, so nothing survives in memory but the database and the disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import assert_matches_analyser, migrator

pytestmark = pytest.mark.slow

#: (kind, file index, position in the file as a fraction of its bytes)
Step = tuple[str, int, float]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 63), st.floats(0, 1)),
        st.tuples(st.just("append-line"), st.integers(0, 63), st.floats(0, 1)),
        st.tuples(st.just("sync"), st.just(0), st.just(0.0)),
        st.tuples(st.just("restart"), st.just(0), st.just(0.0)),
    ),
    min_size=1,
    max_size=14,
)


class Replay:
    """Writes the corpus's files into ``target`` bit by bit."""

    def __init__(self, corpus: Path, target: Path) -> None:
        self.files = sorted(p.relative_to(corpus) for p in corpus.rglob("*.jsonl"))
        self.content = {rel: (corpus / rel).read_bytes() for rel in self.files}
        self.written = dict.fromkeys(self.files, 0)
        self.target = target

    def advance(self, index: int, fraction: float, *, at_line: bool) -> None:
        rel = self.files[index % len(self.files)]
        data = self.content[rel]
        end = max(self.written[rel], int(len(data) * fraction))
        if at_line:  # finish at a line boundary: the next line is a separate sync's
            nl = data.find(b"\n", end)
            end = len(data) if nl < 0 else nl + 1
        self._write(rel, end)

    def finish(self) -> None:
        for rel in self.files:
            self._write(rel, len(self.content[rel]))

    def _write(self, rel: Path, end: int) -> None:
        start = self.written[rel]
        if end <= start and (self.target / rel).exists():
            return
        path = self.target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(self.content[rel][start:end])
        self.written[rel] = max(start, end)


@settings(
    max_examples=max(10, settings.default.max_examples // 4),  # 10 in `ci`, 250 in `thorough`
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=steps)
def test_any_appends_syncs_and_restarts_end_equal_to_the_analyser(
    plan: list[Step], tmp_path_factory: Any, small_corpus: tuple[Path, dict[str, Any]]
) -> None:
    base = tmp_path_factory.mktemp("replay")
    target = base / "projects"
    target.mkdir()
    url = f"chdb://{base}/db"
    replay = Replay(small_corpus[0], target)
    m = migrator(url)
    try:
        for kind, index, fraction in plan:
            if kind == "sync":
                result = m.sync(str(target))
                assert result.success, result.errors
            elif kind == "restart":
                m = migrator(url)
            else:
                replay.advance(index, fraction, at_line=kind == "append-line")
        replay.finish()
        result = migrator(url).sync(str(target))
        assert result.success, result.errors
        assert_matches_analyser(migrator(url), target)
        again = migrator(url).sync(str(target))  # and nothing is left to read
        assert again.files_changed == 0 and again.data_lag_seconds == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)

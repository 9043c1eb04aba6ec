"""Fuzzing the whole path: arbitrary bytes, arbitrary JSON and broken usage lines in
transcripts, then migrate, append, sync and validate against the real engine.

Whatever the input: no crash, no hang, every good line counted exactly once, every
bad usage line named (file, line number, reason) by the analysis.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from context_cleaner.cli import main
from context_cleaner.testing.transcripts.lines import (
    BASE_MS,
    MUTATIONS,
    assistant,
    dumps,
    mutate,
    usage,
)

pytestmark = pytest.mark.slow

TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
SESSION = "fuzzfuzz-0000-4000-8000-000000000000"
REL = f"-home-u-fuzz/{SESSION}.jsonl"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def transcript_lines(draw: st.DrawFn) -> list[tuple[bytes, tuple[int, ...] | None, str | None]]:
    """Lines as (bytes, tokens of a good usage line, skip reason of a broken one)."""
    out: list[tuple[bytes, tuple[int, ...] | None, str | None]] = []
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["good", "good", "bytes", "json", "broken"]))
        tokens = tuple(draw(st.integers(0, 10**6)) for _ in range(4))
        line = assistant(
            msg_id=f"msg_fuzz_{i}",
            request_id=f"req_fuzz_{i}",
            usage_obj=usage(tokens[0], tokens[1], tokens[2], 0, tokens[3]),
            ts_ms=BASE_MS + i * 1000,
            session=SESSION,
        )
        if kind == "good":
            out.append((dumps(line), tokens, None))
        elif kind == "bytes":
            data = draw(st.binary(max_size=60)).replace(b"\n", b" ")
            out.append((data, None, None))
        elif kind == "json":
            out.append((json.dumps(draw(json_values)).encode(), None, None))
        else:
            mutation = draw(st.sampled_from(sorted(MUTATIONS)))
            out.append((mutate(line, mutation), None, MUTATIONS[mutation]))
    return out


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


def _totals(db: str) -> dict[str, Any]:
    code, out = _cli("status", "--clickhouse-url", db, "--json")
    assert code == 0, out
    return json.loads(out)["totals"]


# Each example runs four commands on a fresh database (~2 s): few examples, and no
# shrinking (it would rerun them for minutes); a failure prints the example as drawn.
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
@given(lines=transcript_lines(), cut=st.floats(0, 1), split=st.floats(0, 1))
def test_any_input_is_counted_exactly_and_reported(
    lines: list[tuple[bytes, tuple[int, ...] | None, str | None]], cut: float, split: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "projects"
        path = root / REL
        path.parent.mkdir(parents=True)
        db = f"chdb://{tmp}/db"
        data = b"".join(line + b"\n" for line, _, _ in lines)
        # Phase 1 ends anywhere, even inside a line (a torn tail); phase 2 appends the rest.
        first = data[: int(len(data) * cut)]
        path.write_bytes(first)
        code, out = _cli("migrate", "--source-dir", str(root), "--clickhouse-url", db, "--json")
        assert json.loads(out), out  # valid JSON whatever the exit code says of the lines
        with path.open("ab") as f:
            f.write(data[len(first) :])
        code, out = _cli("sync", "--source-dir", str(root), "--clickhouse-url", db, "--json")
        assert json.loads(out), out

        expected = [0, 0, 0, 0]
        for _, tokens, _ in lines:
            if tokens is not None:
                expected = [a + b for a, b in zip(expected, tokens, strict=True)]
        totals = _totals(db)
        assert [totals[k] for k in TOKEN_KEYS] == expected

        code, out = _cli(
            "validate", "--source-dir", str(root), "--clickhouse-url", db,
            "--full-validation", "--tolerance", "0", "--json",
        )  # fmt: skip
        assert code == 0 and json.loads(out)["passed"], out

        code, out = _cli("analyze", "--source-dir", str(root), "--json")
        report = json.loads(out)
        named = {(s["line"], s["reason"]) for s in report["skipped_lines"]}
        for number, (_, _, reason) in enumerate(lines, start=1):
            if reason is not None:
                assert (number, reason) in named, (number, reason, named)

"""What the sessions of one generated corpus share, and one output file being built.

Every usage record a :class:`CorpusFile` writes is reported to
:class:`~context_cleaner.testing.transcripts.expected.ExpectedUsage` with its
file, byte offset and timestamp, so the manifest's totals are exact.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from context_cleaner.testing.transcripts.content import ContentPools
from context_cleaner.testing.transcripts.expected import ExpectedUsage, UsageLine

Tokens = tuple[int, int, int, int, int]
"""(input, output, cache_creation_5m, cache_creation_1h, cache_read) of one usage record."""


@dataclass
class SharedState:
    """What all sessions of one corpus share: randomness, content, counters, the manifest."""

    rng: random.Random
    pools: ContentPools
    projects_dir: Path
    expected: ExpectedUsage
    written: Counter[str] = field(default_factory=Counter)
    """What is on disk so far, by the manifest's keys: ``bytes`` (the corpus stops at its
    target size), ``files`` (session and subagent files), ``session_files``, ``lines``,
    ``cost_usd_lines`` (legacy lines with ``costUSD``) and
    ``progress_usage_without_subagent_file`` (embedded usage whose subagent file is missing)."""
    line_types: Counter[str] = field(default_factory=Counter)
    projects: set[str] = field(default_factory=set)
    last_session: dict[str, FinishedSession] = field(default_factory=dict)
    signatures: list[bytes] = field(default_factory=list)


@dataclass
class SessionSpec:
    project: str
    session_id: bytes
    version: bytes
    branch: bytes
    slug: bytes
    model: str
    legacy: bool
    cache_mode: str
    start_ms: int
    turns: int
    byte_budget: int
    force_features: bool
    responses: int = 0
    """Plain answers (no tools) in each turn; 0: drawn (up to 25 responses, each but the
    last with tool calls)."""

    @property
    def project_dir(self) -> str:
        return "-home-USER-projects-" + self.project


@dataclass
class FinishedSession:
    """A written session kept in memory so a later session can resume it."""

    session_id: str
    lines: list[bytes]
    records: list[tuple[int, UsageLine]]
    boundaries: list[tuple[int, bytes, int]]
    """(line count, uuid of the last line, context tokens) at each turn start."""
    end_ms: int


class CorpusFile:
    """One output file being built in memory, written in one call when closed."""

    def __init__(self, state: SharedState, rel_path: str, session: str) -> None:
        self.state = state
        self.rel_path = rel_path
        self.session = session
        self.lines: list[bytes] = []
        self.offset = 0
        self.records: list[tuple[int, UsageLine]] = []
        self.kinds: Counter[str] = Counter()

    def emit(self, line: bytes, kind: str) -> None:
        self.lines.append(line + b"\n")
        self.offset += len(line) + 1
        self.kinds[kind] += 1

    def usage(
        self,
        mid: bytes,
        rid: bytes,
        sidechain: bool,
        u: Tokens,
        ts: bytes,
        model: str,
        from_progress: bool,
    ) -> None:
        """Record the usage of the line emitted last."""
        last = self.lines[-1]
        rec = UsageLine(
            mid.decode(),
            rid.decode(),
            sidechain,
            u[0],
            u[1],
            u[2],
            u[3],
            u[4],
            ts.decode(),
            self.rel_path,
            self.offset - len(last),
            self.session,
            model,
            from_progress,
        )
        self.records.append((len(self.lines) - 1, rec))

    def close(self) -> None:
        """Write the file and count its lines and usage records (unwritten files count nothing)."""
        path = self.state.projects_dir / self.rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"".join(self.lines))
        st = self.state
        st.written.update(files=1, lines=len(self.lines), bytes=self.offset)
        st.line_types.update(self.kinds)
        for _, rec in self.records:
            st.expected.add(rec)

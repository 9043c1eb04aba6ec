"""A compact generator of realistic Claude Code transcripts with exact expected totals.

The testing API (:mod:`context_cleaner.testing.testing_api`) migrates data it
made itself, so it can compare the database with totals known in advance. It
asks for a number of counted tokens (the spec's ``test_data_size``) or bytes,
and this generator stops at either; :mod:`.corpus`, the benchmarks' generator,
aims at a size in bytes with far more kinds of lines. What this one writes, as
Claude Code 2.x does:

- ``projects/-home-user-projects-<name>/<session>.jsonl``: user turns, assistant
  responses written one line per content block (same ``message.id`` and
  ``requestId`` on each, partial ``output_tokens`` first, the final count last),
  tool results of a few KB, hook progress lines, file-history snapshots;
- subagent files ``<session>/subagents/agent-<id>.jsonl`` (``isSidechain: true``),
  counted in their parent session, some with a replay of a main-thread response
  under a new request id (rule 4 drops it);
- resumed sessions that start with a byte-identical copy of an earlier session.

:class:`SampleCorpus` holds what a correct analyser must report (DESIGN §3).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from context_cleaner.analysis.fields import TOTAL_FIELDS
from context_cleaner.analysis.records import path_hash
from context_cleaner.testing.transcripts.content import iso_ms

_PROJECTS = ("billing-api", "web-dashboard", "ml-pipeline", "docs-site", "cli-tools")
_MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
_WORDS = ("the", "token", "usage", "file", "batch", "session", "cache", "model", "query", "read")
_START_MS = int(datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp() * 1000)


@dataclass
class SampleCorpus:
    """A generated corpus and the exact totals of its counted usage."""

    root: Path
    """The folder holding ``projects/`` (pass ``projects_dir`` as ``--source-dir``)."""
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOTAL_FIELDS, 0))
    records: int = 0
    """Counted usage records (responses)."""
    owners: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)
    """message id -> (path hash, session) of the file whose copy rule 3 keeps."""
    files: int = 0
    bytes: int = 0
    lines: int = 0

    @property
    def projects_dir(self) -> Path:
        return self.root / "projects"

    @property
    def sessions(self) -> set[str]:
        """Sessions with counted usage (a session whose every line was copied into a resumed
        session that wins rule 3's path tie-break has none left)."""
        return {session for _, session in self.owners.values()}

    def own(self, message_id: str, relative_path: str, session: str) -> None:
        """``relative_path`` holds a copy of ``message_id``'s response: keep rule 3's choice."""
        candidate = (path_hash(relative_path), session)
        current = self.owners.get(message_id)
        if current is None or candidate[0] < current[0]:
            self.owners[message_id] = candidate


class _Writer:
    def __init__(self, corpus: SampleCorpus, rng: random.Random) -> None:
        self.corpus = corpus
        self.rng = rng
        self.clock_ms = _START_MS
        self.counter = 0

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.rng.getrandbits(64):016x}{self.counter:06x}"

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"

    def _now(self) -> str:
        self.clock_ms += self.rng.randint(200, 9000)
        return iso_ms(self.clock_ms).decode()

    def _text(self, words: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(words))

    def usage(self) -> dict[str, Any]:
        rng = self.rng
        c5, c1 = rng.choice(((rng.randint(0, 4000), 0), (0, rng.randint(0, 4000)), (300, 200)))
        return {
            "input_tokens": rng.randint(1, 12),
            "output_tokens": rng.randint(40, 1800),
            "cache_creation_input_tokens": c5 + c1,
            "cache_read_input_tokens": rng.randint(2000, 60000),
            "cache_creation": {"ephemeral_5m_input_tokens": c5, "ephemeral_1h_input_tokens": c1},
            "service_tier": "standard",
        }

    def count(self, usage: dict[str, Any]) -> None:
        t = self.corpus.totals
        t["input_tokens"] += usage["input_tokens"]
        t["output_tokens"] += usage["output_tokens"]
        t["cache_creation_tokens"] += usage["cache_creation_input_tokens"]
        t["cache_read_tokens"] += usage["cache_read_input_tokens"]
        t["total_tokens"] += (
            usage["input_tokens"]
            + usage["output_tokens"]
            + usage["cache_creation_input_tokens"]
            + usage["cache_read_input_tokens"]
        )
        self.corpus.records += 1

    def response(
        self, base: dict[str, Any], session: str, model: str, path: str
    ) -> tuple[list[str], dict[str, Any]]:
        """The lines of one assistant response (one per content block) and its final usage."""
        final = self.usage()
        msg_id, req_id = self._id("msg_01"), self._id("req_011")
        blocks = self.rng.randint(1, 4)
        lines = []
        for b in range(blocks):
            usage = dict(final)
            if b < blocks - 1:  # early lines carry a partial output count
                usage["output_tokens"] = self.rng.randint(1, max(1, final["output_tokens"] // 4))
            kind = "tool_use" if b == blocks - 1 and self.rng.random() < 0.5 else "text"
            content = (
                {"type": "tool_use", "id": self._id("toolu_"), "name": "Bash", "input": {}}
                if kind == "tool_use"
                else {"type": "text", "text": self._text(self.rng.randint(3, 40))}
            )
            message = {"model": model, "id": msg_id, "type": "message", "role": "assistant"}
            message.update(content=[content], stop_reason=None, usage=usage)
            line = {**base, "type": "assistant", "message": message, "requestId": req_id}
            line.update(uuid=self._uuid(), timestamp=self._now())
            lines.append(json.dumps(line, separators=(",", ":")))
        self.count(final)
        self.corpus.own(msg_id, path, session)
        return lines, {"id": msg_id, "final": lines[-1]}

    def other(self, base: dict[str, Any], filler: int) -> str:
        """A line without usage: a user turn, a tool result, a hook progress or a snapshot."""
        pick = self.rng.random()
        now = self._now()
        if pick < 0.45:
            body = {"role": "user", "content": [{"type": "tool_result", "content": "x" * filler}]}
            line = {**base, "type": "user", "message": body, "timestamp": now}
        elif pick < 0.75:
            body = {"role": "user", "content": self._text(self.rng.randint(4, 30))}
            line = {**base, "type": "user", "message": body, "timestamp": now}
        elif pick < 0.9:
            data = {"type": "hook_progress", "hookEvent": "PostToolUse", "command": "fmt"}
            line = {**base, "type": "progress", "data": data, "timestamp": now}
        else:
            snap = {"messageId": self._uuid(), "trackedFileBackups": {}, "timestamp": now}
            line = {
                "type": "file-history-snapshot",
                "messageId": snap["messageId"],
                "snapshot": snap,
            }
        line["uuid"] = self._uuid()
        return json.dumps(line, separators=(",", ":"))


def _write(path: Path, lines: list[str], corpus: SampleCorpus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    corpus.files += 1
    corpus.bytes += len(data)
    corpus.lines += len(lines)


def generate_transcripts(
    out_dir: str | Path,
    *,
    target_tokens: int | None = None,
    target_bytes: int | None = None,
    seed: int = 0,
) -> SampleCorpus:
    """Write transcripts into ``out_dir/projects`` until both targets are reached.

    ``target_tokens`` counts counted tokens, ``target_bytes`` file bytes (default:
    100,000 tokens). The same arguments always give the same bytes.
    """
    if target_tokens is None and target_bytes is None:
        target_tokens = 100_000
    rng = random.Random(seed)
    corpus = SampleCorpus(Path(out_dir))
    w = _Writer(corpus, rng)
    filler = 600 if not target_bytes else max(600, min(20_000, target_bytes // 2000))
    earlier: list[tuple[list[str], list[str]]] = []
    while (target_tokens and corpus.totals["total_tokens"] < target_tokens) or (
        target_bytes and corpus.bytes < target_bytes
    ):
        project = f"-home-user-projects-{rng.choice(_PROJECTS)}"
        session = w._uuid()
        model = rng.choice(_MODELS)
        base = {"isSidechain": False, "userType": "external", "sessionId": session}
        base.update(version="2.1.38", cwd=f"/home/user/projects/{project[20:]}")
        main_path = f"{project}/{session}.jsonl"
        lines: list[str] = []
        keys: list[str] = []
        if earlier and rng.random() < 0.15:  # a resumed session starts with an old one's lines
            old_lines, keys = rng.choice(earlier)
            lines += old_lines
            keys = list(keys)
            for key in keys:
                corpus.own(key, main_path, session)
        main_responses: list[dict[str, Any]] = []
        for _turn in range(rng.randint(3, 14)):
            for _ in range(rng.randint(1, 3)):
                lines.append(w.other(base, filler))
            body, info = w.response(base, session, model, main_path)
            lines += body
            keys.append(info["id"])
            main_responses.append(info)
        if rng.random() < 0.35:  # a Task: a subagent file counted in this session
            agent = {**base, "isSidechain": True, "agentId": f"{rng.getrandbits(28):07x}"}
            sub: list[str] = []
            sub_path = f"{project}/{session}/subagents/agent-{agent['agentId']}.jsonl"
            for _ in range(rng.randint(2, 6)):
                sub.append(w.other(agent, filler // 2))
                sub += w.response(agent, session, model, sub_path)[0]
            if rng.random() < 0.5:  # a replay of a main response under a new request id
                replay = json.loads(rng.choice(main_responses)["final"])
                replay.update(isSidechain=True, requestId=w._id("req_011"), uuid=w._uuid())
                sub.append(json.dumps(replay, separators=(",", ":")))
            _write(corpus.projects_dir / sub_path, sub, corpus)
        _write(corpus.projects_dir / main_path, lines, corpus)
        earlier.append((lines, keys))
    return corpus

"""Realistic Claude Code transcript lines built one by one, and what they must count for.

Lines are shaped like the ones Claude Code 2.1 writes (see the fixtures): one
``assistant`` line per content block of a response, each repeating the
response's ``message.usage`` with a partial ``output_tokens`` until the last;
``progress`` lines embedding a subagent's message at ``data.message.message``;
sidechain copies in ``<session>/subagents/agent-*.jsonl``; user, system and
snapshot lines that carry no usage (some mention ``usage`` all the same).

Every generated line knows what it should count for (``Line``), so a corpus
comes with its expected totals computed by a reference implementation of
DESIGN §3 rules 2-4 that never looks at the code under test. The Hypothesis
strategies that draw whole corpora of these lines are in :mod:`.strategies`.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from context_cleaner.analysis.discovery import TranscriptFile
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.testing.transcripts.content import iso_ms

#: 2026-02-10T00:00:00Z, the first day of the real fixtures.
BASE_MS = int(datetime(2026, 2, 10, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")

Tokens = tuple[int, int, int, int, int]
"""(input, output, cache_creation_5m, cache_creation_1h, cache_read)."""


# -- building lines by hand --------------------------------------------------------


def iso(ms: int, style: str = "Z") -> str:
    """``2026-02-10T21:11:59.186Z`` (or with ``+00:00``, or a ``+09:00`` local time)."""
    if style == "+09:00":
        local = datetime.fromtimestamp(ms / 1000, timezone(timedelta(hours=9)))
        return local.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+09:00"
    text = iso_ms(ms).decode()
    return text if style == "Z" else text[:-1] + "+00:00"


def dumps(obj: Any, *, spaced: bool = False, ascii_only: bool = True) -> bytes:
    """One JSON line (no newline): compact like Claude Code, or with spaces after colons."""
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(obj, separators=separators, ensure_ascii=ascii_only).encode()


def usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_5m: int = 0,
    cache_1h: int = 0,
    cache_read: int = 0,
    *,
    split: bool = True,
    speed: str | None = None,
) -> dict[str, Any]:
    """A ``message.usage`` object; without ``split`` all cache creation counts as 5-minute."""
    out: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_5m + cache_1h,
        "cache_read_input_tokens": cache_read,
    }
    if split:
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": cache_5m,
            "ephemeral_1h_input_tokens": cache_1h,
        }
    out["output_tokens"] = output_tokens
    out["service_tier"] = "standard"
    if speed is not None:
        out["speed"] = speed
    return out


def usage_tokens(u: dict[str, Any]) -> Tokens:
    """What a valid usage object counts for (rule 5)."""
    total_cc = u.get("cache_creation_input_tokens", 0)
    split = u.get("cache_creation")
    c1h = min(split.get("ephemeral_1h_input_tokens", 0), total_cc) if split else 0
    return (
        u["input_tokens"],
        u["output_tokens"],
        total_cc - c1h,
        c1h,
        u.get("cache_read_input_tokens", 0),
    )


def assistant(
    *,
    msg_id: str | None,
    request_id: str | None,
    usage_obj: Any,
    ts_ms: int | None,
    model: str = "claude-opus-4-6",
    session: str = "11111111-aaaa",
    sidechain: bool = False,
    text: str = "Let me look at the project.",
    cost_usd: float | None = None,
    ts_style: str = "Z",
) -> dict[str, Any]:
    """An ``assistant`` line as Claude Code writes it (one content block)."""
    message: dict[str, Any] = {"model": model}
    if msg_id is not None:
        message["id"] = msg_id
    message.update(
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_obj,
        }
    )
    line: dict[str, Any] = {
        "parentUuid": "7d48cbd2-6615-4dd8-87f6-38f12b8167d6",
        "isSidechain": sidechain,
        "userType": "external",
        "cwd": "/home/u/projects/alpha",
        "sessionId": session,
        "version": "2.1.39",
        "gitBranch": "main",
        "message": message,
    }
    if request_id is not None:
        line["requestId"] = request_id
    line["type"] = "assistant"
    line["uuid"] = "1b7d717f-d6a2-46a6-8575-fa4f937450ea"
    if ts_ms is not None:
        line["timestamp"] = iso(ts_ms, ts_style)
    if cost_usd is not None:
        line["costUSD"] = cost_usd
    return line


def progress(
    *,
    msg_id: str,
    request_id: str | None,
    usage_obj: dict[str, Any],
    ts_ms: int,
    model: str = "claude-sonnet-4-5-20250929",
    session: str = "11111111-aaaa",
    outer_request: bool = False,
    outer_delay_ms: int = 0,
) -> dict[str, Any]:
    """A ``progress`` line embedding a subagent's message at ``data.message.message``."""
    inner: dict[str, Any] = {
        "type": "assistant",
        "timestamp": iso(ts_ms),
        "message": {
            "model": model,
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {}}],
            "stop_reason": None,
            "usage": usage_obj,
        },
        "uuid": "7b972320-237f-4aa5-b6f2-36138d774aaa",
    }
    line: dict[str, Any] = {
        "parentUuid": "fdcbaf5d-bec4-4f5f-b62f-e1dd33677d3a",
        "isSidechain": False,
        "userType": "external",
        "sessionId": session,
        "version": "2.1.39",
        "type": "progress",
        "data": {
            "message": inner,
            "normalizedMessages": [],
            "type": "agent_progress",
            "prompt": "Find where usage is computed",
            "agentId": "a881341",
        },
        "toolUseID": "agent_msg_017",
        "uuid": "295af996-a4ba-4120-8c2a-ec0ec0faeef9",
        "timestamp": iso(ts_ms + outer_delay_ms),
    }
    if request_id is not None:
        if outer_request:
            line["requestId"] = request_id
        else:
            inner["requestId"] = request_id
    return line


def user(text: str, ts_ms: int, session: str = "11111111-aaaa") -> dict[str, Any]:
    return {
        "parentUuid": None,
        "isSidechain": False,
        "type": "user",
        "sessionId": session,
        "message": {"role": "user", "content": [{"type": "text", "text": text}]},
        "uuid": "0e6f7a1c-8f7f-4e8a-9d55-2b1c3e4f5a6b",
        "timestamp": iso(ts_ms),
    }


def tool_result_with_usage(ts_ms: int, session: str = "11111111-aaaa") -> dict[str, Any]:
    """A Task tool result: a subagent's usage at ``toolUseResult.usage``, never counted."""
    line = user("done", ts_ms, session)
    line["toolUseResult"] = {
        "status": "completed",
        "totalTokens": 999_999,
        "usage": usage(111_111, 222_222, 0, 0, 333_333),
    }
    return line


def noise_lines(ts_ms: int, session: str) -> list[dict[str, Any]]:
    """Lines that carry no usage, several of them mentioning it."""
    return [
        user('how is "usage" computed? {"usage": {"input_tokens": 5}}', ts_ms, session),
        tool_result_with_usage(ts_ms, session),
        {
            "type": "system",
            "subtype": "compact_boundary",
            "content": "usage",
            "timestamp": iso(ts_ms),
        },
        {"type": "summary", "summary": "usage stats", "leafUuid": "x"},
        {"type": "assistant", "message": "usage: 5 tokens", "timestamp": iso(ts_ms)},
        {"type": "file-history-snapshot", "messageId": "m", "snapshot": {"usage": []}},
        {"type": "assistant", "timestamp": iso(ts_ms), "message": {"id": "m0", "usage": None}},
        {"type": "progress", "timestamp": iso(ts_ms), "data": [{"usage": 1}]},
    ]


# -- the corpus model --------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One transcript line and what it should count for."""

    data: bytes
    key: tuple[str, str] | None = None
    """``(message.id, requestId or "")`` of a usage line; ``None`` for unkeyed or no usage."""
    tokens: Tokens | None = None
    """The line's usage; ``None`` when it carries none."""
    sidechain: bool = False
    ts_ms: int | None = None


@dataclass
class Corpus:
    """Transcript files by path relative to the root."""

    files: dict[str, list[Line]] = field(default_factory=dict)

    def write(self, root: Path, *, times: int = 1) -> None:
        """Write every file below ``root``, each file's lines ``times`` times over."""
        for rel, lines in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(file_bytes(lines) * times)

    def lines(self) -> Iterable[tuple[str, Line]]:
        for rel, lines in self.files.items():
            for line in lines:
                yield rel, line


def file_bytes(lines: Iterable[Line]) -> bytes:
    return b"".join(line.data + b"\n" for line in lines)


def session_of(relative_path: str) -> str:
    """Rule 6, written here independently: the file's stem, or its session folder."""
    parts = relative_path.split("/")
    return parts[1] if len(parts) > 2 else parts[-1].removesuffix(".jsonl")


def add(a: Tokens, b: Tokens) -> Tokens:
    return tuple(x + y for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


ZERO: Tokens = (0, 0, 0, 0, 0)


def expected_counts(corpus: Corpus) -> tuple[Tokens, dict[str, Tokens]]:
    """Totals and per-session tokens by a plain reading of DESIGN §3 rules 2-4.

    Keyed lines: per key, the largest non-sidechain line if there is one, else the
    largest sidechain line; a kept sidechain line is dropped when its message id
    appears on any non-sidechain line. Unkeyed lines all count.
    """
    groups: dict[tuple[str, str], list[tuple[str, Line]]] = defaultdict(list)
    total, sessions = ZERO, defaultdict(lambda: ZERO)
    main_ids = set()
    for rel, line in corpus.lines():
        if line.tokens is None:
            continue
        if line.key is None:
            total = add(total, line.tokens)
            sessions[session_of(rel)] = add(sessions[session_of(rel)], line.tokens)
            continue
        groups[line.key].append((rel, line))
        if not line.sidechain:
            main_ids.add(line.key[0])
    for key, members in groups.items():
        main = [m for m in members if not m[1].sidechain]
        pool = main or members
        rel, best = max(pool, key=lambda m: sum(m[1].tokens or ZERO))
        if best.sidechain and key[0] in main_ids:
            continue
        assert best.tokens is not None
        total = add(total, best.tokens)
        sessions[session_of(rel)] = add(sessions[session_of(rel)], best.tokens)
    return total, dict(sessions)


def tokens_of(records: Iterable[UsageRecord]) -> Tokens:
    total = ZERO
    for r in records:
        total = add(
            total,
            (
                r.input_tokens,
                r.output_tokens,
                r.cache_creation_5m_tokens,
                r.cache_creation_1h_tokens,
                r.cache_read_tokens,
            ),
        )
    return total


def transcript(root: Path, relative_path: str) -> TranscriptFile:
    """A ``TranscriptFile`` for one file, as discovery would make it."""
    path = root / relative_path
    return TranscriptFile.from_stat(root, path, relative_path, os.stat(path))


# -- broken lines --------------------------------------------------------------------

#: mutation -> the skip reason it must produce (``None``: not a usage line at all).
MUTATIONS: dict[str, str | None] = {
    "drop_input_tokens": "missing_field",
    "drop_output_tokens": "missing_field",
    "negative_output": "negative_value",
    "negative_cache_read": "negative_value",
    "huge_tokens": "value_out_of_range",
    "string_tokens": "invalid_field_type",
    "float_tokens": "invalid_field_type",
    "drop_timestamp": "missing_field",
    "bad_timestamp": "invalid_timestamp",
    "numeric_timestamp": "invalid_timestamp",
    "usage_not_object": "invalid_field_type",
    "usage_list": "invalid_field_type",
    "message_string": None,
    "message_list": None,
    "id_not_string": "invalid_field_type",
    "sidechain_not_bool": "invalid_field_type",
    "cost_not_number": "invalid_field_type",
    "cache_split_not_object": "invalid_field_type",
    "truncated": "malformed_json",
    "trailing_garbage": "malformed_json",
    "top_level_list": None,
}


def mutate(obj: dict[str, Any], mutation: str) -> bytes:
    """A broken version of a valid assistant line (as a whole line of bytes)."""
    obj = json.loads(json.dumps(obj))
    message = obj["message"]
    u = message["usage"]
    match mutation:
        case "drop_input_tokens":
            del u["input_tokens"]
        case "drop_output_tokens":
            del u["output_tokens"]
        case "negative_output":
            u["output_tokens"] = -5
        case "negative_cache_read":
            u["cache_read_input_tokens"] = -1
        case "huge_tokens":
            u["input_tokens"] = 10**30
        case "string_tokens":
            u["input_tokens"] = str(u["input_tokens"])
        case "float_tokens":
            u["output_tokens"] = u["output_tokens"] + 0.5
        case "drop_timestamp":
            obj.pop("timestamp", None)
        case "bad_timestamp":
            obj["timestamp"] = "yesterday at noon"
        case "numeric_timestamp":
            obj["timestamp"] = 1_770_000_000_000
        case "usage_not_object":
            message["usage"] = "a lot"
        case "usage_list":
            message["usage"] = [1, 2]
        case "message_string":
            obj["message"] = "usage: none"
        case "message_list":
            obj["message"] = [{"usage": u}]
        case "id_not_string":
            message["id"] = 12345
        case "sidechain_not_bool":
            obj["isSidechain"] = "no"
        case "cost_not_number":
            obj["costUSD"] = "0.5"
        case "cache_split_not_object":
            u["cache_creation"] = 7
        case "truncated":
            return dumps(obj)[:-9]
        case "trailing_garbage":
            return dumps(obj) + b" }"
        case "top_level_list":
            return dumps([obj])
        case _:
            raise AssertionError(mutation)
    return dumps(obj)

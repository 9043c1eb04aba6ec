"""Bad input through the migration (DESIGN §9): good lines land exactly, bad ones are counted.

A fault corpus (malformed JSON, invalid UTF-8, spaces after colons, missing and
negative fields, a progress line, a partial-then-final response, an empty line,
an empty file, a blank file, a torn last line) is migrated. Every good line's
tokens are written down here by hand. The torn line is not consumed until its
newline arrives; then a sync counts it, and nothing else twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

from .conftest import Target
from .helpers import analyse, assert_database_equals, bridge, run_json

MODEL = "claude-haiku-4-5-20251001"
PROJECT = "-home-u-faults"
SESSION = "aaaaaaaa-0000-4000-8000-000000000001"
TS = "2026-02-10T01:00:00.000Z"

# (input, output, cache 5m, cache 1h, cache read) of every line that must be counted.
A = (10, 20, 25, 5, 40)
B = (1, 2, 3, 0, 4)
C = (3, 7, 0, 12_118, 100)
D = (100, 50, 0, 0, 1_000)
E = (1_000, 1_000, 0, 0, 0)
COUNTED = (A, B, C, D)
SKIPPED = {"malformed_json": 1, "invalid_utf8": 1, "missing_field": 1, "negative_value": 1}


def usage(t: tuple[int, ...], *, split: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": t[0],
        "cache_creation_input_tokens": t[2] + t[3],
        "cache_read_input_tokens": t[4],
        "output_tokens": t[1],
    }
    if split:
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": t[2],
            "ephemeral_1h_input_tokens": t[3],
        }
    return out


def assistant(name: str, u: Any, *, text: str = "Let me look.") -> dict[str, Any]:
    return {
        "parentUuid": None,
        "isSidechain": False,
        "sessionId": SESSION,
        "type": "assistant",
        "requestId": f"req_{name}",
        "timestamp": TS,
        "message": {
            "id": f"msg_{name}",
            "model": MODEL,
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "usage": u,
        },
    }


def line(obj: Any, *, spaced: bool = False) -> bytes:
    return json.dumps(obj, separators=(", ", ": ") if spaced else (",", ":")).encode()


def fault_lines() -> list[bytes]:
    """The fault file's complete lines (each without its newline)."""
    missing = assistant("M", usage((1, 2, 0, 0, 0)))
    del missing["message"]["usage"]["input_tokens"]
    negative = assistant("N", usage((1, 2, 0, 0, 0)))
    negative["message"]["usage"]["output_tokens"] = -3
    progress = {
        "type": "progress",
        "isSidechain": False,
        "sessionId": SESSION,
        "timestamp": TS,
        "data": {
            "type": "agent_progress",
            "message": {
                "type": "assistant",
                "timestamp": TS,
                "requestId": "req_C",
                "message": {"id": "msg_C", "model": MODEL, "usage": usage(C)},
            },
        },
    }
    user = {"type": "user", "timestamp": TS, "message": {"content": 'what is "usage"?'}}
    return [
        line(assistant("A", usage(A))),
        line(user),
        b'{"type":"assistant","message":{"id":"msg_X","usage":{"input_tokens":1,',
        line(assistant("U", usage((5, 5, 0, 0, 0)), text="caf")).replace(b"caf", b"caf\xe9\xff"),
        line(assistant("B", usage(B, split=False)), spaced=True),
        line(missing),
        line(negative),
        line(progress),
        line(assistant("D", usage((D[0], 5, *D[2:])))),  # partial output, replaced below
        line(assistant("D", usage(D))),
        b"",
    ]


def total(rows: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    return tuple(sum(col) for col in zip(*rows, strict=True))


def as_row(t: dict[str, Any]) -> tuple[int, ...]:
    keys = ("input_tokens", "output_tokens", "cache_creation_5m_tokens")
    keys += ("cache_creation_1h_tokens", "cache_read_tokens")
    return tuple(t[k] for k in keys)


@pytest.mark.slow
def test_the_fault_corpus_migrates_every_good_line_and_counts_every_bad_one(
    target: Target, tmp_path: Path
) -> None:
    root = tmp_path / "claude" / "projects"
    project = root / PROJECT
    project.mkdir(parents=True)
    fault = project / f"{SESSION}.jsonl"
    complete = b"".join(raw + b"\n" for raw in fault_lines())
    torn = line(assistant("E", usage(E)))
    half = len(torn) // 2
    fault.write_bytes(complete + torn[:half])  # a line still being written
    (project / "empty.jsonl").write_bytes(b"")
    (project / "blank.jsonl").write_bytes(b"\n\n   \n\t\n")
    url = target.new_url()

    result = run_json("migrate", "--source-dir", str(root.parent), url=url)
    assert result["success"] and result["validation_passed"]
    assert result["errors"] == [] and result["files_failed"] == 0
    assert result["total_files_found"] == result["files_processed"] == 3
    assert result["skipped_lines"] == sum(SKIPPED.values())
    assert any("4 line(s) could not be counted" in w for w in result["warnings"])
    b = bridge(url)
    totals = b.get_migration_totals()
    assert as_row(totals) == total(COUNTED)
    assert totals["records"] == len(COUNTED)
    assert result["total_tokens_migrated"] == sum(total(COUNTED))
    assert_database_equals(b, analyse(root))

    status = run_json("status", url=url)
    files = {Path(f["path"]).name: f for f in status["files"]}
    assert files[fault.name]["committed_offset"] == len(complete)  # not the torn bytes
    assert files[fault.name]["size"] == len(complete) + half
    assert files[fault.name]["lines_skipped"] == sum(SKIPPED.values())
    assert (files["empty.jsonl"]["committed_offset"], files["empty.jsonl"]["size"]) == (0, 0)
    assert files["blank.jsonl"]["committed_offset"] == 8

    migrator = HistoricalDataMigrator(bridge_service=b, parallel_workers=1)
    # The rest of the line, still without its newline: nothing new to count.
    with open(fault, "ab") as f:
        f.write(torn[half:])
    synced = migrator.sync(str(root), modified_files_only=False)
    assert synced.success and synced.records_inserted == 0 and synced.tokens_added == 0
    assert as_row(b.get_migration_totals()) == total(COUNTED)
    assert_database_equals(b, analyse(root))

    # Its newline arrives: now it counts, once, and no skipped line is counted again.
    with open(fault, "ab") as f:
        f.write(b"\n")
    synced = migrator.sync(str(root), modified_files_only=False)
    assert synced.success and synced.records_inserted == 1
    assert synced.tokens_added == sum(E) and synced.skipped_lines == 0
    totals = b.get_migration_totals()
    assert as_row(totals) == total((*COUNTED, E))
    assert totals["records"] == len(COUNTED) + 1
    report = analyse(root)
    assert report.skipped_by_reason == SKIPPED
    assert_database_equals(b, report)
    tracked = {Path(t.file_path).name: t for t in b.tracked_files()}
    assert tracked[fault.name].committed_offset == fault.stat().st_size

    again = run_json("migrate", "--source-dir", str(root.parent), url=url)
    assert again["total_records_inserted"] == 0 and again["skipped_lines"] == 0
    assert as_row(b.get_migration_totals()) == total((*COUNTED, E))

"""Under Prefect: a run in which the error-rate alert fired is not Completed, and its result
table lists the skipped lines by reason; a run with one bad line among four completes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import analysed_totals, artifacts, database_totals

pytestmark = pytest.mark.slow


def _line(n: int) -> bytes:
    doc = {
        "type": "assistant",
        "sessionId": "s1",
        "timestamp": "2026-01-05T10:00:00.000Z",
        "requestId": f"req_{n}",
        "message": {
            "id": f"msg_{n}",
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 10, "output_tokens": 5 + n, "cache_read_input_tokens": 100},
        },
    }
    return json.dumps(doc).encode() + b"\n"


def _bad(n: int) -> bytes:
    return b'{"type":"assistant","message":{"id":"msg_bad%d","usage":{"input_tokens":1,\n' % n


def _source(tmp_path: Path, good: int, bad: int) -> Path:
    folder = tmp_path / "projects" / "-home-u-proj"
    folder.mkdir(parents=True)
    lines = [_line(i) for i in range(good)] + [_bad(i) for i in range(bad)]
    (folder / "s1.jsonl").write_bytes(b"".join(lines))
    return tmp_path / "projects"


def _table(flow_run_id: Any, key: str) -> dict[str, Any]:
    table = artifacts(flow_run_id)[key]
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    return {r["field"]: r["value"] for r in rows}


def test_a_sync_flow_in_which_the_error_alert_fired_ends_failed(
    prefect_harness: Any, tmp_path: Path
) -> None:
    from context_cleaner.orchestration.flows import FlowRunFailed, incremental_sync_flow

    source = _source(tmp_path, 120, 120)
    url = f"chdb://{tmp_path}/db"
    state = incremental_sync_flow(source_dirs=[str(source)], clickhouse_url=url, return_state=True)
    assert state.is_failed() and not state.is_completed()
    with pytest.raises(FlowRunFailed) as caught:
        state.result()
    message = str(caught.value)
    assert "high_error_rate alert fired" in message and "malformed_json 120" in message
    assert "context-cleaner analyze --json" in message
    result = caught.value.result
    assert result.success and result.skipped_lines_by_reason == {"malformed_json": 120}
    assert database_totals(url) == analysed_totals(source)  # the good half is committed
    values = _table(state.state_details.flow_run_id, "sync-result")
    assert values["lines skipped"] == 120 and values["lines skipped: malformed_json"] == 120
    assert values["alerts fired"] == "high_error_rate"
    assert values["status"] == "ALERTED (high_error_rate)"
    assert "s1.jsonl:" in values["skipped line"]


def test_one_bad_line_among_four_completes(prefect_harness: Any, tmp_path: Path) -> None:
    from context_cleaner.orchestration.flows import historical_migration_flow

    source = _source(tmp_path, 3, 1)
    state = historical_migration_flow(
        source_dirs=[str(source)], clickhouse_url=f"chdb://{tmp_path}/db", return_state=True
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert result.alerts_fired == [] and result.skipped_lines == 1
    values = _table(state.state_details.flow_run_id, "migration-result")
    assert values["lines skipped: malformed_json"] == 1

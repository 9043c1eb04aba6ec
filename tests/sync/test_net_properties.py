"""Property: every sync's ``tokens_added`` and ``records_inserted`` are the database's net
change, whatever was appended before it (torn lines, partial responses completed by a
later line, copies of responses in resumed sessions, files appearing between syncs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from .helpers import migrator
from .test_sync_properties import Replay, Step, steps

pytestmark = pytest.mark.slow


def _totals(url: str) -> tuple[int, int]:
    totals = migrator(url).bridge.get_migration_totals()
    return int(totals["total_tokens"]), int(totals["records"])


@settings(
    max_examples=max(8, settings.default.max_examples // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=steps)
def test_each_sync_reports_the_net_change_of_the_database(
    plan: list[Step], tmp_path_factory: Any, small_corpus: tuple[Path, dict[str, Any]]
) -> None:
    base = tmp_path_factory.mktemp("net")
    target = base / "projects"
    target.mkdir()
    url = f"chdb://{base}/db"
    replay = Replay(small_corpus[0], target)
    tokens = records = 0
    try:
        for kind, index, fraction in [*plan, ("sync", 0, 0.0)]:
            if kind == "sync":
                result = migrator(url).sync(str(target))
                assert result.success, result.errors
                if result.files_changed:
                    now_tokens, now_records = _totals(url)
                    assert result.tokens_added == now_tokens - tokens
                    assert result.records_inserted == now_records - records
                    tokens, records = now_tokens, now_records
                else:
                    assert result.tokens_added == result.records_inserted == 0
            elif kind != "restart":
                replay.advance(index, fraction, at_line=kind == "append-line")
        replay.finish()
        last = migrator(url).sync(str(target))
        assert last.tokens_added == _totals(url)[0] - tokens
        assert last.records_inserted == _totals(url)[1] - records
    finally:
        shutil.rmtree(base, ignore_errors=True)

"""Property: after any sequence of migrate, sync and rollback, each group of both rollups
(per session, UTC day and model; per session and UTC quarter hour) equals the counted
usage rows, and a final sync equals the analyser.

Three sessions of one project share message ids: a later line can take a record from
another session (a better copy, a main-chain copy of a side-chain one, rules 3 and 4), in
a later unit of work than the first copy (every batch is its own unit). With ``merges``,
the usage rows are merged right after every insert, before the unit's refresh: the
moment a background merge drops the first copy's row. Real embedded ClickHouse.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from context_cleaner.bridge.buckets import rollup_differences
from context_cleaner.bridge.writes import BridgeWriter
from context_cleaner.migration.rollback import rollback_migration

from .helpers import assert_matches_analyser, assistant_line, migrator

pytestmark = pytest.mark.slow

SESSIONS = ("s-a", "s-b", "s-c")
START = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
NO_DIFFERENCE = {"enhanced_token_summaries": [], "enhanced_token_buckets": []}

#: (session, message, output tokens, side chain, 7.5-minute steps after START: even ones
#: are exactly on a quarter hour, and the steps cross a UTC midnight)
lines = st.tuples(
    st.integers(0, 2), st.integers(0, 4), st.integers(1, 400), st.booleans(), st.integers(0, 12)
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("line"), lines),
        st.tuples(st.sampled_from(["migrate", "sync", "rollback"]), st.none()),
    ),
    min_size=1,
    max_size=6,
)


def _write(folder: Path, line: tuple[int, int, int, bool, int]) -> None:
    session, message, output, sidechain, step = line
    stamp = (START + timedelta(seconds=450 * step)).isoformat(timespec="milliseconds")
    data = assistant_line(
        f"msg_{message}",
        output,
        timestamp=stamp.replace("+00:00", "Z"),
        session_id=SESSIONS[session],
        sidechain=sidechain,
    )
    with (folder / f"{SESSIONS[session]}.jsonl").open("ab") as out:
        out.write(data)


@settings(
    max_examples=max(3, settings.default.max_examples // 30),  # ~2 s a step: 3 in `ci`
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=steps, merges=st.booleans())
@example(  # session b's main-chain copy takes msg_0 from a's side chain in a later unit
    plan=[
        ("line", (0, 0, 5, True, 1)),
        ("migrate", None),
        ("line", (1, 0, 5, False, 2)),
        ("sync", None),
        ("rollback", None),
    ],
    merges=True,
)
def test_the_rollups_equal_the_usage_rows_after_any_migrate_sync_and_rollback(
    plan: list[tuple[str, Any]], merges: bool, tmp_path_factory: Any
) -> None:
    base = tmp_path_factory.mktemp("rollups")
    target = base / "projects"
    folder = target / "-home-u-p"
    folder.mkdir(parents=True)
    url = f"chdb://{base}/db"
    insert = BridgeWriter.insert_records

    def insert_then_merge(self: BridgeWriter, *args: Any, **kw: Any) -> int:
        inserted = insert(self, *args, **kw)
        self.client.command("OPTIMIZE TABLE enhanced_token_details FINAL")
        return inserted

    migrations: list[str] = []
    migrator(url).setup()
    try:
        with pytest.MonkeyPatch.context() as mp:
            if merges:
                mp.setattr(BridgeWriter, "insert_records", insert_then_merge)
            for kind, line in plan:
                m = migrator(url, batch_size=1, commit_every=0)
                if kind == "line":
                    _write(folder, line)
                    continue
                if kind == "migrate":
                    result = m.run(str(target))
                    assert result.success, result.errors
                    migrations.append(result.migration_id)
                elif kind == "sync":
                    assert m.sync(str(target)).success
                elif migrations:
                    rollback_migration(m.bridge, migrations.pop())
                with m.bridge.database.session() as client:
                    assert rollup_differences(client) == NO_DIFFERENCE, (kind, plan)
            m = migrator(url, batch_size=1, commit_every=0)
            assert m.sync(str(target)).success
            with m.bridge.database.session() as client:
                assert rollup_differences(client) == NO_DIFFERENCE
        assert_matches_analyser(m, target)
    finally:
        shutil.rmtree(base, ignore_errors=True)

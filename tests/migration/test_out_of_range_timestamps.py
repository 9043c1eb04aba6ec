"""Out-of-range timestamps end to end: analyze, migrate, validate, status lag, rollup days.

Usage lines timed in 1969, in 9999 or after 2149-06-06 sit beside ordinary lines of a
generated corpus. Every surface must treat them one way: skipped as ``timestamp_out_of_range``
with file, line and offset, never stored, never on a rollup day, never the newest record.
(Before, the rollups put them on 2105-01-05 / 2149-06-06 by ``Date`` overflow while
``analyze`` put them on 1969-12-31 / 9999-12-31, and a 9999 record froze the data lag at 0.)
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from context_cleaner.analysis.records import UsageRecord
from context_cleaner.bridge.details import detail_columns
from context_cleaner.bridge.exceptions import DatabaseQueryError
from context_cleaner.bridge.token_bridge import query_rows
from context_cleaner.testing.transcripts.lines import assistant, dumps, usage

from .conftest import Target
from .helpers import analyse, assert_database_equals, bridge, run_cli, run_json

OUT_OF_RANGE = (
    "1969-12-31T23:59:59.999Z",
    "9999-12-31T12:00:00.000Z",
    "2149-06-07T00:00:00.000Z",
    "0001-01-01T00:00:00+05:00",
)
#: The last in-range instant: kept, on the last day the rollups hold.
EDGE = "2149-06-06T23:59:59.999Z"


def _line(n: int, text: str, tokens: int) -> bytes:
    obj = assistant(
        msg_id=f"msg_oor_{n}", request_id=f"req_oor_{n}", usage_obj=usage(tokens, 7), ts_ms=None
    )
    obj["timestamp"] = text
    return dumps(obj) + b"\n"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _summary_days(url: str) -> dict[str, int]:
    b = bridge(url)
    with b.database.session() as client:
        rows = query_rows(
            client,
            "SELECT toString(day), sum(input_tokens) FROM enhanced_token_summaries FINAL "
            "WHERE NOT is_deleted GROUP BY day ORDER BY day",
        )
    return {day: int(n) for day, n in rows}


@pytest.mark.slow
def test_out_of_range_lines_are_skipped_the_same_way_everywhere(
    target: Target, corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root = tmp_path / "projects"
    shutil.copytree(corpus_small[0] / "projects", root)
    files = sorted(root.rglob("*.jsonl"), key=lambda p: p.stat().st_size, reverse=True)
    big, other = files[0], files[1]
    # Out-of-range lines in the middle of one file and as the last line of another.
    head = big.read_bytes()
    cut = head.index(b"\n", len(head) // 2) + 1
    middle = b"".join(_line(i, t, 1000 + i) for i, t in enumerate(OUT_OF_RANGE))
    big.write_bytes(head[:cut] + middle + head[cut:])
    with other.open("ab") as f:
        f.write(_line(10, EDGE, 5))
        f.write(_line(11, "9999-12-31T23:59:59.000Z", 2000))
    expected_skips = sorted(
        [(str(big), head[:cut].count(b"\n") + 1 + i) for i in range(len(OUT_OF_RANGE))]
        + [(str(other), other.read_bytes().count(b"\n"))]
    )

    # analyze: each out-of-range line reported with file, line and offset; no day outside.
    analysed = run_json("analyze", "--source-dir", str(root), url=target.new_url())
    skipped = [s for s in analysed["skipped_lines"] if s["reason"] == "timestamp_out_of_range"]
    assert sorted((s["file"], s["line"]) for s in skipped) == expected_skips
    for s in skipped:
        path = Path(s["file"])
        with path.open("rb") as f:
            f.seek(s["byte_offset"])
            assert b'"timestamp":"' in f.readline()
    days = {d["date"]: d["input_tokens"] for d in analysed["days"]}
    assert all("1970-01-01" <= day <= "2149-06-06" for day in days), days
    assert days["2149-06-06"] == 5

    # migrate: exit 0, the same lines skipped, the database equals the analysis.
    url = target.new_url()
    migrated = run_json("migrate", "--source-dir", str(root), url=url)
    assert migrated["skipped_lines"] == analysed["skipped_lines_total"]
    report = analyse(root)
    assert report.skipped_lines_total == analysed["skipped_lines_total"]
    b = bridge(url)
    assert_database_equals(b, report)
    # The rollup days are the analysis's days, none wrapped around.
    assert _summary_days(url) == days
    with b.database.session() as client:
        lo, hi = query_rows(
            client,
            "SELECT toUnixTimestamp64Milli(min(timestamp)), toUnixTimestamp64Milli(max(timestamp))"
            " FROM enhanced_token_details",
        )[0]
    assert lo >= 0 and hi == _ms(EDGE)

    # validate: passes on the same rules.
    validated = run_json("validate", "--source-dir", str(root), "--full-validation", url=url)
    assert validated["passed"] is True
    assert validated["token_variance"] == 0

    # status: the newest record is the last in-range one, the lag is real.
    status = run_json("status", url=url)
    assert status["newest_record_time"] == pytest.approx(_ms(EDGE) / 1000)
    assert status["data_lag_seconds"] == 0
    # Two more lines arrive, the last one out of range: the probe of the newest source line
    # passes over it (it used to report 1969 as the newest source time).
    with other.open("ab") as f:
        f.write(_line(12, "2149-06-06T22:59:59.999Z", 3))  # older than EDGE: no lag
        f.write(_line(13, "1969-01-01T00:00:00.000Z", 4))
    status = run_json("status", url=url)
    assert status["newest_record_time"] == pytest.approx(_ms(EDGE) / 1000)
    assert status["newest_source_time"] == pytest.approx(_ms("2149-06-06T22:59:59.999Z") / 1000)
    assert status["data_lag_seconds"] == 0

    # sync: the new in-range line lands on its day, the out-of-range one is skipped.
    synced = run_cli("sync", "--source-dir", str(root), "--json", url=url)
    assert synced.returncode == 0, synced.stdout[-2000:] + synced.stderr
    assert _summary_days(url) == {**days, "2149-06-06": 5 + 3}
    assert_database_equals(bridge(url), analyse(root))
    status = run_json("status", url=url)
    assert status["data_lag_seconds"] == 0


@pytest.mark.slow
def test_the_data_lag_is_not_frozen_by_a_far_future_line(
    target: Target, corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A 9999 line used to become the newest record, and every later lag read 0."""
    root = tmp_path / "projects"
    shutil.copytree(corpus_small[0] / "projects", root)
    newest = max(root.rglob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    with newest.open("ab") as f:
        f.write(_line(20, "9999-12-31T12:00:00.000Z", 1))
    url = target.new_url()
    run_json("migrate", "--source-dir", str(root), url=url)
    before = run_json("status", url=url)
    assert before["newest_record_time"] < datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    # One hour after the newest record, a new line: the database is one hour behind.
    ahead = datetime.fromtimestamp(before["newest_record_time"] + 3600, UTC)
    with newest.open("ab") as f:
        f.write(_line(21, ahead.isoformat(timespec="milliseconds").replace("+00:00", "Z"), 9))
    after = run_json("status", url=url)
    assert after["data_lag_seconds"] == pytest.approx(3600, abs=0.002)


def test_the_bridge_refuses_a_record_it_cannot_put_on_a_day() -> None:
    """Belt and braces: a record that got past the analysis is refused, not wrapped around."""
    record = UsageRecord(
        "msg_1", "req_1", "s", "s", "p", "p/s.jsonl", 3, 0, _ms("9999-12-31T12:00:00.000Z"),
        "claude-opus-4-6", False, "", False, 1, 2, 0, 0, 0, None,
    )  # fmt: skip
    with pytest.raises(DatabaseQueryError, match=r"p/s\.jsonl line 3.*timestamp_out_of_range"):
        detail_columns([record], price=lambda r: 0.0, migration_id="m", host="h", user="u")
    ok = detail_columns(
        [msgspec.structs.replace(record, timestamp_ms=_ms(EDGE))],
        price=lambda r: 0.0,
        migration_id="m",
        host="h",
        user="u",
    )
    assert ok[9] == [_ms(EDGE)]

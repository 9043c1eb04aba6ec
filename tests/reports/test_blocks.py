"""5-hour blocks from hourly cells equal ccusage's record-by-record rule; the active block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.analysis.blocks import BLOCK_MS
from context_cleaner.analysis.periods import HOUR_MS, Cell, ReportQuery, hour_bucket
from context_cleaner.analysis.report_rows import build_report

BASE = 1_770_681_600_000  # 2026-02-10T00:00:00Z


def reference_blocks(stamps: list[int]) -> list[tuple[int, int, int]]:
    """ccusage's loop over sorted records: (start, last record, entries) per block."""
    blocks: list[list[int]] = []
    for ts in sorted(stamps):
        if blocks and ts - blocks[-1][0] <= BLOCK_MS and ts - blocks[-1][1] <= BLOCK_MS:
            blocks[-1][1] = ts
            blocks[-1][2] += 1
        else:
            blocks.append([ts - ts % HOUR_MS, ts, 1])
    return [(s, last, n) for s, last, n in blocks]


def cells_of(stamps: list[int]) -> list[Cell]:
    cells: dict[int, Cell] = {}
    for ts in stamps:
        cell = Cell(key=hour_bucket(ts), model="m", first_ms=ts, last_ms=ts)
        c = cells.setdefault(hour_bucket(ts), cell)
        c.first_ms, c.last_ms = min(c.first_ms, ts), max(c.last_ms, ts)
        c.entries += 1
        c.output_tokens += 1
    return list(cells.values())


# Timestamps on and around hour boundaries and 5-hour gaps, where a rule off by one shows.
edges = st.builds(
    lambda h, d: max(0, BASE + h * HOUR_MS + d),
    st.integers(0, 40),
    st.sampled_from([-1, 0, 1, 59_999, 1_800_000, HOUR_MS - 1]),
)
stamps = st.lists(st.one_of(edges, st.integers(BASE, BASE + 2 * 86_400_000)), max_size=40)


@given(stamps)
def test_blocks_from_hourly_cells_equal_the_record_by_record_rule(ts: list[int]) -> None:
    report = build_report(
        ReportQuery(kind="blocks"), cells_of(ts), source="transcripts", now_ms=BASE * 2
    )
    got = [(r["start"], r["actual_end"], r["entries"]) for r in report["rows"]]
    from context_cleaner.analysis.counter import iso_ms

    want = [(iso_ms(s), iso_ms(last), n) for s, last, n in reference_blocks(ts)]
    assert got == want
    assert report["totals"]["output_tokens"] == len(ts)


def test_the_active_block_has_a_burn_rate_and_a_projection() -> None:
    start = BASE + 10 * HOUR_MS
    ts = [start + 5 * 60_000, start + 65 * 60_000]  # an hour apart, 100 tokens
    cells = cells_of(ts)
    for c in cells:
        c.output_tokens = 50
        c.cost_usd = 0.5
    now = start + 2 * HOUR_MS
    report = build_report(
        ReportQuery(kind="blocks", token_limit=200), cells, source="database", now_ms=now
    )
    (row,) = report["rows"]
    assert row["is_active"] is True
    assert row["burn_rate"]["tokens_per_minute"] == 100 / 60
    assert row["burn_rate"]["cost_per_minute"] == 1.0 / 60
    # 3 h left at 100 tokens/h: 100 + 300 tokens, $1 + $3.
    assert row["projection"] == {"total_tokens": 400, "cost_usd": 4.0, "remaining_minutes": 180}
    assert row["token_limit_status"]["status"] == "exceeds"
    assert row["over_token_limit"] is False
    later = build_report(
        ReportQuery(kind="blocks"), cells, source="database", now_ms=now + BLOCK_MS
    )
    assert later["rows"][0]["is_active"] is False and later["rows"][0]["projection"] is None

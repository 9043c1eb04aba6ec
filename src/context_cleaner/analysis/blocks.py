"""ccusage's 5-hour billing blocks, from hourly cells (pure functions).

The rule (ccusage 20's ``blocks``): records in time order; a block starts at the UTC
hour holding its first record and ends 5 hours later; a record joins the open block
unless it is more than 5 h after the block's start or more than 5 h after the previous
record, and then it starts a new block. Gaps between blocks are not rows.

Cells are per hour bucket ``(h*H, (h+1)*H]`` (hours closed at their end). Every block
starts on an hour, so "more than 5 h after the start" splits only between buckets, and
a gap of more than 5 h only ever lies between two buckets (measured from the last
record of one to the first of the next). So the blocks from hourly cells are exactly
the blocks from the records, and the database needs to send one row per hour and model.
"""

from __future__ import annotations

from collections.abc import Sequence

from context_cleaner.analysis.counter import iso_ms
from context_cleaner.analysis.periods import HOUR_MS, Cell, ReportQuery, Usage

BLOCK_MS = 5 * HOUR_MS
WARNING_SHARE = 0.8
"""ccusage's warning level: projected usage above 80% of the token limit."""


def _burn_rate(usage: Usage) -> dict[str, float] | None:
    minutes = (usage.last_ms - usage.first_ms) / 60_000
    if minutes <= 0:
        return None
    cost = usage.cost_usd
    return {
        "tokens_per_minute": usage.total_tokens / minutes,
        "non_cache_tokens_per_minute": (usage.input_tokens + usage.output_tokens) / minutes,
        "cost_per_minute": cost / minutes,
        "cost_per_hour": cost / minutes * 60,
    }


def block_rows(
    query: ReportQuery, cells: Sequence[Cell], now_ms: int
) -> tuple[list[tuple[object, dict[str, object], list[Cell], Usage]], dict[str, object]]:
    """(sort key, block fields, cells, sum) per block, and the report's extra fields."""
    hours: dict[int, list[Cell]] = {}
    for c in cells:
        hours.setdefault(int(c.key), []).append(c)
    blocks: list[tuple[int, list[Cell], Usage]] = []
    for h in sorted(hours):
        members = hours[h]
        first = min(c.first_ms for c in members)
        if blocks:
            start, open_cells, usage = blocks[-1]
            if first - start <= BLOCK_MS and first - usage.last_ms <= BLOCK_MS:
                open_cells.extend(members)
                for c in members:
                    usage.add(c)
                continue
        usage = Usage()
        for c in members:
            usage.add(c)
        blocks.append((first - first % HOUR_MS, list(members), usage))

    out: list[tuple[object, dict[str, object], list[Cell], Usage]] = []
    finished_max = 0
    for start, members, usage in blocks:
        end = start + BLOCK_MS
        active = now_ms - usage.last_ms < BLOCK_MS and now_ms < end
        if not active:
            finished_max = max(finished_max, usage.total_tokens)
        head: dict[str, object] = {
            "start": iso_ms(start),
            "end": iso_ms(end),
            "actual_end": iso_ms(usage.last_ms),
            "entries": usage.entries,
            "is_active": active,
            "burn_rate": None,
            "projection": None,
        }
        if active:
            rate = _burn_rate(usage)
            head["burn_rate"] = rate
            if rate is not None:
                remaining = max(0.0, (end - now_ms) / 60_000)
                head["projection"] = {
                    "total_tokens": round(
                        usage.total_tokens + rate["tokens_per_minute"] * remaining
                    ),
                    "cost_usd": round(usage.cost_usd + rate["cost_per_minute"] * remaining, 6),
                    "remaining_minutes": round(remaining),
                }
        out.append((start, head, members, usage))

    extra: dict[str, object] = {}
    if query.token_limit is not None:
        limit = finished_max if query.token_limit == "max" else int(query.token_limit)
        extra["token_limit"] = limit
        for _start, head, _members, usage in out:
            head["over_token_limit"] = bool(limit) and usage.total_tokens > limit
            projection = head["projection"]
            if head["is_active"] and limit:
                projected = (
                    int(projection["total_tokens"])  # type: ignore[index]
                    if isinstance(projection, dict)
                    else usage.total_tokens
                )
                status = (
                    "exceeds"
                    if projected > limit
                    else "warning"
                    if projected > limit * WARNING_SHARE
                    else "ok"
                )
                head["token_limit_status"] = {
                    "limit": limit,
                    "projected_tokens": projected,
                    "percent_used": round(projected / limit * 100, 2),
                    "status": status,
                }
    return out, extra

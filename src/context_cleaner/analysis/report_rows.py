"""A report's rows from its cells: periods (day, week, month, session) and 5-hour blocks.

The last step of every report, the same for both sources (the transcripts through
:func:`~context_cleaner.analysis.periods.cells_from_records`, the database through
``bridge/reports.py``): :func:`build_report` turns cells into
``{"report", "source", "timezone", "rows", "totals"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from context_cleaner.analysis.blocks import block_rows
from context_cleaner.analysis.counter import iso_ms
from context_cleaner.analysis.periods import Cell, ReportQuery, Usage, month_of, week_of


def _breakdown(cells: Sequence[Cell]) -> list[dict[str, object]]:
    by_model: dict[str, Usage] = {}
    for c in cells:
        by_model.setdefault(c.model, Usage()).add(c)
    rows = [{"model": m, **u.fields()} for m, u in by_model.items()]
    rows.sort(key=lambda r: (-float(r["cost_usd"]), str(r["model"])))  # type: ignore[arg-type]
    return rows


def _period_rows(
    query: ReportQuery, cells: Sequence[Cell]
) -> list[tuple[object, dict[str, object], list[Cell], Usage]]:
    """(sort key, period fields, cells, sum) per period of a day-based or session report."""
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        key = str(c.key)
        if query.kind == "weekly":
            key = week_of(key, query.start_of_week)
        elif query.kind == "monthly":
            key = month_of(key)
        groups.setdefault(key, []).append(c)
    out = []
    period_name = {"daily": "date", "weekly": "week", "monthly": "month"}.get(query.kind)
    for key, members in groups.items():
        usage = Usage()
        for c in members:
            usage.add(c)
        if period_name is not None:
            out.append((key, {period_name: key}, members, usage))
        else:
            project = min(c.project for c in members)
            head = {
                "session_id": key,
                "project": project,
                "first_timestamp": iso_ms(usage.first_ms),
                "last_timestamp": iso_ms(usage.last_ms),
            }
            out.append(((head["last_timestamp"], key), head, members, usage))
    return out


def build_report(
    query: ReportQuery,
    cells: Sequence[Cell],
    *,
    source: str,
    now_ms: int | None = None,
) -> dict[str, object]:
    """The report's JSON-ready structure from its cells (the same for both sources).

    ``now_ms`` (default: now) decides which 5-hour block is active.
    """
    if now_ms is None:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
    parts: list[tuple[object, dict[str, object], list[Cell], Usage]]
    extra: dict[str, object] = {}
    if query.kind == "blocks":
        parts, extra = block_rows(query, cells, now_ms)
    else:
        parts = _period_rows(query, cells)
    parts.sort(key=lambda p: p[0])  # type: ignore[arg-type, return-value]
    if query.last is not None:
        parts = parts[-query.last :] if query.last else []
    if query.order == "desc":
        parts.reverse()
    totals = Usage()
    rows: list[dict[str, object]] = []
    for _sort, head, members, usage in parts:
        totals.add(usage)
        row = {**head, **usage.fields()}
        if query.breakdown:
            row["breakdown"] = _breakdown(members)
        rows.append(row)
    total_fields = totals.fields()
    total_fields["entries"] = totals.entries
    return {
        "report": query.kind,
        "source": source,
        "timezone": query.timezone,
        **extra,
        "rows": rows,
        "totals": total_fields,
    }

"""EnhancedTokenCounter: a folder of transcripts in, exact totals and breakdowns out."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.analysis.fields import TOTAL_FIELDS, totals
from context_cleaner.analysis.pricing import FREE_MODELS, PriceTable
from context_cleaner.analysis.reader import MAX_LINE_BYTES
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.report import (
    AnalysisReport,
    DayUsage,
    FileReport,
    ModelUsage,
    Problem,
    ProjectUsage,
    RawLineTotals,
    SessionUsage,
    SkippedLineReport,
    TokenTotals,
)
from context_cleaner.analysis.scan import scan_files_parallel
from context_cleaner.analysis.sums import RunningSum
from context_cleaner.errors import ConfigurationError

QUARTER_HOUR_MS = 900_000
"""Every UTC offset in use is a multiple of 15 minutes: records of one UTC quarter hour share
their day in every zone (a day is looked up once per quarter hour, and the 15-minute
rollup's rows never span two days)."""


def resolve_timezone(name: str | None) -> tzinfo:
    """``None``/``"UTC"`` -> UTC, else an IANA zone; a clear error for unknown names."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"Unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'."
        ) from exc


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ``2026-02-11T21:24:22.960Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(slots=True)
class _Sum(RunningSum):
    """Running sums of the records of one part of a breakdown (a session, day, model ...)."""

    cost_usd: float = 0.0
    """USD: each record's ``costUSD``, else the price table's (rule 7)."""
    models: set[str] = field(default_factory=set)
    project: str = ""
    """The project of a session's group (the file's folder), carried to the session."""

    def merge(self, other: _Sum) -> None:
        self.add_sum(other)
        self.cost_usd += other.cost_usd
        self.models |= other.models

    def totals(self) -> dict[str, int | float]:
        tokens = (self.input_tokens, self.output_tokens, self.cache_creation_5m_tokens)
        tokens += (self.cache_creation_1h_tokens, self.cache_read_tokens)
        return totals(tokens, self.cost_usd, self.entries)


@dataclass(slots=True)
class Breakdown:
    """Totals and the four breakdowns of a set of counted records."""

    total: _Sum
    sessions: dict[str, _Sum]
    days: dict[str, _Sum]
    models: dict[str, _Sum]
    projects: dict[str, _Sum]
    unknown_models: set[str]


def record_cost(record: UsageRecord, prices: PriceTable) -> float:
    """Rule 7: the line's ``costUSD`` when present, else the price table's."""
    if record.cost_usd is not None:
        return record.cost_usd
    return prices.price_record(record)


def break_down(records: Iterable[UsageRecord], prices: PriceTable, tz: tzinfo = UTC) -> Breakdown:
    """Sum records into totals and by session, day (in ``tz``), model and project.

    One pass sums records into (session, day, model) groups; the four breakdowns
    are then rolled up from the groups, which are few.
    """
    groups: dict[tuple[str, str, str], _Sum] = {}
    day_cache: dict[int, str] = {}
    unknown: set[str] = set()
    for r in records:
        if r.cost_usd is not None:
            cost = r.cost_usd
        else:
            cost = record_cost(r, prices)
            if r.model not in FREE_MODELS and prices.price(r.model) is None:
                unknown.add(r.model)
        bucket = r.timestamp_ms // QUARTER_HOUR_MS
        day = day_cache.get(bucket)
        if day is None:
            day = datetime.fromtimestamp(bucket * 900, tz).date().isoformat()
            day_cache[bucket] = day
        key = (r.session_id, day, r.model)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Sum(project=r.project)
            if r.model:  # a group has one model
                group.models.add(r.model)
        group.add_record(r)
        group.cost_usd += cost
    out = Breakdown(_Sum(), {}, {}, {}, {}, unknown)
    for (session, day, model), g in groups.items():
        out.total.merge(g)
        target = out.sessions.get(session)
        if target is None:
            target = out.sessions[session] = _Sum(project=g.project)
        target.merge(g)
        out.days.setdefault(day, _Sum()).merge(g)
        out.models.setdefault(model, _Sum()).merge(g)
        out.projects.setdefault(g.project, _Sum()).merge(g)
    return out


class EnhancedTokenCounter:
    """Counts Claude Code usage exactly (DESIGN §3) from transcript folders.

    ``source_dirs`` override the default roots (``CLAUDE_CONFIG_DIR`` or
    ``~/.config/claude/projects`` and ``~/.claude/projects``).
    """

    def __init__(
        self,
        source_dirs: Sequence[str | os.PathLike[str]] | None = None,
        *,
        timezone: str | None = None,
        prices: PriceTable | None = None,
        workers: int | None = None,
        start_method: str | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.source_dirs = list(source_dirs or [])
        self.timezone_name = timezone or "UTC"
        self.tz = resolve_timezone(timezone)
        self.prices = prices if prices is not None else PriceTable.load()
        self.workers = workers
        self.start_method = start_method
        """Process start method for large corpora (``"spawn"`` inside a process that runs
        threads, such as one holding the embedded database; default: the platform's)."""
        self.max_line_bytes = max_line_bytes

    def analyze(self) -> AnalysisReport:
        """Discover, read, de-duplicate, aggregate and price every transcript."""
        started = time.perf_counter()
        roots = resolve_roots(self.source_dirs or None)
        found = discover(roots)
        scan = scan_files_parallel(
            found.files,
            workers=self.workers,
            max_line_bytes=self.max_line_bytes,
            start_method=self.start_method,
        )
        records = scan.collector.records()
        parts = break_down(records, self.prices, self.tz)
        total = TokenTotals(**parts.total.totals())
        raw = scan.collector.raw
        warnings = [
            f"Unknown model {m!r}: priced at $0; add it to a price file (--prices) to price it."
            for m in sorted(parts.unknown_models)
        ]
        warnings += [f"{s.path}: {s.error}" for s in scan.files if s.error]
        warnings += [
            f"{s.path}: the last {s.torn_tail_bytes} byte(s) (line {s.lines + 1}, byte "
            f"{s.end_offset}) have no newline yet (a line still being written?); not counted."
            for s in scan.files
            if s.torn_tail_bytes
        ]
        warnings += [f"{p.path}: {p.reason}" for p in found.problems]
        if scan.skips.total:
            warnings.append(
                f"{scan.skips.total} line(s) could not be counted; see skipped_lines for why."
            )
        ratio = raw.total_tokens / total.total_tokens if total.total_tokens else 1.0
        return AnalysisReport(
            roots=[str(r) for r in roots],
            timezone=self.timezone_name,
            totals=total,
            sessions=sorted(
                (
                    SessionUsage(
                        session_id=sid,
                        project=s.project,
                        first_timestamp=iso_ms(s.first_ms),
                        last_timestamp=iso_ms(s.last_ms),
                        models=sorted(s.models),
                        **s.totals(),
                    )
                    for sid, s in parts.sessions.items()
                ),
                key=lambda s: (s.last_timestamp, s.session_id),
                reverse=True,
            ),
            days=[DayUsage(date=d, **s.totals()) for d, s in sorted(parts.days.items())],
            models=[
                ModelUsage(model=m, **s.totals())
                for m, s in sorted(parts.models.items(), key=lambda kv: -kv[1].cost_usd)
            ],
            projects=[
                ProjectUsage(project=p, **s.totals()) for p, s in sorted(parts.projects.items())
            ],
            raw_line_sum=RawLineTotals(
                lines=raw.entries,
                **{name: getattr(raw, name) for name in TOTAL_FIELDS},
                overcount_ratio=round(ratio, 4),
                explanation=(
                    "Claude Code writes one line per content block of a response, each "
                    "repeating the response's usage; summing every line counts a response "
                    f"several times ({raw.entries} usage lines for {total.records} responses). "
                    "The totals keep one line per response (the one with the final usage)."
                ),
            ),
            duplicate_lines_removed=raw.entries - len(records),
            sidechain_replays_dropped=scan.collector.replays_dropped(),
            files=[FileReport(**_file_fields(s)) for s in scan.files],
            skipped_lines=[
                SkippedLineReport(
                    file=s.file_path,
                    line=s.line_number,
                    byte_offset=s.byte_offset,
                    reason=s.reason,
                    detail=s.detail,
                )
                for s in scan.skips.details
            ],
            skipped_by_reason=dict(sorted(scan.skips.by_reason.items())),
            skipped_lines_total=scan.skips.total,
            unknown_models=sorted(m for m in parts.unknown_models if m not in FREE_MODELS),
            discovery_problems=[Problem(path=p.path, reason=p.reason) for p in found.problems],
            warnings=warnings,
            bytes_read=sum(s.end_offset - s.start_offset for s in scan.files),
            elapsed_seconds=round(time.perf_counter() - started, 3),
        )

    async def get_enhanced_analysis(self) -> AnalysisReport:
        """The spec's coroutine name for :meth:`analyze`."""
        return self.analyze()


def _file_fields(s: object) -> dict[str, object]:
    names = [
        "path",
        "session_id",
        "project",
        "size",
        "end_offset",
        "lines",
        "usage_lines",
        "skipped_lines",
        "torn_tail_bytes",
        "error",
    ]
    return {n: getattr(s, n) for n in names}

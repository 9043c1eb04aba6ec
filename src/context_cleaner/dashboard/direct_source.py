"""The ``direct`` source: the transcripts, read through the analysis layer (no database).

This is the spec's "immediate rollback": while the database is being repaired
the dashboard shows the same numbers straight from the transcripts. The
analysis layer discovers, reads and de-duplicates the records (DESIGN §3) and
prices them (rule 7); here they are summed per (session, UTC 15-minute bucket,
model, project), the grain of the database's 15-minute rollup, and each sum is on
its bucket's day in the asked timezone (``periods.day_of``, the reports' rule),
so every filter and breakdown means exactly what it means in ``database`` mode.
The scan is kept and redone only when a transcript changed (its size or
modification time), checked at most every ``check_interval`` seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from context_cleaner.analysis.counter import QUARTER_HOUR_MS, record_cost, resolve_timezone
from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.analysis.periods import day_of
from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.analysis.scan import scan_files_parallel
from context_cleaner.bridge import default_host, totals_dict
from context_cleaner.dashboard import health
from context_cleaner.dashboard.filters import EVERYTHING, Page, QueryFilters

BANNER = (
    "Immediate rollback mode: these numbers are read straight from the transcripts, "
    "not from the database."
)


@dataclass(slots=True)
class Group:
    """Sums of the counted records of one (session, UTC 15-minute bucket, model, project)."""

    session: str
    bucket_ms: int
    """The bucket's start (epoch milliseconds)."""
    model: str
    project: str
    host: str
    sums: list[float] = field(default_factory=lambda: [0, 0, 0, 0, 0, 0.0, 0])
    """input, output, cache 5m, cache 1h, cache read, cost, records."""
    first_ms: int = 0
    last_ms: int = 0

    def add_sums(self, other: Sequence[float]) -> None:
        for i, v in enumerate(other):
            self.sums[i] += v


@dataclass(slots=True)
class Snapshot:
    """One scan of the transcripts, grouped."""

    fingerprint: tuple[tuple[str, int, int], ...]
    groups: list[Group]
    files: int
    roots: list[str]
    scanned_at: float
    skipped_lines: int
    days: dict[str, list[str]] = field(default_factory=dict)
    """Per timezone asked, each group's day there (computed once a scan)."""


def group_records(records: Iterable[Any], prices: PriceTable, host: str) -> list[Group]:
    """Sum counted records per (session, UTC 15-minute bucket, model, project), as the
    database's 15-minute rollup does."""
    groups: dict[tuple[str, int, str, str], Group] = {}
    for r in records:
        bucket = r.timestamp_ms - r.timestamp_ms % QUARTER_HOUR_MS
        key = (r.session_id, bucket, r.model, r.project)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(r.session_id, bucket, r.model, r.project, host)
            g.first_ms = g.last_ms = r.timestamp_ms
        g.add_sums(
            (
                r.input_tokens,
                r.output_tokens,
                r.cache_creation_5m_tokens,
                r.cache_creation_1h_tokens,
                r.cache_read_tokens,
                record_cost(r, prices),
                1,
            )
        )
        g.first_ms = min(g.first_ms, r.timestamp_ms)
        g.last_ms = max(g.last_ms, r.timestamp_ms)
    return list(groups.values())


def _matches(f: QueryFilters) -> Callable[[Group, str], bool]:
    needle = f.search.lower() if f.search else None
    start = f.start.isoformat() if f.start else None
    end = f.end.isoformat() if f.end else None

    def ok(g: Group, day: str) -> bool:
        return (
            (start is None or day >= start)
            and (end is None or day <= end)
            and (f.model is None or g.model == f.model)
            and (f.project is None or g.project == f.project)
            and (f.host is None or g.host == f.host)
            and (needle is None or needle in g.session.lower() or needle in g.project.lower())
        )

    return ok


_KEYS: dict[str, Callable[[Group, str], Any]] = {
    "session": lambda g, day: g.session,
    "day": lambda g, day: day,
    "model": lambda g, day: g.model,
    "project": lambda g, day: g.project,
    "host": lambda g, day: g.host,
}


_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "total_tokens": lambda i: i["total_tokens"],
    "cost_usd": lambda i: i["cost_usd"],
    "last_timestamp": lambda i: i["last_timestamp"] or "",
}


def _paged(items: list[dict[str, Any]], dimension: str, page: Page) -> list[dict[str, Any]]:
    """``page`` of ``items``, ordered as the database orders them (ties by key, ascending)."""
    items.sort(key=lambda i: str(i[dimension]))
    sort_key = _SORT_KEYS.get(page.order)
    if sort_key is not None:
        # stable: ties keep their key order
        items.sort(key=sort_key, reverse=page.descending is not False)
    elif page.descending:
        items.reverse()
    end = None if page.limit is None else page.offset + page.limit
    return items[page.offset : end]


def _totals(selected: Iterable[tuple[Group, str]]) -> dict[str, Any]:
    sums = [0, 0, 0, 0, 0, 0.0, 0]
    for g, _day in selected:
        for i, v in enumerate(g.sums):
            sums[i] += v
    return totals_dict(sums)


class DirectSource:
    """Dashboard data straight from the transcripts (no database)."""

    kind = "direct"

    def __init__(
        self,
        source_dirs: Sequence[str] | None = None,
        *,
        prices: PriceTable | None = None,
        check_interval: float = 5.0,
        workers: int | None = None,
    ) -> None:
        self.source_dirs = list(source_dirs or [])
        self.prices = prices if prices is not None else PriceTable.load()
        self.check_interval = check_interval
        self.workers = workers
        self.host = default_host()
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = 0.0

    def snapshot(self) -> Snapshot:
        """The current scan; rescans when a transcript changed since the last one."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is not None and now - self._checked < self.check_interval:
                return self._snapshot
            roots = resolve_roots(self.source_dirs or None)
            found = discover(roots)
            fingerprint = tuple((str(f.path), f.size, f.mtime_ns) for f in found.files)
            if self._snapshot is None or self._snapshot.fingerprint != fingerprint:
                scan = scan_files_parallel(found.files, workers=self.workers)
                self._snapshot = Snapshot(
                    fingerprint=fingerprint,
                    groups=group_records(scan.collector.records(), self.prices, self.host),
                    files=len(found.files),
                    roots=[str(r) for r in roots],
                    scanned_at=time.time(),
                    skipped_lines=scan.skips.total,
                )
            self._checked = now
            return self._snapshot

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.kind,
            "location": ", ".join(self.snapshot().roots),
            "immediate_rollback": True,
            "banner": BANNER,
            "initialised": True,
        }

    @contextlib.contextmanager
    def unit(self, wait: float | None = None) -> Iterator[None]:
        yield

    def _selected(self, filters: QueryFilters) -> list[tuple[Group, str]]:
        """The groups matching ``filters``, each with its day in their timezone."""
        ok = _matches(filters)
        snap = self.snapshot()
        days = snap.days.get(filters.timezone)
        if days is None:
            tz = resolve_timezone(filters.timezone)
            seen: dict[int, str] = {}
            days = [day_of(g.bucket_ms, tz, seen) for g in snap.groups]
            snap.days[filters.timezone] = days
        return [(g, day) for g, day in zip(snap.groups, days, strict=True) if ok(g, day)]

    def totals(self, filters: QueryFilters) -> dict[str, Any]:
        return _totals(self._selected(filters))

    def count_sessions(self, filters: QueryFilters) -> int:
        return len({g.session for g, _day in self._selected(filters)})

    def breakdown(
        self, dimension: str, filters: QueryFilters, page: Page = EVERYTHING
    ) -> list[dict[str, Any]]:
        key_of = _KEYS[dimension]
        merged: dict[Any, Group] = {}
        models: dict[Any, set[str]] = {}
        for g, day in self._selected(filters):
            key = key_of(g, day)
            m = merged.get(key)
            if m is None:
                m = merged[key] = Group(g.session, g.bucket_ms, g.model, g.project, g.host)
                m.first_ms, m.last_ms = g.first_ms, g.last_ms
            m.add_sums(g.sums)
            m.project = min(m.project, g.project)
            m.first_ms = min(m.first_ms, g.first_ms)
            m.last_ms = max(m.last_ms, g.last_ms)
            models.setdefault(key, set()).add(g.model)
        items = []
        for key, m in merged.items():
            item = {dimension: key}
            item.update(totals_dict(m.sums))
            item.update(
                project=m.project,
                first_timestamp=health.iso_utc(m.first_ms / 1000),
                last_timestamp=health.iso_utc(m.last_ms / 1000),
                models=sorted(models[key]),
            )
            items.append(item)
        return _paged(items, dimension, page)

    def overview(self, filters: QueryFilters, limit: int) -> dict[str, Any]:
        selected = self._selected(filters)
        out: dict[str, Any] = {
            "totals": _totals(selected),
            "sessions": len({g.session for g, _day in selected}),
        }
        for dimension in ("day", "model", "project", "host"):
            key_of = _KEYS[dimension]
            sessions: dict[Any, set[str]] = {}
            for g, day in selected:
                sessions.setdefault(key_of(g, day), set()).add(g.session)
            order = "key" if dimension == "day" else "total_tokens"
            items = self.breakdown(dimension, filters, Page(order=order))
            if dimension != "day":
                items = items[:limit]
            for item in items:
                item["sessions"] = len(sessions.get(item[dimension], ()))
            out[dimension + "s"] = items
        return out

    def options(self) -> dict[str, list[str]]:
        groups = self.snapshot().groups
        return {
            "models": sorted({g.model for g in groups}),
            "projects": sorted({g.project for g in groups}),
            "hosts": sorted({g.host for g in groups}),
        }

    def health(self, runs_limit: int) -> dict[str, Any]:
        snap = self.snapshot()
        newest = max((g.last_ms for g in snap.groups), default=None)
        newest_s = None if newest is None else newest / 1000
        freshness = {
            "newest_record_at": health.iso_utc(newest_s),
            "newest_record_age_seconds": health.record_age(newest_s),
            "data_lag_seconds": None,  # nothing is synced: the transcripts are read directly
            "last_sync_at": None,
            "checked_at": health.iso_utc(time.time()),
            "analysed_at": health.iso_utc(snap.scanned_at),
            "files_tracked": snap.files,
            "files_behind": 0,
            "bytes_behind": 0,
            "files_missing": 0,
            "files_with_errors": 0,
        }
        alert = {"level": "warning", "message": BANNER, "migration_id": None, "at": None}
        return {"runs": [], "validation": None, "freshness": freshness, "alerts": [alert]}

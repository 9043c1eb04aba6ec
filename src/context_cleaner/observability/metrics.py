"""The spec's ``MigrationMetrics``: nine OpenTelemetry instruments and their names.

Each instrument keeps the spec's attribute name; the metric it exports is named
``context_cleaner.<area>.<what>`` (OpenTelemetry style) and carries a unit::

    files_processed_counter        context_cleaner.migration.files_processed   {file}
    tokens_migrated_counter        context_cleaner.migration.tokens_migrated   {token}
    migration_duration_histogram   context_cleaner.migration.duration          s
    processing_rate_gauge          context_cleaner.migration.processing_rate   {token}/s
    memory_usage_gauge             context_cleaner.migration.memory_usage      MiBy
    database_latency_histogram     context_cleaner.database.latency            s
    error_rate_counter             context_cleaner.migration.errors            {error}
    retry_attempts_counter         context_cleaner.migration.retry_attempts    {retry}
    failed_files_counter           context_cleaner.migration.failed_files      {file}

When telemetry is off every instrument is :data:`NOOP`, whose methods do nothing,
so callers never test whether telemetry is on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

#: (attribute, kind, metric name, unit, description), in the spec's order.
INSTRUMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "files_processed_counter",
        "counter",
        "context_cleaner.migration.files_processed",
        "{file}",
        "Transcript files whose pending bytes were read and committed.",
    ),
    (
        "tokens_migrated_counter",
        "counter",
        "context_cleaner.migration.tokens_migrated",
        "{token}",
        "Tokens added to the database by a run (its exact total_tokens_migrated).",
    ),
    (
        "migration_duration_histogram",
        "histogram",
        "context_cleaner.migration.duration",
        "s",
        "Wall time of a run (migrate, sync), from start to its last write.",
    ),
    (
        "processing_rate_gauge",
        "gauge",
        "context_cleaner.migration.processing_rate",
        "{token}/s",
        "Tokens read per second so far in the current run.",
    ),
    (
        "memory_usage_gauge",
        "gauge",
        "context_cleaner.migration.memory_usage",
        "MiBy",
        "Private memory of the migrating process and its workers (files' pages excluded).",
    ),
    (
        "database_latency_histogram",
        "histogram",
        "context_cleaner.database.latency",
        "s",
        "Duration of one database call (query, insert, session open), by operation and table.",
    ),
    (
        "error_rate_counter",
        "counter",
        "context_cleaner.migration.errors",
        "{error}",
        "Errors met, by kind (file, run); its rate over time is the error rate.",
    ),
    (
        "retry_attempts_counter",
        "counter",
        "context_cleaner.migration.retry_attempts",
        "{retry}",
        "Batch writes retried after a transient database error.",
    ),
    (
        "failed_files_counter",
        "counter",
        "context_cleaner.migration.failed_files",
        "{file}",
        "Transcript files that could not be read.",
    ),
)

METRIC_NAMES = {attr: name for attr, _, name, _, _ in INSTRUMENTS}
"""Spec attribute -> exported metric name."""


class _Noop:
    """An instrument that records nothing (telemetry off)."""

    __slots__ = ()

    def add(self, amount: float, attributes: dict[str, Any] | None = None) -> None:
        """Counter API."""

    def record(self, amount: float, attributes: dict[str, Any] | None = None) -> None:
        """Histogram API."""

    def set(self, amount: float, attributes: dict[str, Any] | None = None) -> None:
        """Gauge API."""


NOOP = _Noop()


@dataclass(frozen=True, slots=True)
class MigrationMetrics:
    """Comprehensive metrics for migration monitoring (the spec's class).

    Counters have ``add``, histograms ``record``, gauges ``set``; every value
    takes an optional attribute dict (``run.kind``, ``db.operation.name`` ...).
    """

    # Progress metrics
    files_processed_counter: Any = NOOP
    tokens_migrated_counter: Any = NOOP
    migration_duration_histogram: Any = NOOP
    # Performance metrics
    processing_rate_gauge: Any = NOOP
    """tokens/second"""
    memory_usage_gauge: Any = NOOP
    """MiB"""
    database_latency_histogram: Any = NOOP
    # Error metrics
    error_rate_counter: Any = NOOP
    retry_attempts_counter: Any = NOOP
    failed_files_counter: Any = NOOP

    @property
    def enabled(self) -> bool:
        """True when the instruments record (telemetry is on)."""
        return self.files_processed_counter is not NOOP

    @classmethod
    def disabled(cls) -> MigrationMetrics:
        """Every instrument a no-op."""
        return cls()

    @classmethod
    def from_meter(cls, meter: Meter) -> MigrationMetrics:
        """Create the nine instruments on ``meter``."""
        made: dict[str, Any] = {}
        for attr, kind, name, unit, description in INSTRUMENTS:
            create = {
                "counter": meter.create_counter,
                "histogram": meter.create_histogram,
                "gauge": meter.create_gauge,
            }[kind]
            made[attr] = create(name, unit=unit, description=description)
        return cls(**made)


assert [f.name for f in fields(MigrationMetrics)] == [i[0] for i in INSTRUMENTS]

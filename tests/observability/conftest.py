"""Fixtures for the observability tests: in-memory OpenTelemetry, fresh embedded databases."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.observability import telemetry

REPO = Path(__file__).resolve().parents[2]
OTEL_VARIABLES = ("OTEL_METRICS_EXPORTER", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED")


@dataclass
class Otel:
    """In-memory readers installed for one test (or what they held when a run ended)."""

    reader: Any
    spans: Any
    frozen: tuple[Any, list[Any]] | None = None

    def freeze(self) -> Otel:
        """What was collected so far, kept after the readers are gone."""
        data = self.reader.get_metrics_data()
        return Otel(None, None, (data, list(self.spans.get_finished_spans())))

    def points(self, name: str) -> list[Any]:
        """Every data point of metric ``name`` collected so far."""
        data = self.frozen[0] if self.frozen else self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out += list(metric.data.data_points)
        return out

    def total(self, name: str, **attributes: Any) -> float:
        """Sum of a counter's points whose attributes include ``attributes``."""
        return sum(
            p.value
            for p in self.points(name)
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        )

    def finished(self, name: str | None = None) -> list[Any]:
        spans = self.frozen[1] if self.frozen else self.spans.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]


def _install() -> Otel:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
    telemetry.configure(metric_readers=[reader], span_exporters=[spans])
    return Otel(reader, spans)


@pytest.fixture
def otel() -> Iterator[Otel]:
    """OpenTelemetry with an InMemoryMetricReader and InMemorySpanExporter for this test."""
    installed = _install()
    try:
        yield installed
    finally:
        telemetry.reset()


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests decide what telemetry exports, not the environment they run in."""
    for name in (*OTEL_VARIABLES, "CONTEXT_CLEANER_ALERTS", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path}/db"


def cli_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``context-cleaner`` subprocess on ``db_url``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (*OTEL_VARIABLES, "CONTEXT_CLEANER_ALERTS", "PREFECT_API_URL")
    }
    env["CONTEXT_CLEANER_CLICKHOUSE_URL"] = db_url
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "context_cleaner", *args]


#: Alert thresholds of the shared run: two rules fire on its first batch.
SHARED_ALERTS = (
    '{"slow_processing": {"threshold": 1e18, "min_run_seconds": 0},'
    ' "high_memory_usage": {"threshold": 0}}'
)


@dataclass
class FixturesRun:
    """The real transcripts migrated once (3 batches), with what telemetry and listeners saw."""

    url: str
    migrator: Any
    result: Any
    otel: Otel
    heard: list[Any]


@pytest.fixture(scope="session")
def fixtures_run(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> FixturesRun:
    """Shared by the tests that only read a finished run (metrics, spans, alerts, status)."""
    from context_cleaner.migration import monitor
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

    url = f"chdb://{tmp_path_factory.mktemp('fixtures-run')}/db"
    heard: list[Any] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in (*OTEL_VARIABLES, "PREFECT_API_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("CONTEXT_CLEANER_ALERTS", SHARED_ALERTS)
        installed = _install()
        try:
            # A checkpoint ends a batch: one every 2 files keeps the batches of 2.
            migrator = HistoricalDataMigrator(
                url, parallel_workers=1, batch_size=2, checkpoint_interval=2, commit_every=0.0
            )
            with monitor.listening(heard.append):
                result = migrator.run(str(fixtures_dir))
            frozen = installed.freeze()
        finally:
            telemetry.reset()
    return FixturesRun(url, migrator, result, frozen, heard)

"""The run monitor: what one migrate or sync run tells the operator while it works.

:class:`RunMonitor` wraps a run (``HistoricalDataMigrator.run`` and ``.sync``
enter it; every :func:`pipeline.run_batches` inside reports its batches to it
through ``pipeline.BATCH_OBSERVER``) and, at the run and batch boundaries:

- opens the run's span (``migration.run``; batches and database calls are its
  children) and records the spec's metrics (:mod:`context_cleaner.observability`);
- evaluates ``MIGRATION_ALERTS`` (:mod:`context_cleaner.migration.alerts`) after
  every batch, and the stall rule on a watchdog thread while a batch runs;
- records each alert transition in ``migration_alerts`` and hands it to the
  listeners: a log line always, and whatever :func:`listening` added (the
  Prefect flows turn each into a Prefect event).

Listeners run on the thread that saw the transition (the watchdog's for a stall).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import psutil

from context_cleaner.bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import MigrationError
from context_cleaner.migration import pipeline
from context_cleaner.migration.alerts import (
    AlertEvaluator,
    AlertEvent,
    AlertRule,
    RunSample,
    alert_rules,
)
from context_cleaner.migration.models import BatchProcessingResult, RunResult
from context_cleaner.migration.pipeline import RunState
from context_cleaner.observability.telemetry import Telemetry, get_telemetry

log = logging.getLogger(__name__)

AlertListener = Callable[[AlertEvent], None]

_LISTENERS: ContextVar[tuple[AlertListener, ...]] = ContextVar("alert_listeners", default=())

#: Longest wait between two stall checks of the watchdog.
WATCHDOG_MAX_INTERVAL = 15.0


@contextlib.contextmanager
def listening(listener: AlertListener) -> Iterator[None]:
    """Within this block, runs started in this context pass alert transitions to ``listener``."""
    token = _LISTENERS.set((*_LISTENERS.get(), listener))
    try:
        yield
    finally:
        _LISTENERS.reset(token)


def memory_usage_ratio() -> float:
    """The machine's memory in use: 1 - available / total."""
    vm = psutil.virtual_memory()
    return 1.0 - vm.available / vm.total


def log_alert(event: AlertEvent) -> None:
    """The default listener: a warning when a rule fires, an info line when it resolves."""
    level = logging.WARNING if event.state == "firing" else logging.INFO
    log.log(level, "alert %s %s: %s", event.alert, event.state, event.message)


class RunMonitor:
    """Metrics, spans and alerts of one run; enter it around the run, feed it every batch."""

    def __init__(
        self,
        bridge: EnhancedTokenDatabaseBridge,
        migration_id: str,
        kind: str = "migrate",
        *,
        dry_run: bool = False,
        rules: dict[str, AlertRule] | None = None,
        listeners: tuple[AlertListener, ...] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.bridge = bridge
        self.migration_id = migration_id
        self.kind = kind
        self.dry_run = dry_run
        self.evaluator = AlertEvaluator(migration_id, kind, rules or alert_rules())
        self.listeners = (log_alert, *(_LISTENERS.get() if listeners is None else listeners))
        self.telemetry = telemetry or get_telemetry()
        self.events: list[AlertEvent] = []
        """Every transition of this run, in order."""
        self._unrecorded: list[AlertEvent] = []
        self._lock = threading.Lock()
        self.started = time.time()
        self.last_progress = self.started
        self._state: RunState | None = None
        self._attributes = {"run.kind": kind}
        self._span_block: Any = None
        self._span: Any = None
        self._observer_token: Any = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # -- the run ---------------------------------------------------------------------------

    def __enter__(self) -> RunMonitor:
        self._span_block = self.telemetry.span(
            "migration.run",
            {"migration.id": self.migration_id, "run.kind": self.kind, "dry_run": self.dry_run},
        )
        self._span = self._span_block.__enter__()
        self._observer_token = pipeline.BATCH_OBSERVER.set(self.on_batch)
        stall = self.evaluator.rules.get("migration_stalled")
        if stall is not None:
            interval = min(max(stall.threshold / 10, 0.05), WATCHDOG_MAX_INTERVAL)
            self._watchdog = threading.Thread(
                target=self._watch, args=(interval,), name=f"watchdog-{self.migration_id}"
            )
            self._watchdog.daemon = True
            self._watchdog.start()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
        pipeline.BATCH_OBSERVER.reset(self._observer_token)
        metrics = self.telemetry.metrics
        outcome = "failed" if exc is not None else "completed"
        if exc is not None:
            metrics.error_rate_counter.add(1, {**self._attributes, "error.kind": "run"})
        metrics.migration_duration_histogram.record(
            time.time() - self.started, {**self._attributes, "outcome": outcome}
        )
        self.flush(quiet=True)  # alerts are advice: never fail a finished run over them
        return bool(self._span_block.__exit__(exc_type, exc, tb))

    def finished(self, result: RunResult) -> None:
        """The run's result is known: the tokens it added and its outcome on the span.

        The tokens are the net change this run made to the database (a migration's
        ``total_tokens_migrated``, a sync's ``tokens_added``). Sets ``alerts_fired``.
        """
        result.alerts_fired = self.fired()
        outcome = result.outcome()
        if not outcome.dry_run and outcome.tokens_added > 0:
            self.telemetry.metrics.tokens_migrated_counter.add(
                outcome.tokens_added, self._attributes
            )
        self._span.set_attributes(
            {
                "files.processed": outcome.files_processed,
                "files.failed": outcome.files_failed,
                "records.inserted": outcome.records_inserted,
                "tokens.migrated": outcome.tokens_added,
                "success": outcome.success,
            }
        )

    # -- batches ---------------------------------------------------------------------------

    def on_batch(self, state: RunState, result: BatchProcessingResult) -> None:
        """After each committed batch: metrics, then the alert rules."""
        self._state = state
        now = time.time()
        metrics = self.telemetry.metrics
        metrics.files_processed_counter.add(
            len(result.files) - result.files_failed, self._attributes
        )
        if result.files_failed:
            metrics.failed_files_counter.add(result.files_failed, self._attributes)
            metrics.error_rate_counter.add(
                result.files_failed, {**self._attributes, "error.kind": "file"}
            )
        elapsed = max(now - state.started, 1e-9)
        metrics.processing_rate_gauge.set(state.tokens_in_records / elapsed, self._attributes)
        metrics.memory_usage_gauge.set(state.private_memory / 2**20, self._attributes)
        self.last_progress = now
        self._handle(self.evaluator.observe(self._sample(state, now, 0.0)))
        self.flush(quiet=True)

    def _sample(self, state: RunState | None, now: float, idle: float) -> RunSample:
        return RunSample(
            at=now,
            run_seconds=now - self.started,
            lines_read=state.lines_read if state else 0,
            skipped_lines=state.skipped_lines if state else 0,
            files_failed=state.files_failed if state else 0,
            tokens=state.tokens_in_records if state else 0,
            memory_usage_ratio=memory_usage_ratio(),
            seconds_without_progress=idle,
        )

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            state = self._state
            if state is not None and state.plan and state.files_done >= len(state.plan.items):
                continue  # every batch is in: the run is validating or finishing, not stalled
            now = time.time()
            sample = self._sample(self._state, now, now - self.last_progress)
            self._handle(self.evaluator.observe(sample, only={"migration_stalled"}))

    # -- transitions -------------------------------------------------------------------------

    def _handle(self, events: list[AlertEvent]) -> None:
        if not events:
            return
        with self._lock:
            self.events += events
            self._unrecorded += events
        for event in events:
            self._span.add_event(
                f"alert.{event.state}", {"alert": event.alert, "value": event.value}
            )
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # one broken listener must not stop the run or the others
                    log.exception("alert listener %r failed on %s", listener, event.alert)

    def flush(self, *, quiet: bool = False) -> None:
        """Write the transitions not recorded yet to ``migration_alerts`` (not for dry runs).

        ``quiet``: a database error keeps them for the next flush instead of raising.
        """
        with self._lock:
            pending, self._unrecorded = self._unrecorded, []
        if not pending or self.dry_run:
            return
        try:
            with self.bridge.writer() as w:
                w.record_alerts([_row(e) for e in pending])
        except MigrationError:
            with self._lock:
                self._unrecorded = pending + self._unrecorded
            if not quiet:
                raise
            log.warning("could not record %d alert(s) yet; will retry", len(pending))

    def fired(self) -> list[str]:
        """The alerts that fired during the run (each once, in order)."""
        with self._lock:
            names = [e.alert for e in self.events if e.state == "firing"]
        return list(dict.fromkeys(names))

    def run_details(self) -> dict[str, Any]:
        """For the run's row: the alerts that fired (the dashboard lists ``details.alerts``)."""
        with self._lock:
            fired = [e for e in self.events if e.state == "firing"]
            resolved = {e.alert for e in self.events if e.state == "resolved"}
        return {
            "alerts": [
                {"level": "warning", **_row(e), "resolved": e.alert in resolved} for e in fired
            ]
        }


def _row(event: AlertEvent) -> dict[str, Any]:
    row = event.to_dict()
    row["raised_at"] = row.pop("at")
    return row

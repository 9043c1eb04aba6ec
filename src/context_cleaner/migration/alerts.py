"""The spec's ``MIGRATION_ALERTS``: the rules, what each measures, and their evaluation.

One evaluation, several consumers: :class:`AlertEvaluator` turns samples of a
run into :class:`AlertEvent` transitions (a rule starts firing, or resolves);
the run monitor (:mod:`context_cleaner.migration.monitor`) records them in the
``migration_alerts`` table and passes them to listeners (a log line; the Prefect
flows add one with ``monitor.listening(...)`` that emits a Prefect event).
Edge-triggered: a rule fires when its condition becomes true and again only
after it resolved in between, so a slow run does not alert on every batch.

========================  ==========================================================
``high_error_rate``       (skipped lines + failed files) / (lines read + failed files)
                          over the batches of the last 5 minutes > 0.05, judged once
                          those batches hold at least ``min_lines`` (100) lines and
                          files: a first batch of 4 lines with one bad line is noise.
                          A run in which it fired is no clean success: the CLI exits
                          3 and a Prefect flow run ends Failed (its data is committed)
``slow_processing``       tokens read per second since the run started < 1000, judged
                          once the run is a minute old (a small sync that takes two
                          seconds is not slow: little to read, fixed costs)
``high_memory_usage``     the machine's memory in use (1 - available / total) > 0.9
``migration_stalled``     no batch committed for 300 seconds: checked after each batch
                          and by the monitor's watchdog thread while batches remain;
                          ``status`` also reports a run that stopped updating as stalled
========================  ==========================================================

Thresholds can be changed per process with ``CONTEXT_CLEANER_ALERTS``, a JSON
object shaped like ``MIGRATION_ALERTS``, e.g. ``{"slow_processing": {"threshold": 5000}}``
or ``{"high_error_rate": {"min_lines": 1000}}``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import ALERTS_ENV

# Migration alert thresholds (the spec's table, verbatim)
MIGRATION_ALERTS: dict[str, dict[str, Any]] = {
    "high_error_rate": {"threshold": 0.05, "window": "5m"},
    "slow_processing": {"threshold": 1000, "metric": "tokens_per_second"},
    "high_memory_usage": {"threshold": 0.9, "metric": "memory_usage_ratio"},
    "migration_stalled": {"threshold": 300, "metric": "seconds_without_progress"},
}

#: Per rule: the metric it reads, whether it fires above or below, the run age before it is judged.
_SHAPE: dict[str, tuple[str, str, float]] = {
    "high_error_rate": ("error_rate", ">", 0.0),
    "slow_processing": ("tokens_per_second", "<", 60.0),
    "high_memory_usage": ("memory_usage_ratio", ">", 0.0),
    "migration_stalled": ("seconds_without_progress", ">", 0.0),
}
#: Lines (and failed files) the error rate's window must hold before it is judged: at 100,
#: the 5% threshold means at least 6 bad lines, not one bad line among the first few.
MIN_ERROR_SAMPLE = 100

#: Alerts after which a run is no clean success (exit code 3, a Failed flow run).
FAILING_ALERTS = ("high_error_rate",)

_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_window(text: str | float | int) -> float:
    """``"5m"`` -> 300.0; plain numbers are seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _WINDOW_RE.match(text)
    if not match:
        raise ConfigurationError(
            f"Alert window {text!r} is not a duration; write e.g. '30s', '5m' or '1h'."
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule of :data:`MIGRATION_ALERTS`, with what it measures made explicit."""

    name: str
    threshold: float
    metric: str
    above: bool
    """True: fires when the value is above the threshold; False: below."""
    window_seconds: float = 0.0
    """Measured over this trailing window (0 = the run so far)."""
    min_run_seconds: float = 0.0
    """Not judged before the run is this old."""
    min_lines: int = 0
    """Error rate: not judged before its window holds this many lines and failed files."""

    def crossed(self, value: float) -> bool:
        return value > self.threshold if self.above else value < self.threshold


def alert_rules(
    config: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, AlertRule]:
    """The rules: ``config`` (default :data:`MIGRATION_ALERTS`), then ``CONTEXT_CLEANER_ALERTS``.

    Each entry may set ``threshold``, ``window``, ``min_run_seconds`` and (``high_error_rate``)
    ``min_lines``.
    """
    merged = {name: dict(spec) for name, spec in MIGRATION_ALERTS.items()}
    env = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config is not None:
        layers.append(("the alert configuration", config))
    raw = env.get(ALERTS_ENV, "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ConfigurationError(
                f"{ALERTS_ENV} is not valid JSON ({exc}); write e.g. "
                '\'{"slow_processing": {"threshold": 5000}}\' or unset it.'
            ) from exc
        if not isinstance(parsed, dict):
            raise ConfigurationError(f"{ALERTS_ENV} must be a JSON object of alert -> settings.")
        layers.append((ALERTS_ENV, parsed))
    for where, layer in layers:
        for name, spec in layer.items():
            if name not in merged or not isinstance(spec, Mapping):
                raise ConfigurationError(
                    f"{where}: unknown alert {name!r} (or its settings are not an object); "
                    f"the alerts are {', '.join(MIGRATION_ALERTS)}."
                )
            merged[name].update(spec)
    rules = {}
    for name, spec in merged.items():
        metric, direction, min_age = _SHAPE[name]
        try:
            threshold = float(spec["threshold"])
            min_age = float(spec.get("min_run_seconds", min_age))
            default_lines = MIN_ERROR_SAMPLE if metric == "error_rate" else 0
            min_lines = int(spec.get("min_lines", default_lines))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"Alert {name}: threshold, min_run_seconds and min_lines must be numbers."
            ) from exc
        rules[name] = AlertRule(
            name=name,
            threshold=threshold,
            metric=metric,
            above=direction == ">",
            window_seconds=parse_window(spec.get("window", 0)),
            min_run_seconds=min_age,
            min_lines=min_lines,
        )
    return rules


@dataclass(frozen=True, slots=True)
class RunSample:
    """What the rules look at, taken at the end of a batch (or by the watchdog).

    Counts are cumulative for the run.
    """

    at: float
    """Epoch seconds."""
    run_seconds: float
    """Seconds since the run started."""
    lines_read: int
    skipped_lines: int
    files_failed: int
    tokens: int
    """Tokens read so far (in the usage records written)."""
    memory_usage_ratio: float
    seconds_without_progress: float


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A rule started firing or resolved."""

    alert: str
    state: str
    """``firing`` or ``resolved``."""
    metric: str
    value: float
    threshold: float
    window_seconds: float
    at: float
    migration_id: str
    run_kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def describe(rule: AlertRule, value: float, migration_id: str) -> str:
    """What a firing rule means for the operator, and what to do."""
    where = f"migration {migration_id}"
    window = f" in the last {rule.window_seconds:g} s" if rule.window_seconds else ""
    if rule.name == "high_error_rate":
        return (
            f"{value:.1%} of lines and files failed{window} of {where} (threshold "
            f"{rule.threshold:.1%}); see `context-cleaner status --migration-id {migration_id}` "
            "for the files and `context-cleaner analyze` for the skipped lines."
        )
    if rule.name == "slow_processing":
        return (
            f"{where} reads {value:,.0f} tokens/s (threshold {rule.threshold:,.0f}); check disk "
            "and CPU load, or lower --parallel-workers if the machine is swapping."
        )
    if rule.name == "high_memory_usage":
        return (
            f"memory in use is {value:.0%} of the machine during {where} (threshold "
            f"{rule.threshold:.0%}); use a smaller --batch-size or fewer --parallel-workers."
        )
    return (
        f"{where} has committed nothing for {value:,.0f} s (threshold {rule.threshold:,.0f} s); "
        "check for a process holding the database (`context-cleaner status`), or stop the run "
        "and start it again: it resumes."
    )


@dataclass
class AlertEvaluator:
    """Evaluates the rules on each sample of one run; returns the transitions.

    Thread-safe: the run's thread and its watchdog both call :meth:`observe`.
    """

    migration_id: str
    run_kind: str = "migrate"
    rules: dict[str, AlertRule] = field(default_factory=alert_rules)
    active: dict[str, AlertEvent] = field(default_factory=dict)
    """The rules firing now, with the event that started them."""
    _history: deque[RunSample] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def values(self, sample: RunSample) -> dict[str, float | None]:
        """Each rule's measured value for ``sample`` (None: not judged yet)."""
        out: dict[str, float | None] = {}
        for name, rule in self.rules.items():
            if sample.run_seconds < rule.min_run_seconds:
                out[name] = None
            elif rule.metric == "error_rate":
                out[name] = self._error_rate(sample, rule.window_seconds, rule.min_lines)
            elif rule.metric == "tokens_per_second":
                out[name] = sample.tokens / max(sample.run_seconds, 1e-9)
            elif rule.metric == "memory_usage_ratio":
                out[name] = sample.memory_usage_ratio
            else:
                out[name] = sample.seconds_without_progress
        return out

    def _error_rate(self, sample: RunSample, window: float, min_lines: int = 0) -> float | None:
        base: RunSample | None = None
        for old in self._history:  # oldest first: keep the last one older than the window
            if window and old.at < sample.at - window:
                base = old
        lines = sample.lines_read - (base.lines_read if base else 0)
        skipped = sample.skipped_lines - (base.skipped_lines if base else 0)
        failed = sample.files_failed - (base.files_failed if base else 0)
        if lines + failed <= 0 or lines + failed < min_lines:
            return None
        return (skipped + failed) / (lines + failed)

    def observe(self, sample: RunSample, *, only: set[str] | None = None) -> list[AlertEvent]:
        """Judge ``sample``; return the rules that started firing or resolved.

        ``only`` restricts the judgement to some rules (the watchdog judges the stall only).
        """
        with self._lock:
            events = []
            for name, value in self.values(sample).items():
                if value is None or (only is not None and name not in only):
                    continue
                rule = self.rules[name]
                firing = rule.crossed(value)
                if firing and name not in self.active:
                    event = self._event(rule, "firing", value, sample.at)
                    self.active[name] = event
                    events.append(event)
                elif not firing and name in self.active:
                    del self.active[name]
                    events.append(self._event(rule, "resolved", value, sample.at))
            if only is None:
                self._remember(sample)
            return events

    def _remember(self, sample: RunSample) -> None:
        self._history.append(sample)
        longest = max((r.window_seconds for r in self.rules.values()), default=0.0)
        while len(self._history) > 1 and self._history[1].at < sample.at - longest:
            self._history.popleft()

    def _event(self, rule: AlertRule, state: str, value: float, at: float) -> AlertEvent:
        message = describe(rule, value, self.migration_id)
        if state == "resolved":
            message = f"resolved: {rule.name} is back within its threshold ({value:,.4g})."
        return AlertEvent(
            alert=rule.name,
            state=state,
            metric=rule.metric,
            value=float(value),
            threshold=rule.threshold,
            window_seconds=rule.window_seconds,
            at=at,
            migration_id=self.migration_id,
            run_kind=self.run_kind,
            message=message,
        )

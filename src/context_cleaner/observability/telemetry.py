"""OpenTelemetry set-up: exporters from the standard ``OTEL_*`` variables, spans, metrics.

Off by default. The standard variables switch it on::

    OTEL_METRICS_EXPORTER=console|otlp|none   metrics (comma-separated list allowed)
    OTEL_TRACES_EXPORTER=console|otlp|none    spans
    OTEL_SDK_DISABLED=true                    everything off, whatever the above say
    OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf | grpc),
    OTEL_METRIC_EXPORT_INTERVAL, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES ...
                                              read by the SDK and the OTLP exporter

``console`` writes to stderr (stdout stays clean for ``--json``). ``otlp`` needs
``opentelemetry-exporter-otlp-proto-http`` (or ``-grpc``), imported only then.
Unlike the SDK's own default (otlp), an unset variable means none: a
command-line tool must not start sending data anywhere unasked.

With nothing switched on, :func:`get_telemetry` returns a Telemetry whose
instruments and spans are no-ops and ``opentelemetry`` is never imported
(importing the SDK costs ~150 ms). Programs and tests can install their own
readers and exporters with :func:`configure` (for example OpenTelemetry's
``InMemoryMetricReader`` and ``InMemorySpanExporter``) and undo it with :func:`reset`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from context_cleaner.errors import ConfigurationError
from context_cleaner.observability.metrics import MigrationMetrics

METRICS_ENV = "OTEL_METRICS_EXPORTER"
TRACES_ENV = "OTEL_TRACES_EXPORTER"
DISABLED_ENV = "OTEL_SDK_DISABLED"
SCOPE = "context_cleaner"
"""Instrumentation scope of every meter and tracer."""

#: protocol -> (package to install, module of the span exporter, module of the metric exporter)
_OTLP = {
    "http/protobuf": (
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    ),
    "grpc": (
        "opentelemetry-exporter-otlp-proto-grpc",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    ),
}


class _NoSpan:
    """What a span block yields when tracing is off: accepts and drops everything."""

    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        """Dropped."""

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Dropped."""

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Dropped."""

    def is_recording(self) -> bool:
        return False


NO_SPAN = _NoSpan()


class _NullBlock:
    """A reusable ``with`` block that does nothing and yields :data:`NO_SPAN`."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return NO_SPAN

    def __exit__(self, *exc: object) -> bool:
        return False


_NULL_BLOCK = _NullBlock()


@dataclass
class Telemetry:
    """The process's instruments and tracer (both no-ops when telemetry is off)."""

    metrics: MigrationMetrics = field(default_factory=MigrationMetrics.disabled)
    tracer: Any = None
    """An OpenTelemetry ``Tracer``, or None when tracing is off."""
    providers: list[Any] = field(default_factory=list)
    """The SDK providers to flush and shut down."""
    exporters: dict[str, list[str]] = field(default_factory=dict)
    """What was switched on, e.g. ``{"metrics": ["console"], "traces": []}``."""

    @property
    def enabled(self) -> bool:
        return self.tracer is not None or self.metrics.enabled

    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Any:
        """A ``with`` block timing ``name`` as the current span; yields the span.

        An exception leaving the block is recorded on the span and sets its status to error.
        """
        if self.tracer is None:
            return _NULL_BLOCK
        return self.tracer.start_as_current_span(name, attributes=dict(attributes or {}))

    def flush(self) -> None:
        """Export what is buffered now (before a short-lived process exits)."""
        for provider in self.providers:
            provider.force_flush()

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.shutdown()
        self.providers.clear()


_lock = threading.Lock()
_current: Telemetry | None = None


def get_telemetry() -> Telemetry:
    """The process's telemetry, configured from the ``OTEL_*`` variables on first use."""
    current = _current
    if current is not None:
        return current
    with _lock:
        if _current is None:
            _install(from_environment(os.environ))
        assert _current is not None
        return _current


def _install(telemetry: Telemetry) -> Telemetry:
    global _current
    _current = telemetry
    return telemetry


def configure(
    *,
    metric_readers: Sequence[Any] = (),
    span_exporters: Sequence[Any] = (),
    service_name: str = "context-cleaner",
) -> Telemetry:
    """Install these readers and exporters (in place of the environment's) for this process.

    Spans reach each exporter synchronously (``SimpleSpanProcessor``), so a test
    reads them as soon as the span ended. Replaces (and shuts down) what was
    installed before. Returns the new :class:`Telemetry`.
    """
    with _lock:
        _shutdown_current()
        return _install(
            _build(
                list(metric_readers),
                list(span_exporters),
                batch_spans=False,
                service_name=service_name,
                on_exit=False,
                names={"metrics": ["custom"] if metric_readers else [], "traces": []},
            )
        )


def reset() -> None:
    """Shut down what is installed; the next :func:`get_telemetry` reads the environment again."""
    global _current
    with _lock:
        _shutdown_current()
        _current = None


def _shutdown_current() -> None:
    if _current is not None:
        _current.shutdown()


def exporter_names(variable: str, environ: Mapping[str, str]) -> list[str]:
    """The exporters a variable asks for (``none`` and empty entries dropped), validated."""
    raw = environ.get(variable, "") or "none"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in ("none", "console", "otlp"):
            raise ConfigurationError(
                f"{variable}={raw!r} names an unknown exporter {name!r}; use none, console or "
                f"otlp (or unset {variable} for none)."
            )
    return [n for n in names if n != "none"]


def from_environment(environ: Mapping[str, str]) -> Telemetry:
    """Build the telemetry the ``OTEL_*`` variables ask for (a no-op one when none)."""
    if environ.get(DISABLED_ENV, "").strip().lower() == "true":
        return Telemetry()
    metric_names = exporter_names(METRICS_ENV, environ)
    trace_names = exporter_names(TRACES_ENV, environ)
    if not metric_names and not trace_names:
        return Telemetry()
    readers = [_metric_reader(n, environ) for n in metric_names]
    exporters = [_span_exporter(n, environ) for n in trace_names]
    return _build(
        readers,
        exporters,
        batch_spans=True,
        service_name=environ.get("OTEL_SERVICE_NAME") or "context-cleaner",
        on_exit=True,
        names={"metrics": metric_names, "traces": trace_names},
    )


def _otlp_module(kind: str, environ: Mapping[str, str]) -> Any:
    signal = "TRACES" if kind == "traces" else "METRICS"
    variable = TRACES_ENV if kind == "traces" else METRICS_ENV
    protocol = (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in _OTLP:
        raise ConfigurationError(
            f"OTLP protocol {protocol!r} is not supported; set OTEL_EXPORTER_OTLP_PROTOCOL to "
            "http/protobuf or grpc."
        )
    package, span_module, metric_module = _OTLP[protocol]
    try:
        return importlib.import_module(span_module if kind == "traces" else metric_module)
    except ImportError as exc:
        raise ConfigurationError(
            f"{variable}=otlp needs the OTLP exporter for {protocol}, which is not installed: "
            f"pip install {package} (into the environment of context-cleaner), or set "
            f"{variable}=console or none."
        ) from exc


def _metric_reader(name: str, environ: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    if name == "console":
        exporter = ConsoleMetricExporter(out=sys.stderr)
    else:
        exporter = _otlp_module("metrics", environ).OTLPMetricExporter()
    return PeriodicExportingMetricReader(exporter)


def _span_exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    return _otlp_module("traces", environ).OTLPSpanExporter()


def _build(
    readers: list[Any],
    exporters: list[Any],
    *,
    batch_spans: bool,
    service_name: str,
    on_exit: bool,
    names: dict[str, list[str]],
) -> Telemetry:
    from opentelemetry.sdk.resources import Resource

    from context_cleaner.version import __version__

    resource = Resource.create({"service.name": service_name, "service.version": __version__})
    telemetry = Telemetry(exporters={"metrics": names["metrics"], "traces": names["traces"]})
    if readers:
        from opentelemetry.sdk.metrics import MeterProvider

        meters = MeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=on_exit)
        telemetry.metrics = MigrationMetrics.from_meter(meters.get_meter(SCOPE, __version__))
        telemetry.providers.append(meters)
    if exporters:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        tracers = TracerProvider(resource=resource, shutdown_on_exit=on_exit)
        for exporter in exporters:
            processor = BatchSpanProcessor if batch_spans else SimpleSpanProcessor
            tracers.add_span_processor(processor(exporter))
        telemetry.tracer = tracers.get_tracer(SCOPE, __version__)
        telemetry.providers.append(tracers)
        telemetry.exporters["traces"] = names["traces"] or ["custom"]
    return telemetry


# -- what the layers call ------------------------------------------------------------------


def span(name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """A span on the process's tracer (see :meth:`Telemetry.span`)."""
    return get_telemetry().span(name, attributes)


def metrics() -> MigrationMetrics:
    """The process's instruments (no-ops when telemetry is off)."""
    return get_telemetry().metrics


def db_call(operation: str, table: str = "", **attributes: Any) -> Any:
    """Time one database call: a span ``"<OPERATION> <table>"`` and a latency sample.

    ``operation`` is what the call does (``SELECT``, ``INSERT``, ``SESSION`` ...),
    ``table`` what it touches. Free when telemetry is off.
    """
    telemetry = get_telemetry()
    if not telemetry.enabled:
        return _NULL_BLOCK
    return _db_call(telemetry, operation, table, attributes)


@contextlib.contextmanager
def _db_call(
    telemetry: Telemetry, operation: str, table: str, attributes: dict[str, Any]
) -> Iterator[Any]:
    tags = {"db.system.name": "clickhouse", "db.operation.name": operation}
    if table:
        tags["db.collection.name"] = table
    started = time.perf_counter()
    outcome = "ok"
    try:
        with telemetry.span(f"{operation} {table}".strip(), {**tags, **attributes}) as current:
            yield current
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        telemetry.metrics.database_latency_histogram.record(
            time.perf_counter() - started, {**tags, "outcome": outcome}
        )


def traced(
    name: str, *, arguments: Sequence[str] = (), outcome: Sequence[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function so each call is a span ``name`` (nothing added when tracing is off).

    ``arguments`` names keyword-or-positional parameters recorded as attributes at
    the start; ``outcome`` names attributes of the return value recorded at the end.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        import inspect

        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            telemetry = get_telemetry()
            if telemetry.tracer is None:
                return fn(*args, **kwargs)
            bound = signature.bind_partial(*args, **kwargs).arguments
            start = {a: _attribute(bound[a]) for a in arguments if a in bound}
            with telemetry.span(name, start) as current:
                value = fn(*args, **kwargs)
                for field_name in outcome:
                    current.set_attribute(field_name, _attribute(getattr(value, field_name)))
                return value

        return call

    return decorate


def _attribute(value: Any) -> Any:
    """A value OpenTelemetry accepts as an attribute (str, bool, int, float)."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and not value:
        return 0
    return len(value) if isinstance(value, list | tuple | set | dict) else str(value)

"""Observability: OpenTelemetry metrics and spans, shared by every layer that does work.

This package sits beside :mod:`context_cleaner.errors` under the layers: it
imports nothing from ``analysis``, ``bridge`` or ``migration`` (the bridge
records its database calls through it, the migration its runs and batches).
``opentelemetry`` itself is imported only when telemetry is switched on
(``OTEL_METRICS_EXPORTER`` / ``OTEL_TRACES_EXPORTER``, or :func:`configure`),
so the commands pay nothing for it by default.

    telemetry.get_telemetry()      the process's Telemetry (configured from OTEL_* on first use)
    telemetry.configure(...)       install readers/exporters yourself (tests: in-memory ones)
    telemetry.span(name, attrs)    a span (a no-op when tracing is off)
    telemetry.db_call(op, table)   a span and a latency sample per database call
    metrics.MigrationMetrics       the spec's instruments
"""

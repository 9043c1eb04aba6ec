"""Which exporters run is decided by the standard OTEL_* variables; off costs nothing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from context_cleaner.errors import ConfigurationError
from context_cleaner.observability import telemetry
from context_cleaner.observability.metrics import METRIC_NAMES, MigrationMetrics

from .conftest import cli, cli_env

PROBE = """
import json, sys
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.observability import telemetry
t = telemetry.get_telemetry()
with telemetry.db_call("SELECT", "x"), telemetry.span("s"):
    t.metrics.files_processed_counter.add(1)
print(json.dumps({"enabled": t.enabled, "otel": "opentelemetry" in sys.modules}))
"""


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_off_by_default_and_opentelemetry_is_not_imported(db_url: str) -> None:
    done = _python(PROBE, cli_env(db_url))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"enabled": False, "otel": False}


@pytest.mark.slow
def test_analyze_never_imports_opentelemetry_even_when_asked_for(
    db_url: str, fixtures_dir: Path
) -> None:
    code = (
        "import contextlib, io, sys\n"
        "from context_cleaner.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['analyze', '--source-dir', {str(fixtures_dir)!r}, '--json'])\n"
        "print(rc, 'opentelemetry' in sys.modules)\n"
    )
    env = cli_env(db_url, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="console")
    done = _python(code, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "False"]


def _json_after(text: str, marker: str) -> dict:
    """The JSON document printed by a console exporter that contains ``marker``."""
    at = text.index(marker)
    start = text.rindex("\n{", 0, at) + 1 if "\n{" in text[:at] else text.index("{")
    document, _ = json.JSONDecoder().raw_decode(text, start)
    return document


@pytest.mark.slow
def test_console_exporters_report_the_run_on_stderr_and_keep_json_on_stdout(
    db_url: str, fixtures_dir: Path
) -> None:
    env = cli_env(db_url, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="console")
    done = subprocess.run(
        cli("migrate", "--source-dir", str(fixtures_dir), "--json", "--engine", "local",
            "--parallel-workers", "1"),
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)  # stdout is the result alone
    run_span = _json_after(done.stderr, '"name": "migration.run"')
    assert run_span["attributes"]["migration.id"] == result["migration_id"]
    assert run_span["attributes"]["tokens.migrated"] == result["total_tokens_migrated"]
    metrics = _json_after(done.stderr, '"resource_metrics"')
    values = {
        m["name"]: sum(p.get("value", 0) for p in m["data"]["data_points"])
        for rm in metrics["resource_metrics"]
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    }
    assert values[METRIC_NAMES["tokens_migrated_counter"]] == result["total_tokens_migrated"]
    assert values[METRIC_NAMES["files_processed_counter"]] == result["files_processed"]
    assert result["total_tokens_migrated"] == 15_537_336


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@pytest.mark.skipif(
    _installed("opentelemetry.exporter.otlp.proto.http"),
    reason="the OTLP exporter is installed here",
)
@pytest.mark.slow
def test_otlp_without_its_package_is_a_clear_error(db_url: str) -> None:
    done = subprocess.run(
        cli("status"), env=cli_env(db_url, OTEL_TRACES_EXPORTER="otlp"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "OTEL_TRACES_EXPORTER=otlp" in done.stderr
    assert "pip install opentelemetry-exporter-otlp-proto-http" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_METRICS_EXPORTER": "prometheus"}, "unknown exporter 'prometheus'"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        telemetry.from_environment(environ)


def test_sdk_disabled_wins_and_none_means_off() -> None:
    both = {"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "console"}
    assert not telemetry.from_environment({**both, "OTEL_SDK_DISABLED": "true"}).enabled
    assert not telemetry.from_environment({"OTEL_METRICS_EXPORTER": "none"}).enabled
    on = telemetry.from_environment({"OTEL_METRICS_EXPORTER": "console"})
    try:
        assert on.metrics.enabled and on.tracer is None and on.exporters["metrics"] == ["console"]
    finally:
        on.shutdown()


def test_the_spec_instruments_exist_with_their_names(otel) -> None:  # type: ignore[no-untyped-def]
    metrics = telemetry.metrics()
    assert metrics.enabled
    for attribute, name in METRIC_NAMES.items():
        instrument = getattr(metrics, attribute)
        assert instrument.name == name
        assert name.startswith("context_cleaner.")
    assert not MigrationMetrics.disabled().enabled

"""MIGRATION_ALERTS: the rules, their evaluation (property-tested), and alerts raised by real
runs: recorded in the database, passed to listeners, shown by status and in the run's row."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.errors import ConfigurationError
from context_cleaner.migration import monitor
from context_cleaner.migration.alerts import (
    MIGRATION_ALERTS,
    AlertEvaluator,
    AlertEvent,
    RunSample,
    alert_rules,
    parse_window,
)
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.status import get_migration_status
from context_cleaner.testing.transcripts import generate_transcripts

from .conftest import FixturesRun


def test_the_rules_are_the_specs() -> None:
    rules = alert_rules(environ={})
    assert set(rules) == set(MIGRATION_ALERTS)
    assert rules["high_error_rate"].threshold == 0.05
    assert rules["high_error_rate"].window_seconds == 300
    assert rules["slow_processing"].threshold == 1000 and not rules["slow_processing"].above
    assert rules["high_memory_usage"].threshold == 0.9
    assert rules["migration_stalled"].threshold == 300
    assert parse_window("1.5h") == 5400 and parse_window(12) == 12


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"slow": {"threshold": 1}}', "unknown alert 'slow'"),
        ('{"slow_processing": {"threshold": "fast"}}', "must be numbers"),
        ('{"high_error_rate": {"window": "five minutes"}}', "is not a duration"),
    ],
)
def test_bad_overrides_say_what_to_write(raw: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        alert_rules(environ={"CONTEXT_CLEANER_ALERTS": raw})


batches = st.lists(
    st.tuples(
        st.integers(0, 400),  # seconds since the previous batch
        st.integers(0, 200),  # lines read
        st.integers(0, 30),  # lines skipped (may exceed lines read: skipped lines count too)
        st.integers(0, 2),  # files failed
    ),
    min_size=1,
    max_size=25,
)


@given(batches, st.floats(0.0, 1.0), st.sampled_from([0, 1, 50, 100, 400]))
def test_error_rate_is_the_windowed_ratio_and_alerts_alternate(
    steps: list[tuple[int, int, int, int]], threshold: float, min_lines: int
) -> None:
    rules = alert_rules(
        {"high_error_rate": {"threshold": threshold, "min_lines": min_lines}}, environ={}
    )
    evaluator = AlertEvaluator("mig-p", "migrate", rules)
    at, lines, skipped, failed = 1000.0, 0, 0, 0
    history: list[tuple[float, int, int, int]] = []
    transitions: list[AlertEvent] = []
    for gap, n_lines, n_skipped, n_failed in steps:
        at += gap
        lines, skipped, failed = lines + n_lines, skipped + n_skipped, failed + n_failed
        sample = RunSample(at, at - 1000, lines, skipped, failed, 0, 0.1, 0.0)
        value = evaluator.values(sample)["high_error_rate"]
        base = next(
            (h for h in reversed(history) if h[0] < at - 300), (0.0, 0, 0, 0)
        )  # the last sample older than the window
        dl, ds, df = lines - base[1], skipped - base[2], failed - base[3]
        judged = dl + df > 0 and dl + df >= min_lines  # not judged on a too-small sample
        assert value == ((ds + df) / (dl + df) if judged else None)
        transitions += [e for e in evaluator.observe(sample) if e.alert == "high_error_rate"]
        history.append((at, lines, skipped, failed))
        if value is not None:  # not judged without lines: the state stays as it was
            assert ("high_error_rate" in evaluator.active) == (value > threshold)
    states = [e.state for e in transitions]
    assert states == ["firing", "resolved"] * (len(states) // 2) + ["firing"] * (len(states) % 2)


def _env(monkeypatch: pytest.MonkeyPatch, **overrides: dict[str, float]) -> None:
    monkeypatch.setenv("CONTEXT_CLEANER_ALERTS", json.dumps(overrides))


def test_alerts_of_a_run_are_recorded_announced_and_shown(fixtures_run: FixturesRun) -> None:
    result, migrator = fixtures_run.result, fixtures_run.migrator
    assert result.success  # thresholds of SHARED_ALERTS: two rules fire on the first batch
    fired = sorted(e.alert for e in fixtures_run.heard if e.state == "firing")
    assert fired == ["high_memory_usage", "slow_processing"]  # once each over 3 batches
    rows = migrator.bridge.migration_alerts(result.migration_id)
    assert sorted((r["alert"], r["state"]) for r in rows) == [
        ("high_memory_usage", "firing"),
        ("slow_processing", "firing"),
    ]
    slow = next(r for r in rows if r["alert"] == "slow_processing")
    assert slow["metric"] == "tokens_per_second" and slow["value"] > 0
    assert result.migration_id in slow["message"]
    status = get_migration_status(migrator.bridge, result.migration_id)
    assert status is not None
    assert sorted(a["alert"] for a in status.alerts) == fired
    runs = migrator.bridge.migration_runs()
    run = next(r for r in runs if r["migration_id"] == result.migration_id)
    assert sorted(a["alert"] for a in run["details"]["alerts"]) == fired  # the dashboard's view
    (span,) = fixtures_run.otel.finished("migration.run")
    assert sorted(e.attributes["alert"] for e in span.events) == fired


@pytest.mark.slow
def test_a_high_error_rate_fires_with_the_measured_rate(db_url: str, tmp_path: Path) -> None:
    corpus = generate_transcripts(tmp_path / "c", target_tokens=300_000, seed=4)
    bad = 0
    for path in sorted(corpus.projects_dir.rglob("*.jsonl")):
        with path.open("ab") as out:
            for _ in range(10):
                out.write(b'{"type":"assistant","message":{"usage":{"input_tokens":-1}}}\n')
                bad += 1
    heard: list[AlertEvent] = []
    with monitor.listening(heard.append):
        result = HistoricalDataMigrator(db_url, parallel_workers=1).run(str(corpus.projects_dir))
    assert result.skipped_lines == bad
    (event,) = [e for e in heard if e.alert == "high_error_rate"]
    assert event.state == "firing"
    assert event.value == pytest.approx(bad / (corpus.lines + bad))


@pytest.mark.slow
def test_a_stall_is_seen_by_the_watchdog_while_a_batch_hangs(
    monkeypatch: pytest.MonkeyPatch, db_url: str, fixtures_dir: Path
) -> None:
    _env(monkeypatch, migration_stalled={"threshold": 0.2})
    stalled = threading.Event()
    heard: list[AlertEvent] = []
    hung: list[bool] = []

    def listen(event: AlertEvent) -> None:
        heard.append(event)
        if event.alert == "migration_stalled" and event.state == "firing":
            stalled.set()

    def hang_once(_progress: object) -> None:  # after the first batch, "hang" until seen
        if not hung:
            hung.append(True)
            stalled.clear()  # the batch just resolved any earlier stall (setup is slow too)
            assert stalled.wait(30), "the watchdog never reported the stall"

    migrator = HistoricalDataMigrator(db_url, parallel_workers=1, batch_size=1, commit_every=0.0)
    with monitor.listening(listen):
        result = migrator.run(str(fixtures_dir), progress_callback=hang_once)
    states = [e.state for e in heard if e.alert == "migration_stalled"]
    assert states.count("firing") >= 1 and states[-1] == "resolved"  # the next batch resolves it
    assert states == ["firing", "resolved"] * (len(states) // 2)
    rows = migrator.bridge.migration_alerts(result.migration_id)
    recorded = [r["state"] for r in reversed(rows) if r["alert"] == "migration_stalled"]
    assert recorded == states

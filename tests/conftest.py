"""Shared fixtures: the real transcripts and what the reference analyser says of them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(
    os.environ.get(
        "CONTEXT_CLEANER_FIXTURES", REPO.parent / "shared" / "fixtures" / "claude-code-transcripts"
    )
)
if not FIXTURES.is_dir():  # a checkout without shared/: the bundled copy of the same files
    FIXTURES = REPO / "src" / "context_cleaner" / "sample"

# Property tests: `ci` (the default) keeps the whole suite fast; HYPOTHESIS_PROFILE=thorough
# runs many more examples. No deadline: examples write and read real files.
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


#: Fixtures that make a test slow whatever it does with them: a Prefect API server, a
#: ccusage install and run, a process holding the database lock, a dashboard server, a
#: full-size migrated or generated corpus.
SLOW_FIXTURES = frozenset(
    {
        "prefect_harness",
        "ccusage",
        "holder",
        "server_factory",
        "fixtures_run",
        "corpus_6mb",
        "corpus_small",
        "small_corpus",
        "big_corpus",
    }
)


#: The test files that take longest, longest first (seconds of one worker in `make test`,
#: 2026-12-06: 180-320, 105-110, 85-95, 73-97, 70-79, then 30-80 each). They are collected
#: first, so with ``--dist loadfile --no-loadscope-reorder`` (the Makefile) the workers start
#: on them and end on short files: pytest-xdist's default hands out the files with most
#: tests first, which put files of one 50-100 s test last, where one worker can end up
#: running one alone. A file missing here only runs later (re-measure with ``--junitxml``).
LONGEST_FIRST = (
    "migration/test_rollback_crash.py",
    "flows/test_e2e_server.py",
    "migration/test_retained_history.py",
    "migration/test_month_in_the_life.py",
    "flows/test_blocks_and_limits.py",
    "migration/test_rollback.py",
    "migration/test_run_truth.py",
    "migration/test_deferred_rollups.py",
    "migration/test_checkpoints.py",
    "dashboard/test_report_page.py",
    "dashboard/test_browser.py",
    "sync/test_sync_cases.py",
    "migration/test_fuzz.py",
    "migration/test_split_runs.py",
    "reports/test_report_database.py",
    "sync/test_disk_use.py",
    "dashboard/test_report_api.py",
    "flows/test_resume_and_cli.py",
    "flows/test_flows.py",
    "flows/test_retry_and_scale.py",
)


_RANK = {path: rank for rank, path in enumerate(LONGEST_FIRST)}


def _longest_first(item: pytest.Item) -> int:
    tests = REPO / "tests"
    path = item.path.relative_to(tests).as_posix() if item.path.is_relative_to(tests) else ""
    return _RANK.get(path, len(_RANK))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier by cost: end-to-end tests and users of the expensive fixtures are ``slow``
    (``make test-fast`` runs ``-m "not slow"``); modules and tests that are slow for
    other reasons say so themselves. Then the longest files first (:data:`LONGEST_FIRST`),
    each file's tests in their order."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            continue
        uses = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses or item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.slow)
    items.sort(key=_longest_first)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def _expected(name: str) -> dict[str, Any]:
    """What ccusage 20.0.24 reports for the fixtures (shared/ first, else tests/data)."""
    for folder in (FIXTURES, REPO / "tests" / "data"):
        path = folder / name
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(name)


@pytest.fixture(scope="session")
def expected_daily() -> dict[str, Any]:
    return _expected("expected-ccusage-daily.json")


@pytest.fixture(scope="session")
def expected_session() -> dict[str, Any]:
    return _expected("expected-ccusage-session.json")

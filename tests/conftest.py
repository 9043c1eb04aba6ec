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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier by cost: end-to-end tests and users of the expensive fixtures are ``slow``
    (``make test-fast`` runs ``-m "not slow"``); modules and tests that are slow for
    other reasons say so themselves."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            continue
        uses = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses or item.get_closest_marker("e2e") is not None:
            item.add_marker(pytest.mark.slow)


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

"""The package faces: every exported name resolves, ``dir()`` lists it, and importing a face
pulls in none of the heavy dependencies (they load only when a name is first read)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from context_cleaner._lazy import _typing_imports

FACES = (
    "context_cleaner",
    "context_cleaner.testing",
)
HEAVY = ("clickhouse_connect", "chdb", "prefect", "opentelemetry", "rich", "fastapi")
SPEC_NAMES = (
    "HistoricalDataMigrator",
    "EnhancedTokenCounter",
    "EnhancedTokenDatabaseBridge",
    "MigrationMetrics",
    "MIGRATION_ALERTS",
    "HistoricalMigrationResult",
    "MigrationProgress",
    "MigrationError",
    "FileAccessError",
    "AnalysisError",
    "DatabaseError",
    "ValidationError",
    "ResourceError",
)


@pytest.mark.parametrize("face", FACES)
def test_importing_a_face_loads_no_heavy_dependency(face: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {face}"],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


@pytest.mark.parametrize("face", FACES)
def test_every_exported_name_resolves_and_is_listed(face: str) -> None:
    module = importlib.import_module(face)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("face", FACES)
def test_all_lists_exactly_the_names_given_a_home(face: str) -> None:
    module = importlib.import_module(face)
    homes = _typing_imports(str(module.__file__))
    assert set(homes) == set(module.__all__) - {"__version__"}


def test_the_spec_names_come_from_the_top() -> None:
    import context_cleaner

    assert set(SPEC_NAMES) <= set(context_cleaner.__all__)
    for name in ("FileAccessError", "AnalysisError", "DatabaseError", "ValidationError"):
        assert issubclass(getattr(context_cleaner, name), context_cleaner.MigrationError)
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator

    assert context_cleaner.HistoricalDataMigrator is HistoricalDataMigrator

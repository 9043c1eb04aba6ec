"""The runbook keeps up with the code: commands, metrics, alerts and modes it must explain."""

from __future__ import annotations

from context_cleaner.cli import build_parser
from context_cleaner.migration.alerts import MIGRATION_ALERTS
from context_cleaner.migration.rollback import MODES
from context_cleaner.observability.metrics import METRIC_NAMES

from .conftest import REPO

RUNBOOK = (REPO / "docs" / "operations.md").read_text()
ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text()


def test_the_runbook_names_every_command_metric_alert_and_rollback_mode() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing = [c for c in commands if f"context-cleaner {c}" not in RUNBOOK]
    missing += [n for n in METRIC_NAMES.values() if n not in RUNBOOK]
    missing += [a for a in MIGRATION_ALERTS if a not in RUNBOOK]
    missing += [f"--mode {m}" for m in MODES if f"--mode {m}" not in RUNBOOK]
    assert not missing


def test_the_architecture_lists_every_table_the_schema_creates() -> None:
    from context_cleaner.migration.rollback import owned_objects

    views, tables = owned_objects()
    assert [t for t in (*views, *tables) if f"`{t}`" not in ARCHITECTURE] == []

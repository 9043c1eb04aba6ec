"""The migration pipeline: transcripts into the database, kept in sync, validated, rolled back.

Public names (each loads its module on first use, so importing the package is free)::

    HistoricalDataMigrator(url).run() / .sync()   migrate, then keep in sync
    validate_migration_integrity(bridge, dirs)    the database against the transcripts
    rollback_migration(bridge, migration_id)      undo a run
    get_migration_status(bridge, migration_id)    a run's progress -> MigrationStatus
    MIGRATION_ALERTS                              alert thresholds
    HistoricalMigrationResult, ...                the result types (models.py)
"""

from __future__ import annotations

from context_cleaner._lazy import TYPE_CHECKING, lazy_face

__all__ = [
    "MIGRATION_ALERTS",
    "BatchProcessingResult",
    "FileDiscoveryResult",
    "HistoricalDataMigrator",
    "HistoricalMigrationResult",
    "IncrementalMigrationResult",
    "JSONLFileInfo",
    "MigrationProgress",
    "MigrationStatus",
    "RollbackResult",
    "SessionVariance",
    "SetupResult",
    "ValidationResult",
    "get_migration_status",
    "rollback_migration",
    "validate_migration_integrity",
]

__getattr__, __dir__ = lazy_face(__name__)

if TYPE_CHECKING:  # the names' homes; at run time ``__getattr__`` imports each on first use
    from context_cleaner.migration.alerts import MIGRATION_ALERTS
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
    from context_cleaner.migration.models import (
        BatchProcessingResult,
        FileDiscoveryResult,
        HistoricalMigrationResult,
        IncrementalMigrationResult,
        JSONLFileInfo,
        MigrationProgress,
        RollbackResult,
        SessionVariance,
        SetupResult,
        ValidationResult,
    )
    from context_cleaner.migration.rollback import rollback_migration
    from context_cleaner.migration.status import MigrationStatus, get_migration_status
    from context_cleaner.migration.validator import validate_migration_integrity

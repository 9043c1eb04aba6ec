"""The migration pipeline: transcripts into the database, kept in sync, validated, rolled back.

Public names (each loads its module on first use, so importing the package is free)::

    HistoricalDataMigrator(url).run() / .sync()   migrate, then keep in sync
    validate_migration_integrity(bridge, dirs)    the database against the transcripts
    rollback_migration(bridge, migration_id)      undo a run
    get_migration_status(bridge, migration_id)    a run's progress -> MigrationStatus
    MIGRATION_ALERTS                              alert thresholds
    HistoricalMigrationResult, ...                the result types (models.py)
"""

from context_cleaner._lazy import lazy_face

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

__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "context_cleaner.migration.historical_migrator": ("HistoricalDataMigrator",),
        "context_cleaner.migration.alerts": ("MIGRATION_ALERTS",),
        "context_cleaner.migration.models": (
            "BatchProcessingResult",
            "FileDiscoveryResult",
            "HistoricalMigrationResult",
            "IncrementalMigrationResult",
            "JSONLFileInfo",
            "MigrationProgress",
            "RollbackResult",
            "SessionVariance",
            "SetupResult",
            "ValidationResult",
        ),
        "context_cleaner.migration.status": ("MigrationStatus", "get_migration_status"),
        "context_cleaner.migration.rollback": ("rollback_migration",),
        "context_cleaner.migration.validator": ("validate_migration_integrity",),
    },
)

"""context_cleaner: exact Claude Code token and cost accounting, migrated into ClickHouse.

The spec's names, importable from here (each loads its module on first use, so
``import context_cleaner`` stays instant and pulls in no database driver,
Prefect, OpenTelemetry, Rich or FastAPI)::

    HistoricalDataMigrator        migrate, sync, validate, roll back, test (api.py over migration/)
    EnhancedTokenCounter          count the transcripts themselves (analysis/)
    EnhancedTokenDatabaseBridge   the ClickHouse tables (bridge/)
    MigrationMetrics              the spec's OpenTelemetry instruments (observability/)
    MIGRATION_ALERTS              alert thresholds
    HistoricalMigrationResult ... the result types (migration/models.py; RunResult their base;
                                  the testing API's from testing/)
    MigrationError ...            the error tree (errors.py; DatabaseError from bridge/)

``docs/spec-conformance.md`` maps each item of the spec to where it lives here.
"""

from __future__ import annotations

from context_cleaner._lazy import TYPE_CHECKING, lazy_face
from context_cleaner.version import __version__

if TYPE_CHECKING:  # the names' homes; at run time ``__getattr__`` imports each on first use
    from context_cleaner.analysis.counter import EnhancedTokenCounter
    from context_cleaner.api import HistoricalDataMigrator
    from context_cleaner.bridge.exceptions import DatabaseError
    from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.errors import (
        AnalysisError,
        ConfigurationError,
        ContextCleanerError,
        FileAccessError,
        MigrationError,
        MigrationValidationError,
        ResourceError,
        SourceNotFoundError,
        TerminalError,
        TransientError,
        ValidationError,
        is_transient,
    )
    from context_cleaner.migration.alerts import MIGRATION_ALERTS
    from context_cleaner.migration.memory import MigrationMemoryManager
    from context_cleaner.migration.models import (
        BatchProcessingResult,
        CheckpointResult,
        CompletenessCheck,
        CompletenessResult,
        FileDiscoveryResult,
        HistoricalMigrationResult,
        IncrementalMigrationResult,
        JSONLFileInfo,
        MigrationProgress,
        RollbackResult,
        RunResult,
        SessionVariance,
        SetupResult,
        SyncSetupResult,
        ValidationResult,
    )
    from context_cleaner.migration.status import MigrationStatus
    from context_cleaner.observability.metrics import MigrationMetrics
    from context_cleaner.testing.compatibility import CompatibilityResult
    from context_cleaner.testing.harness import (
        DryRunResult,
        IntegrationTestResult,
        PerformanceBenchmark,
        PerformanceTestResult,
        ValidationSuite,
    )

__all__ = [
    "MIGRATION_ALERTS",
    "AnalysisError",
    "BatchProcessingResult",
    "CheckpointResult",
    "CompatibilityResult",
    "CompletenessCheck",
    "CompletenessResult",
    "ConfigurationError",
    "ContextCleanerError",
    "DatabaseError",
    "DryRunResult",
    "EnhancedTokenCounter",
    "EnhancedTokenDatabaseBridge",
    "FileAccessError",
    "FileDiscoveryResult",
    "HistoricalDataMigrator",
    "HistoricalMigrationResult",
    "IncrementalMigrationResult",
    "IntegrationTestResult",
    "JSONLFileInfo",
    "MigrationError",
    "MigrationMemoryManager",
    "MigrationMetrics",
    "MigrationProgress",
    "MigrationStatus",
    "MigrationValidationError",
    "PerformanceBenchmark",
    "PerformanceTestResult",
    "ResourceError",
    "RollbackResult",
    "RunResult",
    "SessionVariance",
    "SetupResult",
    "SourceNotFoundError",
    "SyncSetupResult",
    "TerminalError",
    "TransientError",
    "ValidationError",
    "ValidationResult",
    "ValidationSuite",
    "__version__",
    "is_transient",
]

__getattr__, __dir__ = lazy_face(__name__)

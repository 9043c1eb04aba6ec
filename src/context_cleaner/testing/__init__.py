"""The spec's testing API and the transcript generator that tests and benchmarks share.

Public names (each loads its module on first use)::

    dry_run_migration, test_schema_compatibility, test_end_to_end_migration,
    performance_test_migration, benchmark_migration_performance,
    comprehensive_data_validation          the spec's "Testing Strategy" (testing_api.py)
    TestReport                             what each of them returns
    generate_corpus, generate_transcripts  generated transcripts with known totals (transcripts/)
"""

from __future__ import annotations

from context_cleaner._lazy import TYPE_CHECKING, lazy_face

if TYPE_CHECKING:  # the names' homes; at run time ``__getattr__`` imports each on first use
    from context_cleaner.testing.testing_api import (
        SCALES,
        TestReport,
        benchmark_migration_performance,
        comprehensive_data_validation,
        dry_run_migration,
        performance_test_migration,
        test_end_to_end_migration,
        test_schema_compatibility,
    )
    from context_cleaner.testing.transcripts import generate_corpus, generate_transcripts

__all__ = [
    "SCALES",
    "TestReport",
    "benchmark_migration_performance",
    "comprehensive_data_validation",
    "dry_run_migration",
    "generate_corpus",
    "generate_transcripts",
    "performance_test_migration",
    "test_end_to_end_migration",
    "test_schema_compatibility",
]

__getattr__, __dir__ = lazy_face(__name__)

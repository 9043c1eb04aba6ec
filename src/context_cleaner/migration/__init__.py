"""The migration pipeline: transcripts into the database, kept in sync, validated, rolled back.

Its public names (``HistoricalDataMigrator``, ``MIGRATION_ALERTS``, the result
types of :mod:`.models`) are exported by the package face, :mod:`context_cleaner`;
the rest is imported from its module (``validator``, ``rollback``, ``status`` ...).
"""

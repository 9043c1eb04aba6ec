"""context_cleaner: exact Claude Code token and cost accounting, migrated into ClickHouse."""

__version__ = "0.1.0"

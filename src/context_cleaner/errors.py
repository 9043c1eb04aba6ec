"""The exception tree every layer shares (the layers add their own leaves).

::

    ContextCleanerError                 root: everything this package raises on purpose
    └── MigrationError                  the spec's root for pipeline failures
        ├── TransientError              worth retrying (Prefect retries only these)
        │   └── (bridge) DatabaseUnavailableError, DatabaseLockedError ...
        └── TerminalError               retrying cannot help; a person must act
            ├── ConfigurationError      bad flag, URL, timezone or price file
            ├── SourceNotFoundError     no transcript root exists
            ├── FileAccessError         a transcript cannot be read
            ├── AnalysisError           the analysis itself failed
            ├── ValidationError         migrated data disagrees with the source
            │   └── MigrationValidationError  a migration's own check failed (report attached)
            └── ResourceError           out of memory or disk

Each message names what is involved (file, line, session, migration id) and the
next step. Surfaces (CLI, dashboard, flows) turn these into one-line messages.
"""

from __future__ import annotations


class ContextCleanerError(Exception):
    """Root of every error this package raises on purpose."""


class MigrationError(ContextCleanerError):
    """Root of pipeline failures (the spec's ``MigrationError``)."""


class TransientError(MigrationError):
    """A failure that may pass by itself: retrying is sensible."""


class TerminalError(MigrationError):
    """A failure that retrying cannot fix."""


class ConfigurationError(TerminalError):
    """A flag, URL, timezone or override file is invalid."""


class SourceNotFoundError(TerminalError):
    """None of the transcript roots exists."""


class FileAccessError(TerminalError):
    """A transcript file or folder cannot be read."""


class AnalysisError(TerminalError):
    """The token analysis failed."""


class ValidationError(TerminalError):
    """Migrated data does not match the source analysis."""


class MigrationValidationError(ValidationError):
    """A migration's own validation failed beyond its tolerance (the spec raises it under
    both names: ``except ValidationError`` and ``except MigrationValidationError`` catch it).

    The migration's data is committed; ``result`` is the run's result (a
    ``HistoricalMigrationResult``) and ``report`` its validation report (a dict), so a
    caller can print them as the command line does.
    """

    def __init__(self, message: str, *, result: object = None, report: object = None) -> None:
        super().__init__(message)
        self.result = result
        self.report = report


class ResourceError(TerminalError):
    """Not enough memory or disk for the operation."""


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` may succeed."""
    return isinstance(exc, TransientError)

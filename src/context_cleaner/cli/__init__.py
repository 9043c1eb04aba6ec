"""``context-cleaner``, the command line: one module per command group, the options
they share declared once in :mod:`context_cleaner.cli.common`."""

from context_cleaner.cli.main import build_parser, main, run

__all__ = ["build_parser", "main", "run"]

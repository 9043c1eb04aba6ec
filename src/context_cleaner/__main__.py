"""``python -m context_cleaner`` = ``context-cleaner``."""

from context_cleaner.cli import run

run()

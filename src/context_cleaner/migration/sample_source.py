"""What ``context-cleaner run`` migrates: your transcripts, else the bundled sample."""

from __future__ import annotations

from pathlib import Path

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.errors import SourceNotFoundError
from context_cleaner.settings import Settings

SAMPLE_DIR = Path(__file__).parent.parent / "sample"
"""The bundled sample (a Claude config folder): a few real transcripts, anonymised."""


def has_transcripts(settings: Settings) -> bool:
    """True when the settings name folders, or a default folder holds a transcript.

    Default folders that exist but hold no transcript (Claude Code installed, never used)
    count as none; folders the user named are taken as they are.
    """
    named = settings.sources
    try:
        roots = resolve_roots(named)
        return bool(named) or bool(discover(roots).files)
    except SourceNotFoundError:
        return False


def sample_settings(settings: Settings) -> Settings:
    """``settings`` pointed at the bundled sample, into its own database unless one is named
    (so the sample never mixes with real usage)."""
    url = (
        settings.clickhouse_url
        or f"chdb://{Path.home() / '.context_cleaner' / 'sample-clickhouse'}"
    )
    return settings.replace(source_dirs=(str(SAMPLE_DIR / "projects"),), clickhouse_url=url)

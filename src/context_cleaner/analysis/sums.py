"""Running sums of usage records: one base for every sum the analysis keeps.

:class:`RunningSum` holds what each running sum keeps (the five token counts, how many
records, the time they span), adds one record (:meth:`~RunningSum.add_record`, written
once: it runs once per record, so it calls nothing) and adds one sum to another. The
every-line sum (``dedup.UsageCollector.raw``) is one; a breakdown's parts
(``counter``) and a report's cells and rows (``periods``) add their own fields (a cost
or the costs, models, a project).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from context_cleaner.analysis.records import TokenCounts

if TYPE_CHECKING:
    from context_cleaner.analysis.records import UsageRecord


@dataclass(slots=True)
class RunningSum(TokenCounts):
    """Tokens and records summed, and the time they span (a subclass's own fields follow
    these)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_tokens: int = 0
    entries: int = 0
    """Records summed."""
    first_ms: int = 0
    """Time of the earliest record, ms since the epoch (0 while there is none)."""
    last_ms: int = 0
    """Time of the latest record, ms since the epoch (0 while there is none)."""

    def add_record(self, r: UsageRecord) -> None:
        """Add one record (its cost, where a sum keeps one, is the caller's to add)."""
        if not self.entries or r.timestamp_ms < self.first_ms:
            self.first_ms = r.timestamp_ms
        if not self.entries or r.timestamp_ms > self.last_ms:
            self.last_ms = r.timestamp_ms
        self.entries += 1
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cache_creation_5m_tokens += r.cache_creation_5m_tokens
        self.cache_creation_1h_tokens += r.cache_creation_1h_tokens
        self.cache_read_tokens += r.cache_read_tokens

    def add_sum(self, other: RunningSum) -> None:
        """Add ``other``'s tokens, records and time span to these."""
        if other.entries:
            if not self.entries or other.first_ms < self.first_ms:
                self.first_ms = other.first_ms
            if not self.entries or other.last_ms > self.last_ms:
                self.last_ms = other.last_ms
        self.entries += other.entries
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_5m_tokens += other.cache_creation_5m_tokens
        self.cache_creation_1h_tokens += other.cache_creation_1h_tokens
        self.cache_read_tokens += other.cache_read_tokens

"""What reading and committing transcript files counts: one batch's counts and a run's.

A run's counts are the sum of its batches' counts, so both are one type
(:class:`BatchCounts`): ``models.BatchProcessingResult`` (a batch) and
``pipeline.RunState`` (a run) build on it, and :meth:`BatchCounts.add_counts` adds a
batch's counts into the run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

#: Skipped lines kept as examples per batch and per run (their counts are always complete).
SKIPPED_EXAMPLES = 20


def add_net(into: dict[str, float], change: dict[str, float]) -> None:
    """Add one net change to another (token counts and records stay integers)."""
    for key, value in change.items():
        into[key] = into.get(key, 0) + value


@dataclass(kw_only=True, slots=True)
class BatchCounts:
    """Counts of reading and committing files (keyword fields: a subclass's own come first)."""

    files_failed: int = 0
    bytes_read: int = 0
    lines_read: int = 0
    records_inserted: int = 0
    """Records sent to the database (read); see ``net`` for what they changed."""
    tokens_in_records: int = 0
    skipped_lines: int = 0
    analysis_seconds: float = 0.0
    insert_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    net: dict[str, float] = field(default_factory=dict)
    """The change of the database's counted totals the commits made (token keys,
    ``cost_usd``, ``records``): 0 for responses it already held (see ``commits.NET_KEYS``)."""
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    """A few skipped lines (at most :data:`SKIPPED_EXAMPLES`):
    ``file:line (byte offset): reason detail``."""

    def add_counts(self, other: BatchCounts) -> None:
        """Add ``other``'s counts to these (a committed batch's to its run's)."""
        for name in _NUMBERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors
        add_net(self.net, other.net)
        for reason, count in other.skipped_by_reason.items():
            self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + count
        room = SKIPPED_EXAMPLES - len(self.skipped_examples)
        if room > 0:
            self.skipped_examples += other.skipped_examples[:room]


_NUMBERS = tuple(f.name for f in fields(BatchCounts) if f.type in ("int", "float"))
"""The counters :meth:`BatchCounts.add_counts` sums (every int and float field)."""

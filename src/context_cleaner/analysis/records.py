"""The record types of the analysis layer.

``UsageRecord`` is the compact hot-path type: one per line that carries a usage
object, holding only what counting needs (never message content, DESIGN §3 rule 8).
``SkippedLine`` says why a line was not counted. Both are msgspec Structs so
that millions of them stay cheap to build, compare and pass between processes.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

#: Bit layout of ``UsageRecord.version`` (DESIGN §3 rule 3, most significant first):
#: non-sidechain (1) | total tokens (64) | has speed (1) | inverted timestamp ms (64)
#: | inverted path hash (64) | inverted byte offset (61). The larger version wins,
#: both here and in ClickHouse (``ReplacingMergeTree(ver)`` with a UInt256 ``ver``).
_U64 = (1 << 64) - 1
_U61 = (1 << 61) - 1


def path_hash(relative_path: str) -> int:
    """A stable 64-bit hash of a transcript path relative to its root.

    Used as the file-path tie-break of rule 3: a fixed-width number can be packed
    into the database's version column, a path string cannot.
    """
    return int.from_bytes(hashlib.blake2b(relative_path.encode(), digest_size=8).digest(), "big")


def record_version(
    is_sidechain: bool,
    total_tokens: int,
    has_speed: bool,
    timestamp_ms: int,
    path_hash_value: int,
    byte_offset: int,
) -> int:
    """Encode rule 3's preference order as one unsigned 256-bit integer.

    Runs once per record the run's process commits: the top 66 bits are built as a small
    integer and shifted once, the clamps are comparisons (half the time of ``min``/``max``
    calls on the wide integer).
    """
    if not 0 <= timestamp_ms <= _U64:
        timestamp_ms = 0 if timestamp_ms < 0 else _U64
    return (
        (
            (0 if is_sidechain else 1 << 65)
            | ((total_tokens if total_tokens < _U64 else _U64) << 1)
            | (1 if has_speed else 0)
        )
        << 190
        | ((_U64 - timestamp_ms) << 126)
        | ((_U64 - path_hash_value) << 61)
        | (_U61 - (byte_offset if byte_offset < _U61 else _U61))
    )


class TokenCounts:
    """What the five token counts of a record or a sum of records give: the cache writes
    of both lifetimes together, and the total (a mixin: its class holds the counts)."""

    __slots__ = ()

    if TYPE_CHECKING:
        input_tokens: int
        output_tokens: int
        cache_creation_5m_tokens: int
        cache_creation_1h_tokens: int
        cache_read_tokens: int

    @property
    def cache_creation_tokens(self) -> int:
        return self.cache_creation_5m_tokens + self.cache_creation_1h_tokens

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_5m_tokens
            + self.cache_creation_1h_tokens
            + self.cache_read_tokens
        )


class UsageRecord(msgspec.Struct, TokenCounts, frozen=True, array_like=True, gc=False):
    """One usage record: a line's ``message.usage`` with where it came from."""

    message_id: str
    """``message.id``; empty when the line has none (then it is never de-duplicated)."""
    request_id: str
    """``requestId`` or ``""``."""
    session_id: str
    """The file's session: ``<project>/<session>.jsonl`` stem, or the folder of a subagent file."""
    line_session_id: str
    """The line's own ``sessionId`` (may differ from the file's session for subagents)."""
    project: str
    """The encoded project folder name below the root."""
    file_path: str
    """Path relative to its root, ``/``-separated."""
    line_number: int
    """1-based line number in the file."""
    byte_offset: int
    """Offset of the line's first byte in the file."""
    timestamp_ms: int
    """Milliseconds since the epoch, UTC."""
    model: str
    is_sidechain: bool
    speed: str
    """``message.usage.speed`` (``"standard"``, ``"fast"``) or ``""`` when absent."""
    from_progress: bool
    """The usage was embedded in a ``progress`` line (``data.message.message.usage``)."""
    input_tokens: int
    output_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    cache_read_tokens: int
    cost_usd: float | None
    """``costUSD`` when the line carries it; ``None`` means price it from the table."""

    @property
    def has_speed(self) -> bool:
        return bool(self.speed)

    @property
    def version(self) -> int:
        """Rule 3 as a number: of two records with one key, the larger version is kept."""
        return record_version(
            self.is_sidechain,
            self.total_tokens,
            self.has_speed,
            self.timestamp_ms,
            path_hash(self.file_path),
            self.byte_offset,
        )


class SkippedLine(msgspec.Struct, frozen=True):
    """A line that could carry usage but was not counted, and why."""

    file_path: str
    line_number: int
    byte_offset: int
    reason: str
    detail: str = ""

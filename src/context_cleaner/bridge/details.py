"""Usage records into ``enhanced_token_details``: column-oriented batches (DESIGN §3, §4).

Each :class:`~context_cleaner.analysis.records.UsageRecord` becomes one row keyed
by rule 2's ``(message_id, request_id)`` with rule 3's version in ``ver``; the
table's ``ReplacingMergeTree(ver)`` keeps the preferred duplicate, so inserting
the same records twice, or in any order, leaves the same table under ``FINAL``.

A record without ``message.id`` is stored under the synthetic id
``nomsgid:<16 hex digits of path_hash(file_path)>:<byte_offset>``: unique per
line (it never collapses with another line, rule 2), deterministic (a replayed
byte range lands on the same key). Real ids (``msg_...``) never start with it.

Rows are sent column by column with timestamps as integer milliseconds (the
driver writes them as raw ``DateTime64(3)`` ticks): measured ~2x faster than
``datetime`` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.extract import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS
from context_cleaner.analysis.fields import STORED_TOKEN_FIELDS
from context_cleaner.analysis.records import UsageRecord, path_hash, record_version
from context_cleaner.bridge.exceptions import DatabaseQueryError
from context_cleaner.bridge.host import default_host, default_user
from context_cleaner.bridge.queries import UNIQUE_KEYS_INSERT, insert_rows

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

DETAILS_TABLE = "enhanced_token_details"
COUNTED_VIEW = "counted_token_details"
"""The counted records (rule 3 by FINAL, then rule 4): read usage from here (sql/004)."""
SYNTHETIC_ID_PREFIX = "nomsgid:"
DEFAULT_BATCH_SIZE = 50_000

DETAIL_COLUMNS: tuple[str, ...] = (
    "message_id",
    "request_id",
    "ver",
    "session_id",
    "line_session_id",
    "project",
    "file_path",
    "line_number",
    "byte_offset",
    "timestamp",
    "model",
    "is_sidechain",
    "speed",
    "from_progress",
    *STORED_TOKEN_FIELDS,
    "cost_usd",
    "cost_from_line",
    "host",
    "user",
    "migration_id",
)
"""The columns :func:`detail_columns` fills, in order (``inserted_at`` is the server's)."""

Pricer = Callable[[UsageRecord], float]
"""Prices a record that has no ``costUSD`` of its own (the analysis layer's price table)."""


def synthetic_message_id(file_path: str, byte_offset: int) -> str:
    """The stored id of a line without ``message.id``."""
    return f"{SYNTHETIC_ID_PREFIX}{path_hash(file_path):016x}:{byte_offset}"


def storage_message_id(record: UsageRecord) -> str:
    """``record.message_id``, or its synthetic id when it has none."""
    return record.message_id or synthetic_message_id(record.file_path, record.byte_offset)


def detail_columns(
    records: Sequence[UsageRecord],
    *,
    price: Pricer,
    migration_id: str,
    host: str,
    user: str,
) -> list[list[Any]]:
    """The column-oriented block for ``records``, in :data:`DETAIL_COLUMNS` order."""
    n = len(records)
    hashes: dict[str, int] = {}
    message_ids: list[str] = []
    versions: list[int] = []
    costs: list[float] = []
    from_line: list[bool] = []
    for r in records:
        if not MIN_TIMESTAMP_MS <= r.timestamp_ms <= MAX_TIMESTAMP_MS:
            # The analysis skips such lines (``timestamp_out_of_range``); a record that got
            # here anyway would land on a wrapped-around day in the rollups.
            raise DatabaseQueryError(
                f"{r.file_path} line {r.line_number}: timestamp {r.timestamp_ms} ms is outside "
                "the days the database can hold (1970-01-01 .. 2149-06-06 UTC); the line "
                "should have been skipped as timestamp_out_of_range: report this as a bug"
            )
        h = hashes.get(r.file_path)
        if h is None:
            h = hashes[r.file_path] = path_hash(r.file_path)
        message_ids.append(r.message_id or f"{SYNTHETIC_ID_PREFIX}{h:016x}:{r.byte_offset}")
        versions.append(
            record_version(
                r.is_sidechain, r.total_tokens, bool(r.speed), r.timestamp_ms, h, r.byte_offset
            )
        )
        if r.cost_usd is None:
            costs.append(float(price(r)))
            from_line.append(False)
        else:
            costs.append(float(r.cost_usd))
            from_line.append(True)
    return [
        message_ids,
        [r.request_id for r in records],
        versions,
        [r.session_id for r in records],
        [r.line_session_id for r in records],
        [r.project for r in records],
        [r.file_path for r in records],
        [r.line_number for r in records],
        [r.byte_offset for r in records],
        [r.timestamp_ms for r in records],
        [r.model for r in records],
        [r.is_sidechain for r in records],
        [r.speed for r in records],
        [r.from_progress for r in records],
        [r.input_tokens for r in records],
        [r.output_tokens for r in records],
        [r.cache_creation_5m_tokens for r in records],
        [r.cache_creation_1h_tokens for r in records],
        [r.cache_read_tokens for r in records],
        costs,
        from_line,
        [host] * n,
        [user] * n,
        [migration_id] * n,
    ]


def _batches(records: Iterable[UsageRecord], size: int) -> Iterator[list[UsageRecord]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


def insert_details(
    client: Client,
    records: Iterable[UsageRecord],
    *,
    price: Pricer,
    migration_id: str,
    host: str | None = None,
    user: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    table: str = DETAILS_TABLE,
) -> int:
    """Insert ``records`` in batches of ``batch_size``; returns the number of rows sent.

    Safe to repeat: rows with the same key collapse to the preferred one under ``FINAL``.
    """
    host = default_host() if host is None else host
    user = default_user() if user is None else user
    sent = 0
    for batch in _batches(records, max(1, batch_size)):
        columns = detail_columns(
            batch, price=price, migration_id=migration_id, host=host, user=user
        )
        action = f"inserting {len(batch)} rows into {table} (migration {migration_id})"
        insert_rows(
            client,
            table,
            columns,
            DETAIL_COLUMNS,
            action=action,
            column_oriented=True,
            settings=UNIQUE_KEYS_INSERT,
        )
        sent += len(batch)
    return sent

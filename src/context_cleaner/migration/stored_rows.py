"""The database side of validation: the stored usage rows, read as validation compares them.

A row is read under ``FINAL`` (rule 3 already applied by the engine) with whether rule 4
counts it (a sidechain row whose message id has a main-chain row is not counted), keyed
by rule 2's ``(message_id, request_id)``. Which rows are read depends on the validation:
every row (``validate``: what is not on disk is retained history), or the rows of the
keys of some files (a run's own validation, when its checksums differ).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from context_cleaner.analysis.fields import STORED_TOKEN_FIELDS
from context_cleaner.bridge import DETAILS_TABLE, query_rows
from context_cleaner.bridge.queries import bound_set

if TYPE_CHECKING:
    from context_cleaner.bridge import EnhancedTokenDatabaseBridge

Key = tuple[str, str]
"""Rule 2's key as stored: ``(message_id or its synthetic id, request_id)``."""


class StoredRow(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One row of ``enhanced_token_details`` under ``FINAL``, and whether rule 4 counts it."""

    ver: int
    file_path: str
    byte_offset: int
    session_id: str
    host: str
    timestamp_ms: int
    tokens: tuple[int, int, int, int, int]
    cost_usd: float
    is_sidechain: bool
    counted: bool

    @property
    def total(self) -> int:
        return sum(self.tokens)


_ROW_COLUMNS = (
    "message_id, request_id, ver, file_path, byte_offset, session_id, host, "
    f"toUnixTimestamp64Milli(timestamp), {', '.join(STORED_TOKEN_FIELDS)}, cost_usd, is_sidechain"
)
_REPLAY_IDS = (
    f"(SELECT message_id FROM {DETAILS_TABLE} WHERE NOT is_sidechain AND message_id IN "
    f"(SELECT message_id FROM {DETAILS_TABLE} WHERE is_sidechain))"
)
ALL_ROWS = (
    f"SELECT {_ROW_COLUMNS}, NOT (is_sidechain AND message_id IN {_REPLAY_IDS}) "
    f"FROM {DETAILS_TABLE} FINAL"
)
"""Every stored row (FINAL) and whether rule 4 counts it."""
ROWS_OF_FILES = (
    f"{ALL_ROWS} WHERE message_id IN (SELECT message_id FROM {DETAILS_TABLE} "
    f"WHERE file_path IN {bound_set('paths')})"
)
"""The rows whose keys have a copy in some files (selected by the sorting key, so that
FINAL sees every version of a key before it picks one; see bridge/summaries.py)."""
ROWS_OF_IDS = f"{ALL_ROWS} WHERE message_id IN {bound_set('ids')}"
"""The rows of some message ids."""


def stored_rows(rows: Iterable[Sequence[Any]]) -> dict[Key, StoredRow]:
    """The rows of one of the queries above, by key."""
    return {
        (r[0], r[1]): StoredRow(
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            (r[8], r[9], r[10], r[11], r[12]),
            r[13],
            bool(r[14]),
            bool(r[15]),
        )
        for r in rows
    }


def query_stored(
    bridge: EnhancedTokenDatabaseBridge, sql: str, params: dict[str, Any]
) -> dict[Key, StoredRow]:
    """The rows ``sql`` (one of the queries above) selects, by key."""
    with bridge.database.session() as client:
        return stored_rows(query_rows(client, sql, params))

"""The 15-minute rollup reports read, recomputed for the sessions a batch touched.

Kept exactly like the (session, day, model) rollup of :mod:`~.summaries`, inside the same
unit of work and from the same selection (message ids first so ``FINAL`` sees every
version of a key, sessions widened to those sharing a message id, rule 4 over them):
a crash before it leaves the files' offsets uncommitted, so the next run writes the rows
and this rollup again. One row per (session, UTC 15-minute bucket, model, project, host,
edge): every UTC offset in use is a multiple of 15 minutes, so a row never spans a local
midnight, and ``edge`` keeps the records exactly at a bucket's start (they close the
previous hour, see ``periods.hour_bucket``) apart, so a row never spans a block's hour.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.exceptions import translate_clickhouse_error
from context_cleaner.bridge.queries import query_rows
from context_cleaner.bridge.summaries import DETAILS, NOT_A_REPLAY, TOKEN_SUMS

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

BUCKETS = "enhanced_token_buckets"
BUCKET_MS = 900_000

_SESSION_IDS = f"(SELECT message_id FROM {DETAILS} WHERE session_id IN {{sessions:Array(String)}})"
_WIDEN = f"SELECT DISTINCT session_id FROM {DETAILS} WHERE message_id IN {_SESSION_IDS}"

_RECOMPUTE = f"""
SELECT session_id,
       toDateTime(intDiv(toUnixTimestamp64Milli(timestamp), {BUCKET_MS}) * 900, 'UTC') AS bucket,
       model, project, host,
       toUInt8(toUnixTimestamp64Milli(timestamp) % {BUCKET_MS} = 0) AS edge,
       {TOKEN_SUMS}, min(timestamp) AS first_timestamp, max(timestamp) AS last_timestamp
FROM (
    SELECT * FROM {DETAILS} FINAL
    WHERE message_id IN {_SESSION_IDS}
)
WHERE session_id IN {{sessions:Array(String)}} AND {NOT_A_REPLAY}
GROUP BY session_id, bucket, model, project, host, edge
"""

_EXISTING = (
    "SELECT session_id, bucket, model, project, host, edge "
    f"FROM {BUCKETS} FINAL WHERE session_id IN {{sessions:Array(String)}} AND is_deleted = 0"
)

BUCKET_COLUMNS = (
    "session_id",
    "bucket",
    "model",
    "project",
    "host",
    "edge",
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "cost_usd",
    "record_count",
    "first_timestamp",
    "last_timestamp",
    "migration_id",
    "ver",
    "is_deleted",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The rollup's totals, in the order of ``token_bridge.totals_dict``.
TOTALS_SQL = (
    "SELECT sum(input_tokens), sum(output_tokens), sum(cache_creation_5m_tokens), "
    "sum(cache_creation_1h_tokens), sum(cache_read_tokens), sum(cost_usd), sum(record_count) "
    f"FROM {BUCKETS} FINAL WHERE is_deleted = 0"
)


def refresh_buckets(client: Client, sessions: Collection[str], migration_id: str) -> int:
    """Recompute the rollup of ``sessions`` and of every session sharing a message id with them.

    Returns how many sessions were recomputed. Safe to repeat.
    """
    if not sessions:
        return 0
    params: dict[str, Any] = {"sessions": sorted(sessions)}
    widened = sorted(
        {
            r[0]
            for r in query_rows(
                client, _WIDEN, params, action="finding sessions that share messages"
            )
        }
        | set(sessions)
    )
    params = {"sessions": widened}
    fresh = query_rows(client, _RECOMPUTE, params, action="recomputing the 15-minute rollup")
    existing = query_rows(client, _EXISTING, params, action="reading the 15-minute rollup")
    ver = time.time_ns()
    rows: list[list[Any]] = [[*row, migration_id, ver, 0] for row in fresh]
    fresh_keys = {tuple(r[:6]) for r in fresh}
    for key in existing:
        if tuple(key) not in fresh_keys:
            rows.append([*key, 0, 0, 0, 0, 0, 0.0, 0, _EPOCH, _EPOCH, migration_id, ver, 1])
    if rows:
        try:
            client.insert(BUCKETS, rows, column_names=BUCKET_COLUMNS)
        except Exception as exc:
            raise translate_clickhouse_error(
                exc, action=f"writing {len(rows)} rollup rows (migration {migration_id})"
            ) from exc
    return len(widened)


def checked_totals(summary_totals: dict[str, Any], bucket_rows: list[tuple]) -> dict[str, Any]:
    """The rollups' totals for validation: ``summary_totals`` when this rollup's sums
    (``bucket_rows``: :data:`TOTALS_SQL`'s row) equal them, else this rollup's, so that a
    divergence of either rollup from the usage rows fails the summaries check."""
    inp, out, c5, c1, read = (int(v or 0) for v in bucket_rows[0][:5])
    cost, count = float(bucket_rows[0][5] or 0), int(bucket_rows[0][6] or 0)
    mine = {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_tokens": c5 + c1,
        "cache_read_tokens": read,
    }
    if all(mine[k] == summary_totals[k] for k in mine) and count == summary_totals["records"]:
        return summary_totals
    return {
        **summary_totals,
        **mine,
        "total_tokens": inp + out + c5 + c1 + read,
        "cost_usd": round(cost, 10),
        "cache_creation_5m_tokens": c5,
        "cache_creation_1h_tokens": c1,
        "records": count,
    }

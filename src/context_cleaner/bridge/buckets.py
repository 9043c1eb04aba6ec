"""The 15-minute rollup reports read, recomputed for the sessions a batch touched.

Kept exactly like the (session, day, model) rollup of :mod:`~.summaries`, inside the same
unit of work, for the same widened sessions and from the same selection (message ids
first so ``FINAL`` sees every version of a key, rule 4 over them): a crash before it
leaves the files' offsets uncommitted, so the next run writes the rows and this rollup
again. One row per (session, UTC 15-minute bucket, model, project, host,
edge): every UTC offset in use is a multiple of 15 minutes, so a row never spans a local
midnight, and ``edge`` keeps the records exactly at a bucket's start (they close the
previous hour, see ``periods.hour_bucket``) apart, so a row never spans a block's hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.fields import STORED_TOKEN_FIELDS
from context_cleaner.bridge.details import COUNTED_VIEW
from context_cleaner.bridge.queries import StringSet, Where, query_columns, query_rows
from context_cleaner.bridge.schema import load_schema_files
from context_cleaner.bridge.summaries import (
    DETAILS,
    NOT_A_REPLAY,
    SESSION_IDS,
    SESSION_SET,
    SUMMARIES,
    TOKEN_SUMS,
    live_totals_sql,
    write_rollup,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

BUCKETS = "enhanced_token_buckets"
BUCKET_MS = 900_000

#: The rollup rows of the sessions, each followed by the first and last UTC day of its records
#: (``toDate``: exact up to 2149-06-06, where ``bucket``, a ``DateTime``, stops at 2106-02-07
#: 06:28:15), which :func:`summary_rows` needs and :func:`refresh_buckets` drops. Buckets,
#: days and times are numbers (seconds, days, milliseconds since 1970), as the rows are
#: inserted again: no date or datetime object is made for them.
_RECOMPUTE = f"""
SELECT session_id,
       toUInt32(toDateTime(intDiv(toUnixTimestamp64Milli(timestamp), {BUCKET_MS}) * 900, 'UTC'))
           AS bucket,
       model, project, host,
       toUInt8(toUnixTimestamp64Milli(timestamp) % {BUCKET_MS} = 0) AS edge,
       {TOKEN_SUMS},
       toUnixTimestamp64Milli(min(timestamp)) AS first_timestamp,
       toUnixTimestamp64Milli(max(timestamp)) AS last_timestamp,
       toUInt16(min(toDate(timestamp))) AS first_day, toUInt16(max(toDate(timestamp))) AS last_day
FROM (
    SELECT * FROM {DETAILS} FINAL
    WHERE message_id IN {SESSION_IDS}
)
WHERE session_id IN {SESSION_SET} AND {NOT_A_REPLAY}
GROUP BY session_id, bucket, model, project, host, edge
"""

_EXISTING = (
    "SELECT session_id, toUInt32(bucket), model, project, host, edge "
    f"FROM {BUCKETS} FINAL WHERE session_id IN {SESSION_SET} AND is_deleted = 0"
)

BUCKET_COLUMNS = (
    *("session_id", "bucket", "model", "project", "host", "edge"),
    *STORED_TOKEN_FIELDS,
    *("cost_usd", "record_count", "first_timestamp", "last_timestamp"),
    *("migration_id", "ver", "is_deleted"),
)

_DELETED = (*(0 for _ in STORED_TOKEN_FIELDS), 0.0, 0, 0, 0)
"""A bucket's sums and times once it lost all its records."""

#: The rollup's totals, in the order of ``token_bridge.totals_dict``.
TOTALS_SQL = live_totals_sql(BUCKETS)


def backfill_sql() -> str:
    """The statement filling the rollup from the counted records, as an upgrade does (the
    last of ``sql/006``): for a rollback to a snapshot taken before the rollup existed."""
    (schema,) = [f for f in load_schema_files() if f.name.startswith("006")]
    return schema.statements[-1]


_DAYS = 2
"""The day columns :data:`_RECOMPUTE` has after a rollup row's."""


def recompute_buckets(client: Client, widened: Sequence[str]) -> list[Sequence[Any]]:
    """The rollup rows of ``widened`` as the counted records make them now, each followed by
    the first and last UTC day of its records (for :func:`summary_rows`), as columns (no
    row: no column). They are inserted again as columns: a tuple and a list a row cost
    ~10 MB and ~0.1 s of CPU for a commit unit's 20,000 rows."""
    if not widened:
        return []
    params: dict[str, Any] = {"sessions": StringSet(widened)}
    action = "recomputing the 15-minute rollup"
    return list(query_columns(client, _RECOMPUTE, params, action=action))


_SUMS = len(STORED_TOKEN_FIELDS) + 2
"""The summed columns of a rollup row: the token kinds, cost, record count."""


def summary_rows(fresh: Sequence[Sequence[Any]]) -> list[list[Any]] | None:
    """The (session, day, model) rollup's recomputed rows made from this rollup's
    (:func:`recompute_buckets`' columns), as ``summaries._RECOMPUTE``'s columns: a bucket
    lies in one UTC day, so the day's sums are its buckets' sums. One selection of the
    usage rows serves both rollups (each cost ~14 µs of the engine's time per session).
    None when a row holds records of two days (every record after 2106-02-07 06:28 is in
    its last bucket)."""
    days: dict[tuple[Any, ...], list[Any]] = {}
    first = 6 + _SUMS
    for r in zip(*fresh, strict=True):
        if r[-2] != r[-1]:
            return None
        key = (r[0], r[-2], r[2])
        row = days.get(key)
        if row is None:
            days[key] = [*key, r[3], r[4], *r[6:first], r[first], r[first + 1]]
            continue
        for i in range(_SUMS):
            row[5 + i] += r[6 + i]
        row[5 + _SUMS] = min(row[5 + _SUMS], r[first])
        row[6 + _SUMS] = max(row[6 + _SUMS], r[first + 1])
    return [list(column) for column in zip(*days.values(), strict=True)]


def refresh_buckets(
    client: Client,
    widened: Sequence[str],
    migration_id: str,
    *,
    fresh: Sequence[Sequence[Any]] | None = None,
) -> int:
    """Recompute the rollup of ``widened`` (``summaries.widen_sessions``' sessions);
    ``fresh``: :func:`recompute_buckets`' columns when the caller has them.

    Returns how many sessions were recomputed. Safe to repeat.
    """
    if not widened:
        return 0
    params: dict[str, Any] = {"sessions": StringSet(widened)}
    if fresh is None:
        fresh = recompute_buckets(client, widened)
    existing = query_rows(client, _EXISTING, params, action="reading the 15-minute rollup")
    fresh_keys = set(zip(*fresh[:6], strict=True))
    gone = [key for key in existing if tuple(key) not in fresh_keys]
    write_rollup(client, BUCKETS, BUCKET_COLUMNS, fresh, gone, _DELETED, migration_id)
    return len(widened)


_COUNTED_SUMS = f"sum(total_tokens), sum(cost_usd), count() FROM {COUNTED_VIEW}"
_ROLLED_SUMS = (
    f"sum({' + '.join(STORED_TOKEN_FIELDS)}), sum(cost_usd), sum(record_count) "
    "FROM {table} FINAL WHERE is_deleted = 0"
)
#: Each rollup's key and the same key computed from a counted record (the check below
#: and the rebuild, ``rebuild.py``, group by them).
ROLLUP_KEYS = {
    SUMMARIES: ("session_id, day, model", "session_id, toDate(timestamp) AS day, model"),
    BUCKETS: (
        "session_id, bucket, model, project, host, edge",
        "session_id, "
        f"toDateTime(intDiv(toUnixTimestamp64Milli(timestamp), {BUCKET_MS}) * 900, 'UTC') "
        f"AS bucket, model, project, host, "
        f"toUInt8(toUnixTimestamp64Milli(timestamp) % {BUCKET_MS} = 0) AS edge",
    ),
}


def rollup_differences(client: Client) -> dict[str, list[tuple]]:
    """Per rollup table, the groups whose tokens, cost (to 1e-6 USD) or record count differ
    from the counted records' (a full scan: for tests and diagnosis, not every validation)."""
    found: dict[str, list[tuple]] = {}
    for table, (key, computed) in ROLLUP_KEYS.items():
        counted = {
            tuple(r[:-3]): r[-3:]
            for r in query_rows(client, f"SELECT {computed}, {_COUNTED_SUMS} GROUP BY {key}")
        }
        rolled = {
            tuple(r[:-3]): r[-3:]
            for r in query_rows(
                client, f"SELECT {key}, {_ROLLED_SUMS.format(table=table)} GROUP BY {key}"
            )
        }
        found[table] = [
            (*k, counted.get(k), rolled.get(k))
            for k in sorted(counted.keys() | rolled.keys(), key=repr)
            if not _same(counted.get(k), rolled.get(k))
        ]
    return found


def _same(a: tuple | None, b: tuple | None) -> bool:
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and a[2] == b[2] and abs(float(a[1]) - float(b[1])) < 1e-6


def final_buckets(start: date | None, end: date | None) -> tuple[str, dict[str, Any]]:
    """The rollup (``FINAL``) as a FROM clause, only its quarter hours that can hold the
    days ``start`` to ``end`` (inclusive, either may be open) of any zone: a day of any
    zone lies within a day either side of the same UTC date. ``bucket`` is part of the
    rollup's key, so the condition may act before ``FINAL`` (every version of a row has
    it) and only the rows of those days are merged."""
    where = Where()
    where.add(
        "bucket >= toDateTime({bucket_from:Date32}, 'UTC')",
        "bucket_from",
        start and start - timedelta(days=1),
    )
    where.add(
        "bucket < toDateTime({bucket_to:Date32}, 'UTC')",
        "bucket_to",
        end and end + timedelta(days=2),
    )
    prewhere = f" PREWHERE {where.sql()}" if where.clauses else ""
    return f"{BUCKETS} FINAL{prewhere}", where.params

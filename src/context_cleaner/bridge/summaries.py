"""The per-(session, day, model) rollup, recomputed for the sessions a batch touched.

Exactness rests on two facts. First, rows are selected by message id (the
sorting key), so ``FINAL`` sees every version of each key before it picks one;
filtering by session first could hide the newer version of a key that moved
to another session. Second, a batch's sessions are widened to every session
that shares a message id with them: a better duplicate arriving in session B
takes the record away from session A (rule 3), and a main-chain copy of a
message drops its sidechain replay wherever it is (rule 4), so A must be
recomputed too. Groups that lost all their records get a tombstone.

A is found before the rows are inserted (:func:`sessions_holding`), not only after:
once B's version of a key is in, a background merge may drop A's at any moment, and
then no row is left to tell that A held it; A's rollup rows would go on counting the
record (a Prefect run with small batches merged between a unit's insert and refresh).
Every rollup of a unit is recomputed from the one widened set (:func:`widen_sessions`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.fields import STORED_TOKEN_FIELDS
from context_cleaner.bridge.details import DETAILS_TABLE as DETAILS
from context_cleaner.bridge.queries import (
    UNIQUE_KEYS_INSERT,
    StringSet,
    bound_set,
    in_parts,
    insert_rows,
    query_columns,
    query_rows,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SUMMARIES = "enhanced_token_summaries"

SESSION_SET = bound_set("sessions")
"""The sessions being recomputed (a :class:`~.queries.StringSet` parameter ``sessions``)."""

SESSION_IDS = f"(SELECT message_id FROM {DETAILS} WHERE session_id IN {SESSION_SET})"
"""The message ids of the sessions being recomputed."""

#: Rule 4 over those sessions' rows: drop sidechain rows whose message id has a main-chain
#: row. Only those ids can matter, so the set of main-chain ids is restricted to them (a
#: lookup by the sorting key): 0.4 s instead of 2.1-3.0 s for one session among 10M rows,
#: where the set of every main-chain id in the table was built for each refresh.
NOT_A_REPLAY = (
    "NOT (is_sidechain AND message_id IN "
    f"(SELECT message_id FROM {DETAILS} WHERE NOT is_sidechain AND message_id IN {SESSION_IDS}))"
)

_SUMS = ", ".join(f"sum({name}) AS {name}" for name in (*STORED_TOKEN_FIELDS, "cost_usd"))
TOKEN_SUMS = f"{_SUMS}, count() AS record_count"
"""The counted rows' sums, in :data:`CHANGE_KEYS` order."""
ROLLUP_SUMS = f"{_SUMS}, sum(record_count) AS record_count"
"""The same sums over rollup rows."""


def live_totals_sql(table: str) -> str:
    """The sums (:data:`ROLLUP_SUMS`) of a rollup's live rows: the day rollup's or the
    15-minute one's."""
    return f"SELECT {ROLLUP_SUMS} FROM {table} FINAL WHERE is_deleted = 0"


_WIDEN = f"SELECT DISTINCT session_id FROM {DETAILS} WHERE message_id IN {SESSION_IDS}"
#: The ids bound as one set (:class:`~.queries.StringSet`): the driver escaped a bound
#: string character by character, 0.1 s of CPU per 12,000 ids; the engine parsed an array
#: element by element.
_HOLDERS = f"SELECT DISTINCT session_id FROM {DETAILS} WHERE message_id IN {bound_set('ids')}"

#: ``toDate(timestamp)`` is the UTC day (the column's zone). It is exact only for times inside
#: ``Date``'s range, 1970-01-01 .. 2149-06-06 (outside it wraps around): the analysis skips
#: other lines (``timestamp_out_of_range``) and :func:`~.details.detail_columns` refuses them.
#: Days and times come back as numbers (days since 1970, milliseconds), as they are
#: inserted again: no date or datetime object is made for them (20,000 rows: ~0.1 s).
_RECOMPUTE = f"""
SELECT session_id, toUInt16(toDate(timestamp)) AS day, model, any(project) AS project,
       any(host) AS host, {TOKEN_SUMS},
       toUnixTimestamp64Milli(min(timestamp)) AS first_timestamp,
       toUnixTimestamp64Milli(max(timestamp)) AS last_timestamp
FROM (
    SELECT * FROM {DETAILS} FINAL
    WHERE message_id IN {SESSION_IDS}
)
WHERE session_id IN {SESSION_SET} AND {NOT_A_REPLAY}
GROUP BY session_id, day, model
"""

_EXISTING = (
    f"SELECT session_id, toUInt16(day), model, {', '.join(STORED_TOKEN_FIELDS)}, cost_usd, "
    "record_count "
    f"FROM {SUMMARIES} FINAL WHERE session_id IN {SESSION_SET}"
)

CHANGE_KEYS = (*STORED_TOKEN_FIELDS, "cost_usd", "records")
"""What :func:`refresh_summaries` measures the change of (the rollup's sums, in this order)."""

_TOMBSTONE = ("", "", *(0 for _ in STORED_TOKEN_FIELDS), 0.0, 0, 0, 0)
"""A group's project, host, sums and times once it lost all its records."""

SUMMARY_COLUMNS = (
    *("session_id", "day", "model", "project", "host"),
    *STORED_TOKEN_FIELDS,
    *("cost_usd", "record_count", "first_timestamp", "last_timestamp"),
    *("migration_id", "ver", "is_deleted"),
)


def sessions_holding(client: Client, message_ids: Collection[str]) -> set[str]:
    """The sessions with a row (any version) of one of ``message_ids``: asked before rows
    of those ids are inserted, so the sessions they may take a record from are known
    whatever the merges do next (see the module docstring)."""
    if not message_ids:
        return set()
    found: set[str] = set()
    for part in in_parts(message_ids):
        params = {"ids": StringSet(part)}
        rows = query_rows(client, _HOLDERS, params, action="finding sessions that hold messages")
        found.update(r[0] for r in rows)
    return found


def widen_sessions(client: Client, sessions: Collection[str]) -> list[str]:
    """``sessions`` and every session sharing a message id with them, sorted."""
    if not sessions:
        return []
    widened = set(sessions)
    for part in in_parts(sorted(sessions)):
        params = {"sessions": StringSet(part)}
        shared = query_rows(client, _WIDEN, params, action="finding sessions that share messages")
        widened.update(r[0] for r in shared)
    return sorted(widened)


def refresh_summaries(
    client: Client,
    widened: Sequence[str],
    migration_id: str,
    change: dict[str, float] | None = None,
    *,
    fresh: Sequence[Sequence[Any]] | None = None,
) -> int:
    """Recompute the rollup of ``widened`` (:func:`widen_sessions`' sessions).

    ``fresh``: the recomputed rows as columns when the caller has them (a unit of work
    derives them from the 15-minute rollup's, ``buckets.summary_rows``), else they are
    selected here.

    Returns how many sessions were recomputed. Safe to repeat. ``change``, when given,
    gets the rollup's sums after minus before added to it (:data:`CHANGE_KEYS`): the net
    change of the database's counted totals made by the rows inserted since the last
    refresh of these sessions, as the rollup equals the counted rows it covers. Free: the
    sums are the rows this refresh reads and writes anyway.
    """
    if not widened:
        return 0
    params = {"sessions": StringSet(widened)}
    if fresh is None:
        action = "recomputing session summaries"
        fresh = list(query_columns(client, _RECOMPUTE, params, action=action))
    existing = query_rows(client, _EXISTING, params, action="reading session summaries")
    if change is not None:
        for i, key in enumerate(CHANGE_KEYS):
            after = sum(fresh[5 + i]) if fresh else 0
            before = sum(r[3 + i] for r in existing)
            change[key] = change.get(key, 0) + after - before
    fresh_keys = set(zip(*fresh[:3], strict=True))
    gone = [r[:3] for r in existing if tuple(r[:3]) not in fresh_keys]
    write_rollup(client, SUMMARIES, SUMMARY_COLUMNS, fresh, gone, _TOMBSTONE, migration_id)
    return len(widened)


def write_rollup(
    client: Client,
    table: str,
    names: Sequence[str],
    fresh: Sequence[Sequence[Any]],
    gone: Sequence[Sequence[Any]],
    deleted: Sequence[Any],
    migration_id: str,
) -> None:
    """Write a rollup's recomputed rows and a deleted row for each key that lost all its
    records (both rollups of a unit of work).

    ``fresh``: the rows as columns of ``names`` but its last three (``migration_id``,
    ``ver``, ``is_deleted``; no row: no column); ``gone``: the keys that lost their
    records, each written as the key followed by ``deleted`` (zero sums), which replaces
    the key's last row. Written as columns: no tuple or list a row.
    """
    values = len(names) - 3
    columns = [list(c) for c in fresh[:values]] if fresh else [[] for _ in range(values)]
    kept = len(columns[0])
    for key in gone:
        for column, value in zip(columns, (*key, *deleted), strict=True):
            column.append(value)
    total = kept + len(gone)
    if total:
        ver = time.time_ns()
        columns += [[migration_id] * total, [ver] * total, [0] * kept + [1] * len(gone)]
        action = f"writing {total} rows of {table} (migration {migration_id})"
        insert_rows(
            client,
            table,
            columns,
            names,
            action=action,
            column_oriented=True,
            settings=UNIQUE_KEYS_INSERT,
        )

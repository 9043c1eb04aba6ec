"""Both rollups rebuilt whole from the counted records, inside the engine.

A migration into a database that held no usage rows builds its rollups this way, once at
each of its checkpoints and at its end, instead of unit by unit (``migration.commits``):
each unit's refresh selects its sessions' rows through a pass over the growing table, so
a first migration of many units paid for the table again and again, and sent every
rollup row through Python twice. Here the 15-minute rollup is one ``INSERT ... SELECT``
over the counted records (rule 3 by ``FINAL``, rule 4: the counted view), and the day
rollup one over the 15-minute rows just written (a bucket lies in one UTC day; over the
counted records again when one does not, after 2106). Each is followed by a deleted row
for every key of the rollup that the rebuild did not write (a key that lost its records),
unless the rollup held no row before the rebuild (a first migration's first rebuild): no
key can be left behind then. The inserted blocks hold each key once, so they skip the
engine's merge by key (``queries.UNIQUE_KEYS_INSERT``), and no statement is compiled to
machine code (``queries.NOT_COMPILED``: each runs once).

The statements of a part run under one hold of the database (the caller's writer), so
the rollups equal the counted records when it ends, whoever wrote the rows. A large
table is rebuilt in parts of its sessions (by a hash of the session id), so the engine's
grouping stays bounded: the filter acts after ``FINAL`` (it is not on the sorting key),
so every version of a key is seen before one is kept.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.buckets import BUCKET_COLUMNS, BUCKETS, ROLLUP_KEYS
from context_cleaner.bridge.details import COUNTED_VIEW, DETAILS_TABLE
from context_cleaner.bridge.queries import (
    NOT_COMPILED,
    UNIQUE_KEYS_INSERT,
    query_rows,
    run_statement,
    settings_clause,
)
from context_cleaner.bridge.summaries import (
    CHANGE_KEYS,
    ROLLUP_SUMS,
    SUMMARIES,
    SUMMARY_COLUMNS,
    TOKEN_SUMS,
    live_totals_sql,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

PART_ROWS = 1_000_000
"""Usage rows per part of a rebuild: the engine's grouping of one part of a 10M-row
table took ~65 MB above the engine's own, the whole table at once ~420 MB."""

_TIMES = "min(timestamp) AS first_timestamp, max(timestamp) AS last_timestamp"
_STAMP = "{migration_id:String}, {ver:UInt64}"

#: Per rollup: its columns, and what a group of counted records gives beyond its key (the
#: day rollup keeps a project and host of its records, as the unit refresh does).
_ROLLUPS = {
    BUCKETS: (BUCKET_COLUMNS, ""),
    SUMMARIES: (SUMMARY_COLUMNS, ", any(project) AS project, any(host) AS host"),
}


def _fresh_sql(table: str, part: str) -> str:
    columns, extra = _ROLLUPS[table]
    key, computed = ROLLUP_KEYS[table]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {computed}{extra}, {TOKEN_SUMS}, {_TIMES}, {_STAMP}, toUInt8(0) "
        f"FROM {COUNTED_VIEW} WHERE {part} GROUP BY {key}"
    )


#: The 15-minute rollup's rows this rebuild wrote (its ``ver``; each key once, no ``FINAL``).
_WRITTEN = f"FROM {BUCKETS} WHERE ver = {{ver:UInt64}} AND is_deleted = 0"


def _days_sql(part: str) -> str:
    """The day rollup summed from the 15-minute rows this rebuild wrote: a day's records
    are its buckets' records when each bucket's records lie in one UTC day
    (:func:`_one_day_each`), so its sums, count, first and last times are theirs, and its
    project and host one of theirs. ~20,000 rollup rows read instead of the counted
    records again (the usage table ``FINAL``)."""
    extra = _ROLLUPS[SUMMARIES][1]
    return (
        f"INSERT INTO {SUMMARIES} ({', '.join(SUMMARY_COLUMNS)}) "
        f"SELECT session_id, toDate(first_timestamp) AS day, model{extra}, {ROLLUP_SUMS}, "
        f"min(first_timestamp), max(last_timestamp), {_STAMP}, toUInt8(0) "
        f"{_WRITTEN} AND {part} GROUP BY session_id, day, model"
    )


def _one_day_each(client: Client, part: str, params: dict[str, Any]) -> bool:
    """Whether the records of each 15-minute row this rebuild wrote lie in one UTC day:
    always, but for records after 2106-02-07 06:28:15, where ``bucket`` (a ``DateTime``)
    stops, so its last bucket holds every later record."""
    days = "toDate(first_timestamp) != toDate(last_timestamp)"
    sql = f"SELECT count() {_WRITTEN} AND {part} AND {days}"
    ((spanning,),) = query_rows(client, sql, params, action="checking the 15-minute rollup")
    return not spanning


def _deleted_sql(table: str, part: str) -> str:
    """A deleted row (zero sums) for every live key the rebuild did not write."""
    columns, _ = _ROLLUPS[table]
    key = ROLLUP_KEYS[table][0].split(", ")
    # A lost day group's project and host are empty, as the unit refresh writes them.
    blank = ("project", "host") if table == SUMMARIES else ()
    values = [c if c in key else "''" if c in blank else "0" for c in columns[:-3]]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)}, {_STAMP}, toUInt8(1) "
        f"FROM {table} FINAL WHERE is_deleted = 0 AND ver < {{ver:UInt64}} AND {part}"
    )


#: The rows of both rollups before the rebuild, and the usage rows (a count of a whole
#: table is read from its parts' row counts: no column is read).
_COUNTS = (
    f"SELECT (SELECT count() FROM {DETAILS_TABLE}), (SELECT count() FROM {BUCKETS}), "
    f"(SELECT count() FROM {SUMMARIES})"
)


#: Settings of the fresh rows' inserts: each key once; run once a rebuild.
_FRESH = settings_clause({**UNIQUE_KEYS_INSERT, **NOT_COMPILED})


#: The day rollup's live sums (:data:`~.summaries.CHANGE_KEYS` order).
_DAY_SUMS = live_totals_sql(SUMMARIES) + settings_clause(NOT_COMPILED)


def _day_sums(client: Client) -> list[float]:
    ((*sums,),) = query_rows(client, _DAY_SUMS, action=f"summing {SUMMARIES}")
    return [s or 0 for s in sums]


def rebuild_rollups(
    client: Client, migration_id: str, change: dict[str, float] | None = None
) -> int:
    """Rebuild both rollups from the counted records (see the module docstring); returns
    the number of parts. Safe to repeat; the caller holds the database.

    ``change``, when given, gets the day rollup's sums after minus before added to it
    (:data:`~.summaries.CHANGE_KEYS`), as a unit's refresh measures its own: the change of
    the counted totals that no unit measured since the rollups were last level (the rows
    of a run that defers its rollups; ``migration.migrate``)."""
    ((rows, *held),) = query_rows(client, _COUNTS, action="counting the usage and rollup rows")
    # A rollup that held no row before (the first rebuild into an empty database) has no
    # key the rebuild could leave behind: its deleted-row statement would find nothing.
    older = {table: bool(n) for table, n in zip((BUCKETS, SUMMARIES), held, strict=True)}
    before = _day_sums(client) if change is not None and older[SUMMARIES] else None
    parts = max(1, -(-int(rows or 0) // PART_ROWS))
    ver = time.time_ns()
    params = {"migration_id": migration_id, "ver": ver, "parts": parts}
    for n in range(parts):
        part = "1" if parts == 1 else f"cityHash64(session_id) % {{parts:UInt32}} = {n}"
        for table in (BUCKETS, SUMMARIES):
            action = f"rebuilding {table} (part {n + 1} of {parts})"
            if table == SUMMARIES and _one_day_each(client, part, params):
                fresh = _days_sql(part)
            else:
                fresh = _fresh_sql(table, part)
            run_statement(client, fresh + _FRESH, params, action=action)
            if older[table]:
                deleted = _deleted_sql(table, part) + settings_clause(NOT_COMPILED)
                run_statement(client, deleted, params, action=action)
    if change is not None:
        after = _day_sums(client)
        for n, key in enumerate(CHANGE_KEYS):
            change[key] = change.get(key, 0) + after[n] - (before[n] if before else 0)
    return parts

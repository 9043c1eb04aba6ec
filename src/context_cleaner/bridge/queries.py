"""Queries and inserts through a client, with driver errors translated in one place.

Every module of the bridge that reads or writes rows goes through :func:`query_rows` and
:func:`insert_rows`, so a ClickHouse driver exception is sorted into the
:class:`~context_cleaner.bridge.exceptions.MigrationError` tree once (STYLE 3), with a
message naming what was being done; nothing above the bridge sees driver types.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from context_cleaner.bridge.exceptions import translate_clickhouse_error
from context_cleaner.errors import MigrationError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client
    from clickhouse_connect.driver.query import QueryResult


def query_rows(
    client: Client,
    sql: str,
    parameters: dict[str, Any] | None = None,
    *,
    action: str = "reading the database",
) -> list[tuple]:
    """The rows ``sql`` returns (``action`` names the read in an error's message)."""
    return list(_result(client, sql, parameters, action).result_rows)


def query_columns(
    client: Client,
    sql: str,
    parameters: dict[str, Any] | None = None,
    *,
    action: str = "reading the database",
) -> Sequence[Sequence[Any]]:
    """The columns ``sql`` returns: for many rows, ``zip(*columns)`` costs about two
    thirds of the driver's own rows (60,000 report cells: ~65 vs ~100 ms). No row, no
    column: the embedded driver then gives an empty list."""
    return _result(client, sql, parameters, action).result_columns


def _result(
    client: Client, sql: str, parameters: dict[str, Any] | None, action: str
) -> QueryResult:
    try:
        return client.query(sql, parameters=parameters or {})
    except MigrationError:
        raise
    except Exception as exc:
        raise translate_clickhouse_error(exc, action=action) from exc


def run_statement(
    client: Client,
    sql: str,
    parameters: dict[str, Any] | None = None,
    *,
    action: str,
) -> None:
    """Run a statement that returns no rows (``INSERT ... SELECT``, ``ALTER``)."""
    try:
        client.command(sql, parameters=parameters or None)
    except MigrationError:
        raise
    except Exception as exc:
        raise translate_clickhouse_error(exc, action=action) from exc


UNIQUE_KEYS_INSERT = {"optimize_on_insert": 0}
"""Settings of an insert into a replacing table whose block holds each key once (usage rows
de-duplicated before they are sent, rollup rows grouped by their key). By default the engine
merges an inserted block by its key first; here that finds nothing to replace and took half
of the insert: 60,000 usage rows 0.21-0.36 -> 0.09-0.13 s in the engine (docs/benchmarks.md).
Correct either way: replaced rows are read through ``FINAL``."""


NOT_COMPILED = {"compile_expressions": 0, "compile_aggregate_expressions": 0}
"""Settings of a statement a process runs once or twice (the end of a first migration).
The engine compiles an expression or a set of aggregates to machine code once it has run
it a few times (``min_count_to_compile_expression``), which a statement run once never
pays back: the 15-minute rollup's rebuild from 60,000 usage rows took 85-93 ms without
it against 146-148 ms with it (medians, docs/benchmarks.md); the rebuild of one tenth
of a 10M-row table took the same either way (0.83-0.91 s)."""


def settings_clause(settings: dict[str, int]) -> str:
    """``settings`` as a statement's ``SETTINGS`` clause (the settings of a whole
    ``INSERT ... SELECT`` too). Given to a call instead, the embedded driver reads them
    from ``system.settings``, sets them and sets them back around the statement: ~7 ms
    a statement, more than some of the statements."""
    return " SETTINGS " + ", ".join(f"{name} = {int(value)}" for name, value in settings.items())


def insert_rows(
    client: Client,
    table: str,
    data: Sequence[Sequence[Any]],
    column_names: Sequence[str],
    *,
    action: str,
    column_oriented: bool = False,
    settings: dict[str, Any] | None = None,
) -> None:
    """Insert ``data`` (rows, or columns when ``column_oriented``) into ``table``.

    The driver asks the database for the columns' types before each insert (``DESCRIBE``,
    ~3-5 ms with the embedded engine): they are asked once per client, table and columns
    (:func:`forget_column_types` after a schema change).
    """
    known = _COLUMN_TYPES.setdefault(client, {})
    key = (table, tuple(column_names))
    try:
        context = client.create_insert_context(  # without types: asked of the database
            table,
            column_names,
            column_types=known.get(key),
            column_oriented=column_oriented,
            settings=settings,
            data=data,
        )
        known[key] = context.column_types
        client.insert(context=context)
    except MigrationError:
        raise
    except Exception as exc:
        raise translate_clickhouse_error(exc, action=action) from exc


_COLUMN_TYPES: weakref.WeakKeyDictionary[Client, dict[tuple[str, tuple[str, ...]], Any]] = (
    weakref.WeakKeyDictionary()
)
"""The columns' types :func:`insert_rows` was told, by client, then table and columns."""


def forget_column_types(client: Client) -> None:
    """After a schema change through ``client``: :func:`insert_rows` asks the types again."""
    _COLUMN_TYPES.pop(client, None)


#: A line of tab-separated text: backslash, tab, newline and carriage return escaped.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_TSV_ESCAPE = re.compile(r"[\\\t\n\r]")


def bound_set(name: str) -> str:
    """The SQL of a set of strings bound as :class:`StringSet` parameter ``name``: a
    subquery of one column, ``k``, for ``x IN`` (it may appear several times in a
    statement)."""
    return bound_rows(name, "k String")


def _parameter_text(lines: Iterable[str]) -> str:
    """Lines of TSV fields (each already escaped) as one ``String`` parameter's text: the
    parameter's text unescapes to the lines, the TSV reader the fields to the values."""
    return "".join(line + "\n" for line in lines).translate(_TSV_ESCAPES)


class StringSet:
    """Strings bound as one ``String`` query parameter of tab-separated lines, read back
    by :func:`bound_set`'s subquery.

    The driver escapes a bound string character by character in Python (0.1 s of CPU per
    1,000 files' session ids); this builds the text with one ``join``, escaping only
    values that need it. The engine parses an ``Array(String)`` parameter element by
    element, each time the statement names it: 36 ms for 20,000 message ids, four times
    in a rollup's recomputation (0.44 s of it, against 0.23 s with this). A ``String`` is
    read in one pass and the lines by the engine's TSV reader. Each value is a TSV field
    (escaped), and the text is escaped once more as a parameter value.
    """

    __slots__ = ("_text",)

    def __init__(self, values: Iterable[str]) -> None:
        values = list(values)
        if _NEEDS_TSV_ESCAPE.search("".join(values)):
            self._text = _parameter_text(v.translate(_TSV_ESCAPES) for v in values)
        else:  # the same text, with nothing to escape: each value and an escaped newline
            self._text = "".join(v + "\\n" for v in values)

    def __str__(self) -> str:
        return self._text


def bound_rows(name: str, structure: str) -> str:
    """The SQL of rows bound as :class:`BoundRows` parameter ``name``: a subquery of the
    columns ``structure`` names (e.g. ``'path String, start UInt64'``)."""
    return f"(SELECT * FROM format(TabSeparated, '{structure}', {{{name}:String}}))"


class BoundRows:
    """Rows of values bound as one ``String`` query parameter of tab-separated lines, read
    back by :func:`bound_rows`' subquery (what :class:`StringSet` is for one column).

    Each value's text is a TSV field (escaped), and the text is escaped once more as a
    parameter value. The rows of a statement that binds many places at once: bound as
    arrays, 15,700 paths made a validation's statement take 8.3 s.
    """

    __slots__ = ("_text",)

    def __init__(self, rows: Iterable[Sequence[object]]) -> None:
        self._text = _parameter_text(
            "\t".join(str(v).translate(_TSV_ESCAPES) for v in row) for row in rows
        )

    def __str__(self) -> str:
        return self._text


#: The most characters of values :func:`in_parts` puts in one statement. The embedded
#: engine took 9-40 s (instead of ~0.1 s) the first time it ran a statement binding a set of
#: more than ~1.1 MB of text against a table (30,000 session ids of 36 characters; 20,000
#: ids of 60) as an ``Array(String)``, and ~0.1 s at 1.09 MB. Bound as a
#: :class:`StringSet`, 2.9 MiB took 0.6-0.8 s the first time, as its size predicts, but a
#: commit unit's rollups in one part instead of three were no faster (20,000 small files,
#: 4.0-5.1 s either way). A server reads bound parameters from the request's URL, which it
#: limits to 1 MiB by default (``http_max_uri_size``).
BOUND_CHARS = 768 * 1024


def in_parts(values: Iterable[str], times: int = 1) -> Iterator[list[str]]:
    """``values`` in consecutive parts (at least one value each) of at most
    ``BOUND_CHARS // times`` characters (counting three a value for its separators):
    ``times`` > 1 for statements whose work grows faster than their set (a commit unit's
    rollups run in parts of a third, no slower than in one)."""
    max_chars = BOUND_CHARS // times
    part: list[str] = []
    size = 0
    for value in values:
        if part and size + len(value) + 3 > max_chars:
            yield part
            part, size = [], 0
        part.append(value)
        size += len(value) + 3
    if part:
        yield part


class Where:
    """A ``WHERE`` condition built from optional parts, each value a query parameter (never
    spliced into the SQL): a part whose value is None is left out."""

    def __init__(self, *always: str) -> None:
        self.clauses = list(always)
        self.params: dict[str, Any] = {}

    def add(self, clause: str, name: str, value: Any) -> None:
        """``clause`` (which names the parameter ``name``) when ``value`` is not None."""
        if value is not None:
            self.clauses.append(clause)
            self.params[name] = value

    def equal(self, source: object, columns: Sequence[str]) -> None:
        """``column = value`` for each of ``columns`` whose attribute of ``source`` is set."""
        for column in columns:
            self.add(f"{column} = {{{column}:String}}", column, getattr(source, column))

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "1"


_FROM_RE = re.compile(r"\bFROM\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def table_of(sql: str) -> str:
    """The first table a query reads (for span names), or ``""``."""
    match = _FROM_RE.search(sql)
    return match.group(1) if match else ""

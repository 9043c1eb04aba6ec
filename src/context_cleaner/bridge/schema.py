"""Versioned schema: ``sql/NNN_name.sql`` files applied in order and recorded (DESIGN §4).

Each file is applied once. ``schema_migrations`` records its name, a checksum
of its text and when it was applied, so an upgrade applies only what is new,
re-running applies nothing, and a released file that was edited afterwards is
refused (:class:`SchemaError`) instead of silently diverging.

The files are found in the installed package (the wheel ships the repository's
``sql/`` as ``context_cleaner/sql``) or, in a source checkout, in ``sql/`` at
the repository root. Rules for the files are in ``sql/001_core_tables.sql``:
no database name, one statement per ``;``, every statement safe to run twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from context_cleaner.bridge.exceptions import (
    DatabaseQueryError,
    SchemaError,
    translate_clickhouse_error,
)
from context_cleaner.bridge.queries import forget_column_types
from context_cleaner.errors import MigrationError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SCHEMA_TABLE = "schema_migrations"
"""The table recording applied schema files."""

_BOOTSTRAP = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE}
(
    name String,
    checksum String COMMENT 'sha256 of the file text (CRLF read as LF)',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3),
    tool_version String
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name
COMMENT 'schema files (sql/NNN_name.sql) applied to this database'
"""

_NAME_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class SchemaFile:
    """One ``NNN_name.sql`` file."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the text, line endings normalised (a CRLF checkout is the same file)."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


@dataclass(frozen=True)
class AppliedFile:
    """A row of ``schema_migrations``."""

    name: str
    checksum: str
    applied_at: datetime
    tool_version: str


def sql_dir() -> Traversable:
    """The folder of schema files: packaged ``context_cleaner/sql``, else the repo's ``sql/``."""
    packaged = resources.files("context_cleaner") / "sql"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[3] / "sql"
    if source.is_dir():
        return source
    raise SchemaError(
        "The schema files (sql/*.sql) are missing from this installation: looked in "
        f"{packaged} and {source}. Reinstall context-cleaner."
    )


def load_schema_files(directory: Traversable | Path | None = None) -> list[SchemaFile]:
    """The schema files in ``directory`` (default :func:`sql_dir`), in apply order."""
    folder = directory if directory is not None else sql_dir()
    files: list[SchemaFile] = []
    numbers: dict[str, str] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME_RE.match(entry.name)
        if not match:
            raise SchemaError(
                f"Schema file {entry.name} is not named NNN_lowercase_name.sql; rename it."
            )
        if match.group(1) in numbers:
            raise SchemaError(
                f"Schema files {numbers[match.group(1)]} and {entry.name} share the number "
                f"{match.group(1)}; give one of them the next free number."
            )
        numbers[match.group(1)] = entry.name
        files.append(SchemaFile(entry.name, entry.read_text(encoding="utf-8")))
    return sorted(files, key=lambda f: f.name)


def split_statements(sql: str) -> list[str]:
    """Split SQL on ``;`` outside quotes and comments; comments are kept, empty parts dropped."""
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch in "'\"`":
            i += 1
            while i < n:
                if sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == ch:
                    if i + 1 < n and sql[i + 1] == ch:  # doubled quote escapes itself
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            continue
        if ch == ";":
            statements.append(sql[start:i])
            start = i + 1
        i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(text: str) -> bool:
    """True when ``text`` holds more than whitespace and comments."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    return bool(stripped.strip())


def _tool_version() -> str:
    from context_cleaner.version import __version__

    return __version__


def _run(client: Client, sql: str, action: str) -> None:
    try:
        client.command(sql)
    except MigrationError:
        raise
    except Exception as exc:
        error = translate_clickhouse_error(exc, action=action)
        if isinstance(error, DatabaseQueryError):  # the statement itself is wrong here
            schema_error = SchemaError(
                f"{error} The schema could not be applied; nothing after this statement ran. "
                "Fix the cause, then run again: the file is applied again from its start."
            )
            schema_error.code = error.code
            error = schema_error
        raise error from exc


def applied_schema_files(client: Client) -> dict[str, AppliedFile]:
    """The rows of ``schema_migrations`` by file name (empty when the table does not exist)."""
    try:
        if not int(client.command(f"EXISTS TABLE {SCHEMA_TABLE}")):
            return {}
        result = client.query(
            f"SELECT name, checksum, applied_at, tool_version FROM {SCHEMA_TABLE} FINAL"
        )
    except Exception as exc:
        raise translate_clickhouse_error(exc, action=f"reading {SCHEMA_TABLE}") from exc
    return {row[0]: AppliedFile(*row) for row in result.result_rows}


def pending_schema_files(
    client: Client, files: Sequence[SchemaFile] | None = None
) -> list[SchemaFile]:
    """The files not applied yet, in order.

    Raises :class:`SchemaError` when an applied file has changed since.
    """
    files = load_schema_files() if files is None else files
    applied = applied_schema_files(client)
    _check_unchanged(files, applied)
    return [f for f in files if f.name not in applied]


def _check_unchanged(files: Iterable[SchemaFile], applied: dict[str, AppliedFile]) -> None:
    for f in files:
        done = applied.get(f.name)
        if done is not None and done.checksum != f.checksum:
            raise SchemaError(
                f"Schema file {f.name} was changed after it was applied on "
                f"{done.applied_at:%Y-%m-%d %H:%M} UTC (checksum {done.checksum[:12]}, now "
                f"{f.checksum[:12]}). Restore the released file and put the change in a new "
                "sql/NNN_name.sql file."
            )


def setup_schema(client: Client, files: Sequence[SchemaFile] | None = None) -> list[str]:
    """Apply every pending schema file in order, recording each; returns the names applied.

    A file is recorded only after all its statements ran, so a failure part-way
    leaves it pending and the next call runs it again from the start. The files applied
    are recorded together, by one statement (also when a later one fails): a new
    database's six took six statements (~7 ms each).
    """
    version = _tool_version()
    _run(client, _BOOTSTRAP, f"creating {SCHEMA_TABLE}")
    applied: list[SchemaFile] = []
    try:
        for f in pending_schema_files(client, files):
            forget_column_types(client)  # what was inserted before may change now
            for number, statement in enumerate(f.statements, start=1):
                _run(client, statement, f"applying statement {number} of schema file {f.name}")
            applied.append(f)
    except BaseException:
        with contextlib.suppress(Exception):  # the files that ran stay applied
            _record(client, applied, version)
        raise
    _record(client, applied, version)
    return [f.name for f in applied]


def _record(client: Client, applied: Sequence[SchemaFile], version: str) -> None:
    """Record ``applied`` in one statement (rows as a statement: no DESCRIBE and data file,
    as an insert makes)."""
    if not applied:
        return
    values = ", ".join(
        f"({{name{n}:String}}, {{checksum{n}:String}}, {{version:String}})"
        for n in range(len(applied))
    )
    parameters = {"version": version}
    for n, f in enumerate(applied):
        parameters[f"name{n}"], parameters[f"checksum{n}"] = f.name, f.checksum
    names = ", ".join(f.name for f in applied)
    try:
        client.command(
            f"INSERT INTO {SCHEMA_TABLE} (name, checksum, tool_version) VALUES {values}",
            parameters=parameters,
        )
    except Exception as exc:
        raise translate_clickhouse_error(exc, action=f"recording schema files {names}") from exc

"""Schema compatibility (the spec's ``test_schema_compatibility``) and scratch databases.

Nothing here writes to the database being checked. The checks that need writes
run in a scratch database of the same kind: a temporary folder for the embedded
engine, a temporary database (created, then dropped) on the same server for a
ClickHouse server. The target itself is only read: its applied schema files and
its columns, compared with what this version creates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.analysis.fields import TOKEN_FIELDS, TOTAL_FIELDS
from context_cleaner.analysis.records import UsageRecord
from context_cleaner.analysis.scan import scan_files
from context_cleaner.bridge import (
    COUNTED_VIEW,
    Database,
    EnhancedTokenDatabaseBridge,
    SchemaError,
    close_client,
    database_exists,
    load_schema_files,
    open_client,
    pending_schema_files,
    query_rows,
)
from context_cleaner.bridge.given_client import ClientDatabase
from context_cleaner.errors import MigrationError
from context_cleaner.migration.models import to_jsonable
from context_cleaner.migration.status import get_migration_status
from context_cleaner.testing.transcripts.sample import generate_transcripts

#: Tables this version owns; their columns must match between target and a fresh schema.
CHECKED_TABLES = (
    "enhanced_token_details",
    "enhanced_token_summaries",
    "enhanced_token_buckets",
    "enhanced_analysis_metadata",
    "migration_execution_log",
    "migration_file_tracking",
    "migration_snapshots",
    "migration_alerts",
)


@dataclass
class Check:
    """One named check and its outcome."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class CompatibilityResult:
    """The spec's ``CompatibilityResult``: type mapping, constraints, indexes, relationships."""

    database: str
    checks: list[Check] = field(default_factory=list)
    passed: bool = False
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)  # type: ignore[no-any-return]


@contextlib.contextmanager
def scratch_database(like: Database | None = None) -> Iterator[Database]:
    """An empty database of the same kind as ``like`` (default embedded), removed afterwards."""
    if isinstance(like, ClientDatabase):  # a caller's client: a database on that client
        with like.scratch() as scratch:
            yield scratch
        return
    if like is None or like.url.is_embedded:
        folder = tempfile.mkdtemp(prefix="context-cleaner-scratch-")
        try:
            yield Database(f"chdb://{folder}/db", lock_timeout=like.lock_timeout if like else None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"cc_scratch_{secrets.token_hex(6)}"
    server = dataclasses.replace(like.url, database="")
    _server_command(server, f"CREATE DATABASE {name}")
    try:
        yield Database(dataclasses.replace(like.url, database=name), retry=like.retry)
    finally:
        with contextlib.suppress(MigrationError):
            _server_command(server, f"DROP DATABASE IF EXISTS {name}")


def _server_command(url: Any, sql: str) -> None:
    client = open_client(url)
    try:
        client.command(sql)
    finally:
        close_client(client)


def sample_records(folder: str, target_tokens: int = 300_000) -> tuple[list[UsageRecord], Any]:
    """Usage records of a small generated corpus, and the corpus (its expected totals)."""
    corpus = generate_transcripts(folder, target_tokens=target_tokens, seed=7)
    files = discover(resolve_roots([str(corpus.projects_dir)])).files
    return list(scan_files(files).collector.candidates()), corpus


def _columns(database: Database) -> dict[str, list[tuple[str, str]]]:
    with database.session() as client:
        rows = query_rows(
            client,
            "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table IN {t:Array(String)} ORDER BY table, position",
            {"t": list(CHECKED_TABLES)},
        )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, name, kind in rows:
        out.setdefault(table, []).append((name, kind))
    return out


def test_schema_compatibility(
    bridge: EnhancedTokenDatabaseBridge, *, scratch: Database | None = None
) -> CompatibilityResult:
    """Check that this version's schema and data fit the target (see the module docstring)."""
    started = time.perf_counter()
    result = CompatibilityResult(database=bridge.database.url.redacted())
    checks = result.checks
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = stack.enter_context(scratch_database(bridge.database))
        fresh = EnhancedTokenDatabaseBridge(scratch, prices=bridge.prices, host=bridge.host)
        with scratch.held():  # one engine open for all the scratch work
            applied = fresh.setup_migration_infrastructure()
            expected = [f.name for f in load_schema_files()]
            checks.append(
                Check(
                    "schema files apply",
                    applied == expected,
                    f"{len(applied)} of {len(expected)} applied to an empty database",
                )
            )
            checks += _round_trip(fresh, stack.enter_context(_tempdir()))
            checks += _indexes(fresh)
            fresh_columns = _columns(scratch)
        with bridge.database.held():
            checks += _target(bridge, fresh_columns)
    result.passed = all(c.passed for c in checks)
    result.duration_seconds = time.perf_counter() - started
    return result


test_schema_compatibility.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@contextlib.contextmanager
def _tempdir() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="context-cleaner-sample-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _round_trip(fresh: EnhancedTokenDatabaseBridge, folder: str) -> list[Check]:
    """Write every table the pipeline writes; read back exactly what went in."""
    records, corpus = sample_records(folder)
    sessions = {r.session_id for r in records}
    with fresh.writer() as w:
        w.insert_records(records, "compat")
        w.refresh_summaries(sessions, "compat")
        w.log("compat", "compat", "round trip", "completed", {"records": len(records)})
        w.save_run({"migration_id": "compat", "run_kind": "validate", "status": "completed"})
    totals = fresh.get_migration_totals()
    wrong = [k for k in TOTAL_FIELDS if totals[k] != corpus.totals[k]]
    checks = [
        Check(
            "data type mapping",
            not wrong,
            f"{len(records)} records round-tripped; totals {totals['total_tokens']:,} tokens"
            + (f"; differ in {wrong}" if wrong else " equal the corpus's"),
        )
    ]
    partial = [
        msgspec.structs.replace(r, output_tokens=0, byte_offset=r.byte_offset + 1) for r in records
    ]
    with fresh.writer() as w:  # worse copies of every key: ReplacingMergeTree must keep the best
        w.insert_records(partial, "compat-dup")
    again = fresh.get_migration_totals()
    checks.append(
        Check(
            "constraint: one row per (message id, request id), the preferred one",
            again["total_tokens"] == totals["total_tokens"]
            and again["records"] == totals["records"],
            f"{len(partial)} worse duplicates inserted; totals {again['total_tokens']:,}",
        )
    )
    summary = fresh.summary_totals()
    checks.append(
        Check(
            "relationship: summaries equal the counted records",
            all(summary[k] == totals[k] for k in TOKEN_FIELDS),
            f"{fresh.count_sessions()} session(s) summarised",
        )
    )
    status = get_migration_status(fresh, "compat")
    checks.append(
        Check(
            "run history readable",
            status is not None and status.phase == "completed",
            "status of the round-trip run read back",
        )
    )
    return checks


def _indexes(fresh: EnhancedTokenDatabaseBridge) -> list[Check]:
    with fresh.database.session() as client:
        key = query_rows(
            client,
            "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() "
            "AND name = 'enhanced_token_details'",
        )
        skips = query_rows(
            client,
            "SELECT name FROM system.data_skipping_indices WHERE database = currentDatabase() "
            "AND table = 'enhanced_token_details' ORDER BY name",
        )
        probe = query_rows(
            client,
            f"SELECT count() FROM {COUNTED_VIEW} WHERE message_id = {{m:String}}",
            {"m": "msg_compat_absent"},
        )
    names = [r[0] for r in skips]
    return [
        Check(
            "index: key and skip indexes",
            bool(key) and key[0][0] == "message_id, request_id" and len(names) >= 2,
            f"sorting key {key[0][0] if key else '?'}; skip indexes {', '.join(names)}",
        ),
        Check("index: key lookup", probe[0][0] == 0, "lookup by message id through the view"),
    ]


def _target(bridge: EnhancedTokenDatabaseBridge, fresh: dict[str, list]) -> list[Check]:
    """The target (read only): schema files unchanged, columns as a fresh schema has them."""
    if not database_exists(bridge):
        return [Check("target", True, "empty database: `migrate` creates the schema")]
    try:
        with bridge.database.session() as client:
            pending = pending_schema_files(client)
    except SchemaError as exc:
        return [Check("target schema files", False, str(exc))]
    if pending:
        names = ", ".join(f.name for f in pending)
        return [Check("target schema files", True, f"pending: {names} (`migrate` applies them)")]
    target = _columns(bridge.database)
    differ = [t for t in CHECKED_TABLES if target.get(t) != fresh.get(t)]
    return [
        Check("target schema files", True, "every schema file applied, none changed"),
        Check(
            "target columns",
            not differ,
            "columns and types equal a fresh schema's"
            if not differ
            else f"differ in {', '.join(differ)}: the tables were changed by hand",
        ),
    ]

"""Rollback (DESIGN §6): after each mode the data tables equal an earlier state, row for row.

Two migrations run on a growing corpus (the second appends to files and adds
new ones, with a checkpoint every two files). Full sorted table contents are
recorded before and during the second, then compared after each rollback. The
command line refuses without ``--yes`` off a terminal, asks on one, and names an
unknown migration.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.bridge import Database
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.models import HistoricalMigrationResult, MigrationProgress
from context_cleaner.migration.rollback import SNAPSHOTS, list_snapshots, rollback_migration

from .conftest import Target
from .helpers import (
    DATA_TABLES,
    REPO,
    analyse,
    assert_database_equals,
    bridge,
    cli_command,
    cli_env,
    dump_tables,
    owned_tables,
    run_cli,
    run_json,
)

HISTORY = ("enhanced_analysis_metadata", "migration_execution_log")


def corpus_files(source: Path) -> list[str]:
    return sorted(p.relative_to(source).as_posix() for p in source.rglob("*.jsonl"))


def write_part(source: Path, dest: Path, files: list[str], share: float) -> None:
    """Each of the first files up to the last newline before ``share`` of it; the rest absent."""
    for rel in files[: max(1, len(files) * 3 // 4)]:
        data = (source / rel).read_bytes()
        cut = data.rfind(b"\n", 0, int(len(data) * share)) + 1
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data[:cut])


def write_rest(source: Path, dest: Path, files: list[str]) -> None:
    """Grow every file to its full length (appending, so each keeps its identity)."""
    for rel in files:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        have = path.stat().st_size if path.exists() else 0
        with open(path, "ab") as out:
            out.write((source / rel).read_bytes()[have:])


@dataclass
class History:
    """Two migrations and the table contents at every point a rollback can return to."""

    url: str
    dest: Path
    migrator: HistoricalDataMigrator
    first: HistoricalMigrationResult
    second: HistoricalMigrationResult
    after_first: dict[str, Any]
    after_second: dict[str, Any]
    at_checkpoint: dict[str, dict[str, Any]] = field(default_factory=dict)


def two_migrations(
    target: Target, corpus: tuple[Path, dict[str, Any]], tmp_path: Path, **options: Any
) -> History:
    source = corpus[0] / "projects"
    files = corpus_files(source)
    dest = tmp_path / "claude" / "projects"
    url = target.new_url()
    migrator = HistoricalDataMigrator(
        bridge_service=bridge(url),
        batch_size=1,
        parallel_workers=1,
        checkpoint_interval=options.pop("checkpoint_interval", 2),
        min_snapshot_interval=0.0,
        commit_every=0.0,
        **options,
    )
    write_part(source, dest, files, 0.5)
    first = migrator.run(str(dest))
    after_first = dump_tables(url)
    write_rest(source, dest, files)
    at_files: dict[int, dict[str, Any]] = {}

    def record(p: MigrationProgress) -> None:  # called after each batch is committed
        at_files[p.files_completed] = dump_tables(migrator.bridge.database)

    second = migrator.run(str(dest), progress_callback=record)
    assert first.success and second.success
    interval = migrator.checkpoint_interval
    at_checkpoint = {cp: at_files[int(cp[2:]) * interval] for cp in second.checkpoints}
    return History(url, dest, migrator, first, second, after_first, dump_tables(url), at_checkpoint)


def run_states(b: Any) -> dict[str, str]:
    """Each migrate and sync run's state as ``status`` and the dashboard's runs list show it."""
    return {
        r["migration_id"]: r["status"]
        for r in b.migration_runs()
        if r["run_kind"] in ("migrate", "sync")
    }


def rollback_runs(b: Any) -> list[tuple[str, str, str]]:
    """The rollbacks' own runs, oldest first: (status, the run rolled back, mode)."""
    rows = [r for r in b.migration_runs() if r["run_kind"] == "rollback"]
    return [
        (r["status"], r["details"]["rolled_back"], r["details"]["mode"])
        for r in sorted(rows, key=lambda r: r["started_at"])
    ]


def same_runs_but_state(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """The run rows are the same runs with the same counts: only state and time changed
    (the rollbacks' own rows aside: see :func:`rollback_runs`)."""

    def key(rows: list[tuple[Any, ...]]) -> list[str]:
        # Every column but status (the third) and updated_at (the last).
        return sorted(repr((r[:2], r[3:-1])) for r in rows if r[1] != "rollback")

    table = "enhanced_analysis_metadata"
    return key(before[table]) == key(after[table])


@pytest.mark.slow
def test_partial_then_complete_rollback_restore_the_tables_row_for_row(
    target: Target, corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    h = two_migrations(target, corpus_small, tmp_path)
    b = h.migrator.bridge
    mid = h.second.migration_id
    assert len(h.second.checkpoints) >= 3, h.second.checkpoints
    assert h.after_second != h.after_first
    history_before = dump_tables(h.url, HISTORY)

    # Back and forth between checkpoints: each restores exactly the state it recorded.
    for cp in (h.second.checkpoints[-1], h.second.checkpoints[0], h.second.checkpoints[1]):
        result = rollback_migration(b, mid, "partial", cp)
        assert result.success and result.mode == "partial" and result.snapshot
        assert dump_tables(h.url) == h.at_checkpoint[cp], cp
    assert h.at_checkpoint[h.second.checkpoints[0]] != h.after_second

    # The run history is never rolled back: it gains the rollbacks' log lines, and the
    # rolled-back run is shown so.
    history = dump_tables(h.url, HISTORY)
    assert set(history_before["migration_execution_log"]) < set(history["migration_execution_log"])
    assert run_states(b) == {h.first.migration_id: "completed", mid: "rolled_back"}
    assert same_runs_but_state(history_before, history)
    assert rollback_runs(b) == [("completed", mid, "partial")] * 3

    # From a checkpoint, a new run reads exactly what is missing.
    resumed = h.migrator.run(str(h.dest))
    assert resumed.success and resumed.resumed_files > 0
    assert_database_equals(b, analyse(h.dest))

    result = rollback_migration(b, mid, "complete")
    assert result.mode == "complete" and result.snapshot == f"{mid}_pre"
    assert dump_tables(h.url) == h.after_first

    # Rows removed by a rollback come back when migrated again (nothing dedups them away).
    again = h.migrator.run(str(h.dest))
    assert again.success and again.total_tokens_migrated > 0
    assert_database_equals(b, analyse(h.dest))


@pytest.mark.slow
def test_data_only_and_schema_rollback_return_to_before_the_first_migration(
    target: Target, corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    h = two_migrations(target, corpus_small, tmp_path, checkpoint_interval=0)
    b = h.migrator.bridge
    history_before = dump_tables(h.url, HISTORY)

    result = rollback_migration(b, h.first.migration_id, "data-only")
    assert result.mode == "data-only"
    assert dump_tables(h.url) == {t: [] for t in DATA_TABLES}  # schema kept, data gone
    history = dump_tables(h.url, HISTORY)
    assert same_runs_but_state(history_before, history)
    # Every run's data is gone: each is shown rolled back.
    assert run_states(b) == {
        h.first.migration_id: "rolled_back",
        h.second.migration_id: "rolled_back",
    }
    assert rollback_runs(b) == [("completed", h.first.migration_id, "data-only")]
    assert b.get_migration_totals()["total_tokens"] == 0

    again = h.migrator.run(str(h.dest))
    assert again.success and again.files_processed == len(corpus_files(h.dest))
    assert_database_equals(b, analyse(h.dest))

    result = rollback_migration(b, again.migration_id, "schema")
    assert result.mode == "schema"
    assert owned_tables(h.url) == []  # as before anything was migrated
    assert not b.is_initialised()

    third = h.migrator.run(str(h.dest))
    assert third.success
    assert_database_equals(b, analyse(h.dest))


@pytest.mark.slow
def test_pruning_keeps_every_checkpoint_of_the_newest_migration_and_complete_rollbacks(
    target: Target, corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    keep = 3
    h = two_migrations(target, corpus_small, tmp_path, checkpoint_interval=1, keep_snapshots=keep)
    assert len(h.second.checkpoints) > keep and h.first.checkpoints
    with Database(h.url).session() as client:
        kept = list_snapshots(client)
        tables = client.query(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() "
            "AND position(name, '__snapshot_') > 0"
        ).result_rows[0][0]
        recorded = client.query(f"SELECT count() FROM {SNAPSHOTS} FINAL").result_rows[0][0]
    # Every checkpoint of the newest migration (the first one's went when the second
    # started), and the pre-run snapshots of the newest `keep` migrations.
    pre = {s.migration_id for s in kept if not s.checkpoint}
    assert pre == {h.first.migration_id, h.second.migration_id}
    assert [s.checkpoint for s in kept if s.checkpoint] == h.second.checkpoints
    assert {s.migration_id for s in kept if s.checkpoint} == {h.second.migration_id}
    assert tables == len(kept) * len(DATA_TABLES)  # pruned snapshots are dropped
    assert recorded == len(kept)
    # Every listed checkpoint can be returned to, and the whole migration can be undone.
    for cp in (h.second.checkpoints[0], h.second.checkpoints[-1]):
        rollback_migration(h.migrator.bridge, h.second.migration_id, "partial", cp)
        assert dump_tables(h.url) == h.at_checkpoint[cp]
    rollback_migration(h.migrator.bridge, h.second.migration_id, "complete")
    assert dump_tables(h.url) == h.after_first


@pytest.mark.slow
def test_the_rollback_command_confirms_and_names_unknown_migrations(
    target: Target, corpus_small: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    source = corpus_small[0] / "projects"
    files = corpus_files(source)
    dest = tmp_path / "claude" / "projects"
    url = target.new_url()
    write_part(source, dest, files, 0.5)
    run_json("migrate", "--source-dir", str(dest), url=url)
    after_first = dump_tables(url)
    write_rest(source, dest, files)
    second = run_json("migrate", "--source-dir", str(dest), url=url)["migration_id"]
    after_second = dump_tables(url)
    assert after_second != after_first

    # Not on a terminal and no --yes: refuse, change nothing.
    out = run_cli("rollback", "--migration-id", second, url=url)
    assert out.returncode != 0
    assert "--yes" in out.stderr
    assert dump_tables(url) == after_second

    # On a terminal: ask; anything but "yes" cancels.
    answer = on_terminal(("rollback", "--migration-id", second), url, "no\n")
    assert answer.returncode != 0
    assert "Type 'yes' to continue" in answer.stdout and "cancelled" in answer.stdout
    assert dump_tables(url) == after_second

    # An unknown migration: a clear error naming it, exit 1, nothing changed.
    out = run_cli("rollback", "--migration-id", "mig-does-not-exist", "--yes", url=url)
    assert out.returncode == 1
    message = " ".join(out.stderr.split())
    assert "Unknown migration id 'mig-does-not-exist'" in message, message
    assert "context-cleaner status" in message and "Traceback" not in message
    assert dump_tables(url) == after_second

    # No database at all: said so, and none is created to say it.
    nowhere = tmp_path / "no-database-here"
    out = run_cli("rollback", "--migration-id", second, "--yes", url=f"chdb://{nowhere}")
    assert out.returncode == 1
    assert "there is no database at" in " ".join(out.stderr.split()), out.stderr
    assert not nowhere.exists()

    done = run_json("rollback", "--migration-id", second, "--yes", url=url)
    assert done["mode"] == "complete" and done["snapshot"] == f"{second}_pre"
    assert dump_tables(url) == after_first


def on_terminal(args: tuple[str, ...], url: str, typed: str) -> subprocess.CompletedProcess[str]:
    """Run a command with a terminal as stdin, stdout and stderr, typing ``typed``."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        cli_command(*args),
        env=cli_env(url, COLUMNS="200"),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    sent = False
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not sent and b"continue:" in seen:
            os.write(master, typed.encode())
            sent = True
    os.close(master)
    code = proc.wait(timeout=60)
    return subprocess.CompletedProcess(args, code, seen.decode("utf-8", "replace"), "")


def _migrated_copy(fixtures_dir: Path, tmp_path: Path) -> tuple[Path, str, str, int]:
    """A copy of the fixtures migrated by the command: its projects folder, the database's
    URL, the run's id and the tokens the database holds."""
    import json
    import shutil

    projects = tmp_path / "projects"
    shutil.copytree(fixtures_dir / "projects", projects)
    url = f"chdb://{tmp_path}/db"
    first = run_cli("migrate", "--json", "--source-dir", str(projects), url=url)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    return projects, url, result["migration_id"], result["database_totals"]["total_tokens"]


def test_the_rollback_command_names_what_no_migrate_can_bring_back(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    """Claude Code deletes old transcripts; a rollback of their migration removes the only
    copy of their records. The command says so, with the tokens, before it asks (and with
    --yes), and a migrate after it indeed brings back only what is still on disk."""
    import json

    projects, url, run_id, total = _migrated_copy(fixtures_dir, tmp_path)
    # Nothing deleted: nothing to warn of.
    refused = run_cli("rollback", "--migration-id", run_id, url=url)
    assert refused.returncode == 1 and "Warning" not in refused.stderr, refused.stderr
    next(projects.rglob("tool_heavy.jsonl")).unlink()
    retained = json.loads(run_cli("validate", "--json", url=url).stdout)["retained"]["totals"]
    gone = retained["total_tokens"]
    assert gone > 0
    done = run_cli("rollback", "--yes", "--migration-id", run_id, url=url)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert f"Warning: this rollback removes {gone:,} tokens" in said, said
    assert "of 1 transcript(s) no longer on disk (deleted" in said
    again = run_cli("migrate", "--json", "--source-dir", str(projects), url=url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["database_totals"]["total_tokens"] == total - gone


def test_the_rollback_warning_counts_records_a_rewritten_transcript_no_longer_holds(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    """A transcript rewritten without some of its lines keeps their records in the database
    only (validation's retained history, earlier content). The warning counted deleted
    files alone: rolling back said nothing of these. A file replaced by a copy of itself
    (another inode, the same records) loses nothing and is not counted."""
    import json

    projects, url, run_id, total = _migrated_copy(fixtures_dir, tmp_path)
    rewritten = next(projects.rglob("tool_heavy.jsonl"))
    lines = rewritten.read_bytes().splitlines(keepends=True)
    rewritten.write_bytes(b"".join(lines[: len(lines) // 2]))  # in place: the same inode
    copied = sorted(p for p in projects.rglob("*.jsonl") if p != rewritten)[0]
    copied.with_suffix(".tmp").write_bytes(copied.read_bytes())
    os.replace(copied.with_suffix(".tmp"), copied)  # another inode, the same content
    report = json.loads(run_cli("validate", "--json", url=url).stdout)
    # Validation keeps every row of the rewritten file as earlier content (it compares no
    # bytes of it); the half still on disk comes back with the next migrate.
    retained = report["retained"]["totals"]["total_tokens"]
    done = run_cli("rollback", "--yes", "--migration-id", run_id, url=url)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    found = re.search(r"Warning: this rollback removes ([\d,]+) tokens \((\d+) records\)", said)
    assert found, said
    lost = int(found[1].replace(",", ""))
    assert 0 < lost < retained
    assert "of 1 transcript(s) no longer on disk (deleted, or rewritten without them)" in said
    again = run_cli("migrate", "--json", "--source-dir", str(projects), url=url)
    assert again.returncode == 0, again.stderr
    # What the warning named is exactly what no migrate brought back.
    assert json.loads(again.stdout)["database_totals"]["total_tokens"] == total - lost


def test_the_rollback_warning_counts_a_rewritten_transcript_a_sync_has_read_again(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a sync has read a rewritten transcript again, its tracking describes the new
    content and nothing looks rewritten any more; the records of its earlier content are
    still lost to a rollback of the migration that read them. The warning said nothing of
    them: the files with removed records are read and compared now. Past the read budget
    it counts deleted and rewritten files only, and says "at least"."""
    import json

    from context_cleaner.bridge import EnhancedTokenDatabaseBridge
    from context_cleaner.migration import rollback_warning

    projects, url, run_id, total = _migrated_copy(fixtures_dir, tmp_path)
    rewritten = next(projects.rglob("tool_heavy.jsonl"))
    lines = rewritten.read_bytes().splitlines(keepends=True)
    replacement = rewritten.with_suffix(".tmp")
    replacement.write_bytes(b"".join(lines[: len(lines) // 2]))
    os.replace(replacement, rewritten)
    synced = run_cli("sync", "--source-dir", str(projects), url=url)
    said_sync = " ".join((synced.stdout + synced.stderr).split())
    assert synced.returncode == 0 and "re-read from 0" in said_sync, said_sync
    bridge = EnhancedTokenDatabaseBridge(Database(url, lock_timeout=30))
    exact = rollback_warning.unrecoverable(bridge, run_id)
    assert exact is not None and exact.exact and exact.records > 0 and exact.files == 1
    monkeypatch.setattr(rollback_warning, "READ_BUDGET_BYTES", 0)
    bounded = rollback_warning.unrecoverable(bridge, run_id)
    assert bounded is not None and not bounded.exact and bounded.records == 0
    done = run_cli("rollback", "--yes", "--migration-id", run_id, url=url)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert f"Warning: this rollback removes {exact.tokens:,} tokens ({exact.records} " in said
    again = run_cli("migrate", "--json", "--source-dir", str(projects), url=url)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["database_totals"]["total_tokens"] == total - exact.tokens

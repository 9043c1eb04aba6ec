"""Retained history: rows of deleted files, of earlier generations of replaced or truncated
files and of other roots are counted and reported by validation, never a variance; a
database changed behind the tool's back still fails. Real files, the real engine, the CLI
as a subprocess where its output matters."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_cleaner.analysis.counter import EnhancedTokenCounter
from context_cleaner.analysis.discovery import discover
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.migration import comparison, validator
from context_cleaner.migration import migrate as migrate_module
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.ledger import Ledger, scan_committed

from .helpers import run_cli

pytestmark = pytest.mark.slow

#: A response of the fixtures' short.jsonl.
VICTIM = "msg_01MKH1ccEGrZGNPvu8pYiiQa"


def migrator(url: str) -> HistoricalDataMigrator:
    bridge = EnhancedTokenDatabaseBridge(Database(url, lock_timeout=30))
    return HistoricalDataMigrator(bridge_service=bridge, parallel_workers=1)


def analysed_total(*roots: Path) -> int:
    return EnhancedTokenCounter([str(r) for r in roots], workers=1).analyze().totals.total_tokens


@pytest.fixture
def real(tmp_path: Path, fixtures_dir: Path) -> Path:
    """A writable copy of the real transcripts (their ``projects/`` folder)."""
    target = tmp_path / "A" / "projects"
    shutil.copytree(fixtures_dir / "projects", target)
    return target


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


def test_deleted_transcript_is_retained_history_not_a_variance(real: Path, tmp_path: Path) -> None:
    """Before: "database 64,171,468 vs transcripts 52,044,432, variance 23%", for good."""
    url = f"chdb://{tmp_path}/db"
    first = run_cli("migrate", "--json", "--source-dir", str(real), url=url)
    assert first.returncode == 0, first.stderr
    total = json.loads(first.stdout)["database_totals"]["total_tokens"]
    victim = next(p for p in _files(real) if p.name == "tool_heavy.jsonl")
    victim_copy = tmp_path / "gone" / "projects" / victim.relative_to(real)
    victim_copy.parent.mkdir(parents=True)
    shutil.copy(victim, victim_copy)
    gone = analysed_total(tmp_path / "gone" / "projects")
    victim.unlink()  # Claude Code's cleanupPeriodDays
    out = run_cli("validate", "--json", url=url)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["passed"] and doc["token_variance"] == 0
    assert doc["database_totals"]["total_tokens"] == total
    assert doc["source_totals"]["total_tokens"] == total - gone
    retained = doc["retained"]
    assert retained["totals"]["total_tokens"] == gone > 0
    assert retained["files"] == 1 and retained["sessions"] == 1
    assert retained["oldest_day"] <= retained["newest_day"]
    assert set(retained["by_origin"]) == {"deleted"}
    human = run_cli("validate", url=url)
    assert human.returncode == 0
    text = " ".join(human.stdout.split())
    assert f"Retained history: {gone:,} tokens" in text and "not a variance" in text
    assert "Unexplained" not in text
    # The validation's run row counts the files found on disk and, of those, the tracked
    # ones (the dashboard showed "5/4 files" here before); the deleted one is named apart.
    on_disk = len(_files(real))
    runs = EnhancedTokenDatabaseBridge(Database(url)).migration_runs()
    checked = next(r for r in runs if r["run_kind"] == "validate")
    assert (checked["files_found"], checked["files_processed"]) == (on_disk, on_disk)
    assert checked["details"]["files_deleted"] == 1
    # Every later migrate validates too (it failed for good before).
    more = next(p for p in _files(real) if p.name == "short.jsonl")
    with more.open("ab") as f:
        f.write(more.read_bytes().splitlines(keepends=True)[-1].replace(b"msg_", b"msg_x"))
    again = run_cli("migrate", "--json", "--source-dir", str(real), url=url)
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["validation_passed"]


def test_replaced_and_truncated_files_keep_their_earlier_generation(
    real: Path, tmp_path: Path
) -> None:
    """Before: "Unexplained difference" after a file was replaced or truncated and rewritten."""
    url = f"chdb://{tmp_path}/db"
    m = migrator(url)
    assert m.run(str(real)).validation_passed
    before = m.bridge.get_migration_totals()["total_tokens"]
    short = next(p for p in _files(real) if p.name == "short.jsonl")
    heavy = next(p for p in _files(real) if p.name == "tool_heavy.jsonl")
    lines = short.read_bytes().splitlines(keepends=True)
    with short.open("r+b") as f:  # truncated and rewritten in place: same inode
        f.truncate(0)
        f.write(b"".join(lines[:3]))
    new = heavy.with_suffix(".new")  # replaced by another file (new inode)
    new.write_bytes(b"".join(heavy.read_bytes().splitlines(keepends=True)[:10]))
    os.replace(new, heavy)
    for stage in ("before sync", "after sync"):
        report = validator.validate_migration_integrity(m.bridge, None, tolerance=0.0)
        assert report.passed, (stage, report.explanations, report.differences)
        assert report.retained is not None
        assert "earlier_generation" in report.retained["by_origin"], stage
        db = report.database_totals["total_tokens"]
        retained = report.retained["totals"]["total_tokens"]
        compared = report.compared["totals"]["total_tokens"]
        assert db == compared + retained
        if stage == "before sync":
            assert db == before and report.pending["files_replaced"] == 2
            assert any("sync` reads the new content" in n for n in report.explanations)
            assert m.sync(str(real)).success
    assert report.pending["files_replaced"] == 0
    assert report.source_totals["total_tokens"] == analysed_total(real)


def test_second_root_migrates_and_validates(real: Path, tmp_path: Path) -> None:
    """Before: B's migration "Validation: FAILED (integrity 0.7579)", validation_passed=False,
    and `validate --source-dir B` called A's files "no longer on disk"."""
    b = tmp_path / "B" / "projects"
    for p in _files(real):
        target = b / str(p.relative_to(real)).replace("spotter", "other")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p.read_bytes().replace(b"msg_", b"msgB_").replace(b"req_", b"reqB_"))
    url = f"chdb://{tmp_path}/db"
    m = migrator(url)
    assert asyncio.run(m.migrate_all_historical_data(str(real))).validation_passed
    second = asyncio.run(migrator(url).migrate_all_historical_data(str(b)))
    assert second.validation_passed and second.data_integrity_score == 1.0
    assert second.consistency_check_results["mode"] == "this_run"
    out = run_cli("validate", "--json", "--source-dir", str(b), url=url)
    assert out.returncode == 0, out.stdout
    doc = json.loads(out.stdout)
    assert doc["retained"]["by_origin"].keys() == {"other_root"}
    assert doc["retained"]["totals"]["total_tokens"] == analysed_total(real)
    assert doc["source_totals"]["total_tokens"] == analysed_total(b)
    assert "no longer on disk" not in out.stdout
    both = run_cli("validate", "--json", url=url)  # every root this database tracks
    doc = json.loads(both.stdout)
    assert both.returncode == 0 and doc["retained"]["records"] == 0
    assert doc["compared"]["totals"]["total_tokens"] == analysed_total(real, b)
    assert sorted(doc["roots"]) == sorted([str(real), str(b)])


def _tamper(url: str, sql: str) -> None:
    with Database(url).session() as client:
        client.command(sql)


@pytest.mark.parametrize("how", ["deleted", "altered"])
def test_a_database_changed_behind_the_tools_back_still_fails(
    real: Path, tmp_path: Path, how: str
) -> None:
    url = f"chdb://{tmp_path}/db"
    m = migrator(url)
    assert m.run(str(real)).validation_passed
    next(p for p in _files(real) if p.name == "tool_heavy.jsonl").unlink()  # retained: fine
    victim = VICTIM
    if how == "deleted":
        _tamper(url, f"DELETE FROM enhanced_token_details WHERE message_id = '{victim}'")
    else:
        _tamper(
            url,
            "ALTER TABLE enhanced_token_details UPDATE output_tokens = output_tokens + 7 "
            f"WHERE message_id = '{victim}' SETTINGS mutations_sync = 2",
        )
    out = run_cli("validate", url=url)
    assert out.returncode == 1
    text = " ".join(out.stdout.split())
    assert "FAILED" in text and victim in text
    assert ("missing" if how == "deleted" else "altered") in text
    assert f"context-cleaner migrate --force --source-dir {real}" in text
    report = validator.validate_migration_integrity(m.bridge, None)
    assert not report.passed and report.retained["by_origin"].keys() == {"deleted"}
    # The advice works: every file on disk is read again; the retained history stays.
    fixed = run_cli("migrate", "--force", "--json", "--source-dir", str(real), url=url)
    assert fixed.returncode == 0, fixed.stdout
    again = validator.validate_migration_integrity(m.bridge, None, tolerance=0.0)
    assert again.passed and again.retained["totals"] == report.retained["totals"]


def test_a_migrations_own_check_reads_nothing_twice_and_catches_a_lost_row(
    real: Path, tmp_path: Path
) -> None:
    url = f"chdb://{tmp_path}/db"
    m = migrator(url)
    result = m.run(str(real))
    checked = result.consistency_check_results
    assert result.validation_passed and checked["mode"] == "this_run"
    assert checked["compared"]["bytes"] == sum(p.stat().st_size for p in _files(real))
    assert checked["compared"]["totals"]["total_tokens"] == analysed_total(real)
    found = [(f, f.size) for f in discover([real]).files]
    read: Ledger = scan_committed(found, workers=1)
    _tamper(url, f"DELETE FROM enhanced_token_details WHERE message_id = '{VICTIM}'")
    for whole_table in (False, True):  # the checksums differ: then key by key says which
        report = validator.validate_run(m.bridge, read, [str(real)], started_empty=whole_table)
        assert not report.passed and report.difference_counts == {"missing": 1}
        assert VICTIM in " ".join(report.explanations)


def test_a_migrations_own_ledger_names_a_row_changed_after_the_run(
    real: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's own (packed) ledger, compared in parts of a few records and places."""
    kept: list[Ledger] = []

    class Kept(Ledger):
        def __init__(self) -> None:
            super().__init__()
            kept.append(self)

    monkeypatch.setattr(migrate_module, "Ledger", Kept)
    url = f"chdb://{tmp_path}/db"
    m = migrator(url)
    assert m.run(str(real)).validation_passed
    [read] = kept
    assert read.held_bytes < sum(p.stat().st_size for p in _files(real)) // 10
    records = sum(len(part) for part in read.parts())
    monkeypatch.setattr(comparison, "PART_RECORDS", records // 3 + 1)  # three parts
    monkeypatch.setattr(validator, "PLACES_AT_ONCE", read.range_count // 3 + 1)
    report = validator.validate_run(m.bridge, read, [str(real)])
    assert report.passed and report.compared["records"] == records, report.explanations
    _tamper(
        url,
        "ALTER TABLE enhanced_token_details UPDATE output_tokens = output_tokens + 5 "
        f"WHERE message_id = '{VICTIM}' SETTINGS mutations_sync = 2",
    )
    for whole_table in (False, True):
        report = validator.validate_run(m.bridge, read, [str(real)], started_empty=whole_table)
        assert not report.passed and report.difference_counts == {"altered": 1}
        [difference] = report.differences
        assert difference["message_id"] == VICTIM
        assert difference["database_tokens"] == difference["source_tokens"] + 5
        assert VICTIM in " ".join(report.explanations)


def test_a_migration_whose_records_are_stored_from_a_preferred_copy_elsewhere_passes(
    tmp_path: Path,
) -> None:
    """The second folder repeats a response of the first with fewer tokens: rule 3 keeps the
    first folder's copy, so the rows at the places B's run read are not all B's records.
    The checksums differ; the key-by-key comparison finds the preferred copy: passed."""
    a, b = tmp_path / "A" / "projects" / "p", tmp_path / "B" / "projects" / "q"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "s1.jsonl").write_bytes(_response("m1", 50, "s1") + _response("m2", 5, "s1"))
    (b / "s2.jsonl").write_bytes(_response("m1", 20, "s2") + _response("m3", 7, "s2"))
    url = f"chdb://{tmp_path}/db"
    assert migrator(url).run(str(a.parent)).validation_passed
    second = migrator(url).run(str(b.parent))
    assert second.validation_passed, second.consistency_check_results["explanations"]
    assert second.consistency_check_results["superseded"]["records"] == 1


def test_unfinished_last_line_is_reported_as_such(real: Path, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/db"
    assert migrator(url).run(str(real)).validation_passed
    with next(p for p in _files(real) if p.name == "short.jsonl").open("ab") as f:
        f.write(b'{"type": "assistant", "message": {"id": "msg_torn"')
    out = run_cli("validate", url=url)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "last line not finished yet (50 bytes); counted once it ends" in text
    assert "not yet in the database" not in text


# -- property: random corpora with shared responses, deletions, replacements, tampering ------


def _response(mid: str, output: int, session: str, sidechain: bool = False) -> bytes:
    doc: dict[str, Any] = {
        "type": "assistant",
        "sessionId": session,
        "isSidechain": sidechain,
        "timestamp": "2026-01-05T10:00:00.000Z",
        "requestId": f"req_{mid}",
        "message": {
            "id": mid,
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 3, "output_tokens": output, "cache_read_input_tokens": 7},
        },
    }
    return json.dumps(doc).encode() + b"\n"


files_st = st.lists(
    st.lists(
        st.tuples(st.integers(0, 11), st.integers(1, 40), st.booleans()), min_size=1, max_size=6
    ),
    min_size=2,
    max_size=5,
)


@settings(
    max_examples=int(os.environ.get("RETAINED_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    files=files_st,
    replaced=files_st,
    deleted=st.sets(st.integers(0, 4)),
    tamper=st.sampled_from([None, "delete", "alter"]),
    data=st.data(),
)
def test_validation_passes_iff_the_database_was_not_tampered_with(
    tmp_path_factory: pytest.TempPathFactory,
    files: list[list[tuple[int, int, bool]]],
    replaced: list[list[tuple[int, int, bool]]],
    deleted: set[int],
    tamper: str | None,
    data: st.DataObject,
) -> None:
    """Files share responses (message ids 0-11, with different output counts: rule 3
    picks across files); some files are deleted, some replaced or truncated-and-rewritten,
    then synced; the database is tampered with or not. Validation passes exactly when it
    was not, and database = compared + retained whatever happened."""
    tmp = tmp_path_factory.mktemp("prop")
    root = tmp / "projects" / "p"
    root.mkdir(parents=True)
    url = f"chdb://{tmp}/db"

    def write(i: int, lines: list[tuple[int, int, bool]], mode: str = "wb") -> None:
        with (root / f"s{i}.jsonl").open(mode) as f:
            f.write(b"".join(_response(f"m{k}", out, f"s{i}", side) for k, out, side in lines))

    for i, lines in enumerate(files):
        write(i, lines)
    m = migrator(url)
    assert m.run(str(root.parent)).validation_passed
    for i in sorted(deleted):
        if i < len(files):
            (root / f"s{i}.jsonl").unlink()
    for i, lines in enumerate(replaced[: len(files)]):
        path = root / f"s{i}.jsonl"
        if not path.exists() or not data.draw(st.booleans(), label=f"replace s{i}"):
            continue
        if data.draw(st.booleans(), label="in place"):
            with path.open("r+b") as f:  # truncated and rewritten, same inode
                f.truncate(0)
                f.write(b"".join(_response(f"m{k}", o, f"s{i}", s) for k, o, s in lines))
        else:
            path.unlink()
            write(i, lines)
    assert migrator(url).sync(str(root.parent)).success
    report = validator.validate_migration_integrity(m.bridge, None, tolerance=0.0)
    assert report.passed, (report.explanations, report.differences)
    retained = report.retained["totals"]["total_tokens"] if report.retained else 0
    assert (
        report.database_totals["total_tokens"]
        == report.compared["totals"]["total_tokens"] + retained
    )
    on_disk = report.compared["records"] + report.superseded["records"]
    if tamper is None or not on_disk:
        return
    # A record on disk whose row is the disk's own copy: change or delete that row.
    rows = _own_rows(m, root.parent)
    if not rows:
        return
    mid = data.draw(st.sampled_from(rows), label="victim")
    if tamper == "delete":
        _tamper(url, f"DELETE FROM enhanced_token_details WHERE message_id = '{mid}'")
    else:
        _tamper(
            url,
            "ALTER TABLE enhanced_token_details UPDATE input_tokens = input_tokens + 1 "
            f"WHERE message_id = '{mid}' SETTINGS mutations_sync = 2",
        )
    after = validator.validate_migration_integrity(m.bridge, None, tolerance=0.0)
    assert not after.passed and sum(after.difference_counts.values()) >= 1


def _own_rows(m: HistoricalDataMigrator, root: Path) -> list[str]:
    """Message ids whose stored row is a line of a file on disk (its committed range): the
    same place *and* the same counts. A file replaced by a new one (or rewritten in place)
    may hold, at the same place, a response that an earlier copy there had with more tokens:
    rule 3 keeps that earlier copy, which is retained history, not the disk's row."""
    found = discover([root])
    tracked = {t.file_path: t.committed_offset for t in m.bridge.tracked_files()}
    read = scan_committed([(f, tracked.get(f.relative_path, 0)) for f in found.files], workers=1)
    where = {
        (r.file_path, r.byte_offset): (r.message_id, r.input_tokens, r.output_tokens)
        for r in read.records()
    }
    with m.bridge.database.session() as client:
        stored = client.query(
            "SELECT message_id, file_path, byte_offset, input_tokens, output_tokens "
            "FROM enhanced_token_details FINAL"
        ).result_rows
    return sorted({mid for mid, path, off, i, o in stored if where.get((path, off)) == (mid, i, o)})


def test_a_rewritten_file_whose_earlier_line_at_the_same_place_is_preferred(
    tmp_path: Path,
) -> None:
    """Found by the property above: a file truncated and rewritten in place whose new first
    line repeats a response of the old first line with fewer tokens. Rule 3 keeps the old
    copy, stored at the same file and offset: retained history, not an altered row."""
    root = tmp_path / "projects" / "p"
    root.mkdir(parents=True)
    f = root / "s1.jsonl"
    f.write_bytes(_response("m4", 30, "s1"))
    url = f"chdb://{tmp_path}/db"
    m = migrator(url)
    assert m.run(str(root.parent)).validation_passed
    with f.open("r+b") as out:
        out.truncate(0)
        out.write(_response("m4", 8, "s1") + _response("m5", 5, "s1"))
    assert migrator(url).sync(str(root.parent)).success
    report = validator.validate_migration_integrity(m.bridge, None, tolerance=0.0)
    assert report.passed, report.differences
    assert report.superseded["records"] == 1
    assert report.retained["by_origin"].keys() == {"earlier_generation"}


def test_months_of_use_keep_every_response_ever_written(real: Path, tmp_path: Path) -> None:
    """Migrate; append; Claude Code-style deletion of the oldest files; a file replaced; one
    truncated and rewritten; a second root; syncs in between. At the end the full validation
    passes, reports the retained history, and the database's totals equal an independent
    analysis of every byte ever committed (each generation of each file, archived)."""
    archive = tmp_path / "archive"
    generation = 0

    def keep(root: Path) -> None:
        """Archive every file's complete lines as they are now (what a sync commits)."""
        nonlocal generation
        generation += 1
        for p in _files(root):
            data = p.read_bytes()
            target = archive / f"g{generation}" / "projects" / root.name / p.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[: data.rfind(b"\n") + 1])

    url = f"chdb://{tmp_path}/db"
    assert migrator(url).run(str(real)).validation_passed
    keep(real)
    files = _files(real)
    oldest, replaced, rewritten = files[0], files[1], files[2]
    with oldest.open("ab") as f:  # appended, then synced
        f.write(_response("msg_day2", 40, "x") + _response("msg_torn", 1, "x")[:25])
    assert migrator(url).sync(str(real)).success
    keep(real)
    oldest.unlink()  # cleanupPeriodDays
    new = replaced.with_suffix(".new")
    new.write_bytes(_response("msg_new_1", 12, "r") + _response("msg_day2", 41, "r"))
    os.replace(new, replaced)
    with rewritten.open("r+b") as f:
        head = f.read(4096)
        f.seek(0)
        f.truncate(0)
        f.write(head[: head.rfind(b"\n") + 1] + _response("msg_rw", 9, "w"))
    assert migrator(url).sync(str(real)).success
    keep(real)
    b = tmp_path / "B" / "projects" / "p"
    b.mkdir(parents=True)
    (b / "s.jsonl").write_bytes(_response("msg_b1", 5, "s") + _response("msg_new_1", 30, "s"))
    assert migrator(url).run(str(b.parent)).validation_passed
    keep(b.parent)
    with (b / "s.jsonl").open("ab") as f:
        f.write(_response("msg_b2", 6, "s"))
    assert migrator(url).sync(str(b.parent)).success
    keep(b.parent)
    m = migrator(url)
    report = validator.validate_migration_integrity(m.bridge, None, full_validation=True)
    assert report.passed, (report.explanations, report.differences)
    assert report.retained is not None and report.retained["records"] > 0
    assert {"deleted", "earlier_generation"} <= report.retained["by_origin"].keys()
    everything = [archive / g / "projects" for g in sorted(os.listdir(archive))]
    roots = [r / name for r in everything for name in os.listdir(r)]
    expected = EnhancedTokenCounter([str(r) for r in roots], workers=1).analyze().totals
    db = report.database_totals
    for k in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"):
        assert db[k] == getattr(expected, k), k
    out = run_cli("validate", "--full-validation", url=url)
    assert out.returncode == 0 and "Retained history:" in out.stdout


def test_cli_migrate_of_a_second_folder_prints_validation_passed(
    real: Path, tmp_path: Path
) -> None:
    """Before: "Validation: FAILED (integrity 0.7579)" and exit 1 for the second folder."""
    b = tmp_path / "B" / "projects" / "q"
    b.mkdir(parents=True)
    (b / "s.jsonl").write_bytes(_response("msg_b1", 5, "s") + _response("msg_b2", 6, "s"))
    url = f"chdb://{tmp_path}/db"
    assert run_cli("migrate", "--source-dir", str(real), url=url).returncode == 0
    out = run_cli("migrate", "--source-dir", str(b.parent), url=url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Validation: passed (integrity 1.0000)" in " ".join(out.stdout.split())

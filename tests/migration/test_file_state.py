"""The one file classifier (synced, behind, unfinished, replaced, truncated, deleted, error),
on real files, and the surfaces that use it: status, the dashboard, the sync's plan."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from context_cleaner.analysis.discovery import discover
from context_cleaner.analysis.reader import head_digest, head_matches
from context_cleaner.bridge.database import Database
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
from context_cleaner.dashboard import health
from context_cleaner.migration import file_state
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.migration.planning import plan_work

from .helpers import run_cli


def line(message_id: str, output: int, session: str = "s1") -> bytes:
    doc = {
        "type": "assistant",
        "sessionId": session,
        "timestamp": "2026-01-05T10:00:00.000Z",
        "requestId": f"req_{message_id}",
        "message": {
            "id": message_id,
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "x" * 40}],
            "usage": {"input_tokens": 10, "output_tokens": output, "cache_read_input_tokens": 5},
        },
    }
    return json.dumps(doc).encode() + b"\n"


def migrator(url: str) -> HistoricalDataMigrator:
    bridge = EnhancedTokenDatabaseBridge(Database(url, lock_timeout=30))
    return HistoricalDataMigrator(bridge_service=bridge, parallel_workers=1)


@pytest.fixture
def synced(tmp_path: Path) -> tuple[HistoricalDataMigrator, Path, dict[str, Path]]:
    root = tmp_path / "projects"
    folder = root / "-home-u-p"
    folder.mkdir(parents=True)
    files = {}
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        files[name] = folder / f"{name}.jsonl"
        count = 40 if name == "f" else 2  # f: longer than the 4 KiB head the identity hashes
        files[name].write_bytes(b"".join(line(f"{name}{i}", i, name) for i in range(1, count + 1)))
    m = migrator(f"chdb://{tmp_path}/db")
    assert m.run(str(root)).validation_passed
    return m, root, files


def states(m: HistoricalDataMigrator, root: Path) -> dict[str, file_state.ClassifiedFile]:
    found = discover([root])
    return {
        Path(c.file_path).stem: c for c in file_state.classify_all(m.bridge.tracked_files(), found)
    }


def test_every_state_on_real_files(
    synced: tuple[HistoricalDataMigrator, Path, dict[str, Path]],
) -> None:
    m, root, files = synced
    with files["b"].open("ab") as out:  # behind: a complete line, then a torn one
        out.write(line("b3", 3, "b") + b'{"type": "assis')
    with files["c"].open("ab") as out:  # unfinished: only a torn line
        out.write(b'{"type": "assistant", "mess')
    replacement = files["d"].with_suffix(".new")  # replaced: another inode at the path
    replacement.write_bytes(line("d9", 9, "d"))
    os.replace(replacement, files["d"])
    files["e"].write_bytes(line("e1", 1, "e")[:30] + b"\n")  # truncated, same inode
    data = files["f"].read_bytes()  # rewritten in place: same head, no line ends there now
    files["f"].write_bytes(data[:-5] + b"XXXXXXXXXX\n")
    files["g"].unlink()  # deleted
    (root / "-home-u-p" / "new.jsonl").write_bytes(line("n1", 1, "new"))  # new: behind
    got = states(m, root)
    assert {k: v.state for k, v in got.items()} == {
        "a": "synced",
        "b": "behind",
        "c": "unfinished",
        "d": "replaced",
        "e": "truncated",
        "f": "truncated",
        "g": "deleted",
        "new": "behind",
    }
    assert got["b"].pending_bytes == len(line("b3", 3, "b"))
    assert got["b"].unfinished_bytes == len(b'{"type": "assis')
    assert got["c"].pending_bytes == 0 and got["c"].unfinished_bytes == 27
    assert got["c"].describe() == "last line not finished yet: 27 bytes; counted once it ends"
    assert "sync" not in got["c"].describe()
    assert "rewritten" in got["f"].reason and got["new"].is_new
    # The views (status, the dashboard) take a file that stats as committed without reading
    # it: they tell every state as the reading classifier does.
    viewed = file_state.classify_all(m.bridge.tracked_files(), discover([root]), stamps=True)
    assert {Path(c.file_path).stem: c for c in viewed} == got
    # The sync's plan agrees: each replaced/truncated file is read again from 0.
    found = discover([root])
    plan = plan_work(
        found.files, {(t.source_root, t.file_path): t for t in m.bridge.tracked_files()}
    )
    reset = {Path(f.relative_path).stem for f, _ in plan.reset}
    assert reset == {"d", "e", "f"}
    read = {Path(i.file.relative_path).stem for i in plan.items}
    assert read == {"b", "c", "d", "e", "f", "new"}  # c: read, nothing complete to commit


def test_the_views_read_no_file_that_stats_as_committed(
    synced: tuple[HistoricalDataMigrator, Path, dict[str, Path]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``status`` on 20,000 files read the head of every one (~0.3 s; docs/benchmarks.md).
    The views open only the files whose stamp moved; validation and planning still read
    every head, so a file rewritten to its size with its time put back is found there."""
    m, root, files = synced
    with files["b"].open("ab") as out:
        out.write(line("b3", 3, "b"))
    a = files["a"]
    before = a.stat()
    a.write_bytes(a.read_bytes().replace(b"a1", b"zz"))  # same size, another head
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
    opened: list[str] = []
    for name in ("open_fd", "open_regular"):  # every way the classifier opens a file
        real = getattr(file_state, name)

        def counting(path: str, real: Any = real) -> Any:
            opened.append(Path(path).stem)
            return real(path)

        monkeypatch.setattr(file_state, name, counting)
    tracked = m.bridge.tracked_files()
    viewed = {
        Path(c.file_path).stem: c.state
        for c in file_state.classify_all(tracked, discover([root]), stamps=True)
    }
    assert set(opened) == {"b"}  # only the appended file: its head, its last complete line
    assert viewed["a"] == "synced" and viewed["b"] == "behind"
    dashboard = health.file_freshness(health.on_disk(tracked))
    assert dashboard["files_behind"] == 1 and dashboard["files_synced"] == 6
    opened.clear()
    read = {
        Path(c.file_path).stem: c.state for c in file_state.classify_all(tracked, discover([root]))
    }
    assert read["a"] == "replaced" and read["b"] == "behind"
    assert set(opened) == set(files)  # every head read


def test_a_file_whose_last_read_failed_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    (root / "p").mkdir(parents=True)
    f = root / "p" / "s.jsonl"
    f.write_bytes(line("m1", 1))
    [found] = discover([root]).files
    from context_cleaner.bridge.tracking import TrackedFile

    t = TrackedFile(
        str(root), "p/s.jsonl", found.device, found.inode, "", 0, 0, 1,
        found.size, found.mtime_ns, "failed", "cannot read: Permission denied", "m", 0.0, 0,
    )  # fmt: skip
    c = file_state.classify(t, found)
    assert c.state == "error" and "Permission denied" in c.describe()


@pytest.mark.slow
def test_status_and_dashboard_describe_an_unfinished_line_as_what_it_is(
    synced: tuple[HistoricalDataMigrator, Path, dict[str, Path]], tmp_path: Path
) -> None:
    """Before: "N bytes not yet in the database ... run context-cleaner sync", forever."""
    m, root, files = synced
    with files["a"].open("ab") as out:
        out.write(b'{"type": "assistant", "mess')
    url = f"chdb://{tmp_path}/db"
    assert run_cli("sync", "--source-dir", str(root), url=url).returncode == 0
    shown = run_cli("status", url=url)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "last line not finished yet: 27 bytes; counted once it ends" in text
    assert "1 unfinished" in text
    payload = json.loads(run_cli("status", "--json", url=url).stdout)
    [row] = [f for f in payload["files"] if f["path"].endswith("a.jsonl")]
    assert row["state"] == "unfinished" and row["unfinished_bytes"] == 27
    assert row["pending_bytes"] == 0
    assert payload["file_counts"]["unfinished"] == 1 and payload["file_counts"]["behind"] == 0
    fresh = health.file_freshness(health.on_disk(m.bridge.tracked_files()))
    assert fresh["files_behind"] == 0 and fresh["bytes_behind"] == 0
    assert fresh["files_unfinished"] == 1 and fresh["bytes_unfinished"] == 27
    alerts: list[dict[str, Any]] = health.alerts([], fresh, None)
    assert not any("sync" in a["message"] for a in alerts)


@pytest.mark.slow
def test_status_and_dashboard_agree_on_a_file_rewritten_to_the_same_size(
    synced: tuple[HistoricalDataMigrator, Path, dict[str, Path]],
) -> None:
    """Before: the dashboard compared sizes only, so a file replaced by another of the same
    size was "fresh" there and "replaced" in status."""
    m, root, files = synced
    size = files["a"].stat().st_size
    other = files["a"].with_suffix(".tmp")
    other.write_bytes(line("z1", 1, "a") + line("z2", 2, "a"))
    assert other.stat().st_size == size
    os.replace(other, files["a"])
    fresh = health.file_freshness(health.on_disk(m.bridge.tracked_files()))
    assert fresh["files_replaced"] == 1
    assert states(m, root)["a"].state == "replaced"
    # What status says of it: its committed bytes were of the earlier content.
    shown = run_cli("status", url=f"chdb://{root.parent}/db")
    text = " ".join(shown.stdout.split())
    assert f"a.jsonl: {size:,} bytes committed of its earlier content, {size:,} on disk now" in (
        text
    ), text


def test_identity_hashes_are_sha256_and_an_earlier_versions_blake2b_still_matches(
    tmp_path: Path,
) -> None:
    """The identity hash went from BLAKE2b (32 hex digits) to SHA-256 (64): a hash either
    version stored describes its bytes; other bytes match neither."""
    data = line("m1", 1) * 3
    new = head_digest(data)
    assert new == hashlib.sha256(data).hexdigest() and len(new) == 64
    old = hashlib.blake2b(data, digest_size=16).hexdigest()
    assert head_matches(data, new) and head_matches(data, old)
    changed = data.replace(b"m1", b"m2", 1)
    assert not head_matches(changed, new) and not head_matches(changed, old)
    assert not head_matches(data, "") and not head_matches(data, old[:-1])


@pytest.mark.slow
def test_a_database_an_earlier_version_filled_keeps_its_files(
    synced: tuple[HistoricalDataMigrator, Path, dict[str, Path]],
) -> None:
    """Tracking rows whose identity hashes are BLAKE2b (what versions before SHA-256 stored)
    still describe their files: nothing is read again, an appended line is read alone, and a
    head rewritten to the same size is still found replaced."""
    m, root, files = synced
    with m.bridge.database.session() as client:
        for t in m.bridge.tracked_files():
            head = (root / t.file_path).read_bytes()[: t.head_length]
            old = hashlib.blake2b(head, digest_size=16).hexdigest()
            client.command(
                "ALTER TABLE migration_file_tracking UPDATE file_hash = {h:String} "
                "WHERE file_path = {p:String} SETTINGS mutations_sync = 1",
                parameters={"h": old, "p": t.file_path},
            )
    assert {len(t.head_hash) for t in m.bridge.tracked_files()} == {32}
    assert {s.state for s in states(m, root).values()} == {"synced"}
    assert m.sync(str(root)).records_inserted == 0
    with files["f"].open("ab") as out:  # f's head is a full 4 KiB
        out.write(line("f99", 99, "f"))
    result = m.sync(str(root))
    assert (result.records_inserted, result.files_changed, result.files_reset) == (1, 1, 0)
    assert result.bytes_read == len(line("f99", 99, "f"))
    size = files["a"].stat().st_size
    files["a"].write_bytes(line("z1", 1, "a") + line("z2", 2, "a"))
    assert files["a"].stat().st_size == size
    assert states(m, root)["a"].state == "replaced"

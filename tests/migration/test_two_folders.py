"""One file tracked under two folders (a projects folder and one of its projects, or a
folder and a link to it): status, the dashboard and validation count it once, as the
folder that read it furthest, and never say "behind, run sync" for a copy no sync reads.

Before: after `migrate --source-dir <a project>` then `--source-dir <projects>` and an
append, `status` said "10 file(s) tracked: 9 synced, 1 behind ... run `context-cleaner
sync`" for good, the dashboard "Files behind 1", validation "1 file(s) have 493 byte(s)
of complete lines not yet in the database". Real files, the real engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from context_cleaner.bridge import TrackedFile
from context_cleaner.migration import file_state

from .helpers import run_cli

pytestmark = pytest.mark.slow


def tracked(root: Path | str, rel: str, offset: int) -> TrackedFile:
    return TrackedFile(
        str(root), rel, 1, 2, "", 0, offset, 1, offset, 0, "completed", "", "m", 0.0, 0
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    inner=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    outer=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    linked=st.booleans(),
)
def test_each_file_is_kept_once_as_the_row_read_furthest(
    tmp_path: Path, inner: list[int], outer: list[int], linked: bool
) -> None:
    projects = tmp_path / "projects"
    project = projects / "-home-u-p"
    project.mkdir(parents=True, exist_ok=True)
    other = tmp_path / "elsewhere"
    other.mkdir(exist_ok=True)
    alias = tmp_path / "alias"
    if not alias.exists():
        alias.symlink_to(project)
    # The inner root: the project folder itself, or a link to it; files s0..s3.
    inner_root = alias if linked else project
    rows = [tracked(inner_root, f"s{n}.jsonl", 10 * (n + 1) + k) for k, n in enumerate(set(inner))]
    rows += [tracked(projects, f"-home-u-p/s{n}.jsonl", 10 * (n + 1)) for n in set(outer)]
    rows += [tracked(other, "-x/s0.jsonl", 5)]  # another folder: never touched
    kept, left_out = file_state.counted_once(rows)
    assert left_out == len(rows) - len(kept) == len(set(inner) & set(outer))
    assert tracked(other, "-x/s0.jsonl", 5) in kept
    for n in set(inner) | set(outer):
        copies = [
            t for t in kept if t.file_path.endswith(f"s{n}.jsonl") and t.source_root != str(other)
        ]
        assert len(copies) == 1
        both = [
            t for t in rows if t.file_path.endswith(f"s{n}.jsonl") and t.source_root != str(other)
        ]
        assert copies[0].committed_offset == max(t.committed_offset for t in both)
        if len(both) == 2 and both[0].committed_offset == both[1].committed_offset:
            assert copies[0].source_root == str(projects)  # a tie: the outer folder's row
    assert file_state.counted_once(kept) == (kept, 0)


def test_two_names_of_one_folder_keep_one_row_either_way(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    for a, b in ((5, 5), (5, 9), (9, 5)):
        rows = [tracked(real, "-p/s.jsonl", a), tracked(link, "-p/s.jsonl", b)]
        for order in (rows, rows[::-1]):
            kept, left_out = file_state.counted_once(order)
            assert left_out == 1 and [t.committed_offset for t in kept] == [max(a, b)]
            if a == b:
                assert kept[0].source_root == min(str(real), str(link))


def _append_usage(path: Path, message_id: str) -> int:
    """Append a copy of the file's last usage line under a new id; returns its bytes."""
    last = next(
        line
        for line in reversed(path.read_bytes().splitlines(keepends=True))
        if b'"usage"' in line and b'"message"' in line
    )
    doc = json.loads(last)
    doc["message"]["id"] = message_id
    doc["requestId"] = f"req_{message_id}"
    data = (json.dumps(doc) + "\n").encode()
    with path.open("ab") as f:
        f.write(data)
    return len(data)


def _freshness(url: str) -> dict[str, int]:
    """The dashboard's freshness figures of the database (``/api/health``'s)."""
    from context_cleaner.bridge import Database, EnhancedTokenDatabaseBridge
    from context_cleaner.dashboard import health

    bridge = EnhancedTokenDatabaseBridge(Database(url))
    return health.file_freshness(health.on_disk(bridge.tracked_files()))


def test_a_project_folder_then_its_projects_folder(tmp_path: Path, fixtures_dir: Path) -> None:
    projects = tmp_path / "projects"
    shutil.copytree(fixtures_dir / "projects", projects)
    [project] = [p for p in projects.iterdir() if p.is_dir()]
    url = f"chdb://{tmp_path}/db"
    files = len(list(projects.rglob("*.jsonl")))
    first = run_cli("migrate", "--json", "--source-dir", str(project), url=url)
    assert first.returncode == 0, first.stderr
    second = run_cli("migrate", "--json", "--source-dir", str(projects), url=url)
    assert second.returncode == 0, second.stderr
    totals = json.loads(first.stdout)["database_totals"]["total_tokens"]
    assert json.loads(second.stdout)["database_totals"]["total_tokens"] == totals  # counted once
    short = next(projects.rglob("short.jsonl"))
    _append_usage(short, "msg_two_folders_1")
    synced = run_cli("sync", "--json", "--source-dir", str(projects), url=url)
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["records_inserted"] == 1

    status = run_cli("status", "--json", url=url)
    payload = json.loads(status.stdout)
    assert len(payload["files"]) == files
    assert payload["file_counts"]["synced"] == files and payload["file_counts"]["behind"] == 0
    assert payload["rows_of_another_folder"] == files
    human = " ".join(run_cli("status", url=url).stdout.split())
    assert f"{files} file(s) tracked: {files} synced" in human
    assert f"{files} file(s) also tracked under another folder" in human
    assert "run `context-cleaner sync`" not in human

    fresh = _freshness(url)
    assert fresh["files_tracked"] == files and fresh["files_behind"] == 0

    checked = run_cli("validate", "--json", url=url)
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["passed"], checked.stdout
    assert report["tracked_files"] == files
    assert report["pending"]["files_behind"] == 0
    assert not any("not yet in the database" in e for e in report["explanations"])

    # The project folder read again on its own moves its rows ahead: now they count.
    _append_usage(short, "msg_two_folders_2")
    alone = run_cli("sync", "--json", "--source-dir", str(project), url=url)
    assert alone.returncode == 0, alone.stderr
    payload = json.loads(run_cli("status", "--json", url=url).stdout)
    assert payload["file_counts"]["behind"] == 0 and len(payload["files"]) == files
    [row] = [f for f in payload["files"] if f["path"].endswith("short.jsonl")]
    assert (row["source_root"], row["path"]) == (str(project), "short.jsonl"), row
    # Validated as the projects folder alone, its own rows are what it reports: the
    # project folder's (further) rows are not compared there, so none of its is left out.
    outer_only = run_cli("validate", "--json", "--source-dir", str(projects), url=url)
    report = json.loads(outer_only.stdout)
    assert outer_only.returncode == 0 and report["passed"], outer_only.stdout
    assert report["tracked_files"] == files
    assert report["pending"]["files_behind"] == 1  # what a sync of that folder reads next

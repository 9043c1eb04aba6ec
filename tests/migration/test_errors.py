"""Errors (issue 3, item 10): a clear message, a non-zero exit, a consistent, resumable database.

A database locked by another process, a transcript this process may not read, a
server that is not there, and a database that disagrees with the transcripts.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from context_cleaner.bridge import Database
from context_cleaner.migration.validator import validate_migration_integrity

from .conftest import Target
from .helpers import (
    REPO,
    analyse,
    assert_database_equals,
    bridge,
    cli_command,
    cli_env,
    dump_tables,
    run_cli,
    run_json,
)

pytestmark = pytest.mark.slow

HOLD = """
import sys, time
from pathlib import Path
from context_cleaner.bridge import Database
from context_cleaner.migration.validator import validate_migration_integrity
with Database(sys.argv[1]).session() as client:
    client.query("SELECT 1")
    Path(sys.argv[2]).write_text("ready")
    time.sleep(120)
"""


def test_a_locked_database_names_its_holder_and_the_run_resumes_after(
    target: Target, fixtures_dir: Path, tmp_path: Path
) -> None:
    if target.kind != "chdb":
        pytest.skip("only the embedded database is locked by a process")
    url = target.new_url()
    run_json("migrate", "--source-dir", str(fixtures_dir), url=url)
    before = dump_tables(url)
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, url, str(ready)],
        env=cli_env(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None, holder.communicate()[1]
            assert time.monotonic() < deadline, "the holder did not get the database"
            time.sleep(0.05)
        out = run_cli(
            "migrate",
            "--source-dir",
            str(fixtures_dir),
            env=cli_env(url, CONTEXT_CLEANER_LOCK_TIMEOUT="1"),
        )
        assert out.returncode != 0
        message = " ".join(out.stderr.split())
        assert f"process {holder.pid}" in message, out.stderr
        assert "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert dump_tables(url) == before  # nothing half-written
    again = run_json("migrate", "--source-dir", str(fixtures_dir), url=url)
    assert again["success"] and again["total_records_inserted"] == 0
    assert_database_equals(bridge(url), analyse(fixtures_dir))


def test_an_unreadable_transcript_fails_the_run_clearly_and_is_read_once_readable(
    target: Target, fixtures_dir: Path, tmp_path: Path
) -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is missing: cannot take file-mode overrides from root")
    source = tmp_path / "claude" / "projects"
    shutil.copytree(fixtures_dir / "projects", source)
    locked = next(source.rglob("tool_heavy.jsonl"))
    locked.chmod(0)
    url = target.new_url()
    # As root, file modes do not apply; without these capabilities they do.
    command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]
    out = subprocess.run(
        [*command, *cli_command("migrate", "--source-dir", str(source), "--json")],
        env=cli_env(url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    if out.returncode != 0 and not out.stdout.strip():
        pytest.skip(f"cannot drop capabilities here: {out.stderr[-300:]}")
    result = json.loads(out.stdout)
    assert out.returncode != 0
    assert result["success"] is False and result["files_failed"] == 1
    assert result["files_processed"] == 4
    assert any(str(locked) in e and "Permission denied" in e for e in result["errors"])
    assert result["skipped_files"] == [str(locked)]

    # The other files are in, exactly; the unreadable one is not.
    locked.chmod(0o644)
    held = tmp_path / "held"
    held.mkdir()
    shutil.move(locked, held / locked.name)
    assert_database_equals(bridge(url), analyse(source))
    shutil.move(held / locked.name, locked)

    # Readable again: the next run reads it (and only it).
    again = run_json("migrate", "--source-dir", str(source), url=url)
    assert again["success"] and again["files_processed"] == 1
    assert again["files_skipped"] == 4
    assert_database_equals(bridge(url), analyse(source))


def test_an_unreachable_server_fails_without_showing_the_password(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://someone:secret@127.0.0.1:{port}/db"
    out = run_cli(
        "migrate",
        "--source-dir",
        str(fixtures_dir),
        "--clickhouse-url",
        url,
        env=cli_env(f"chdb://{tmp_path}/unused"),
    )
    assert out.returncode != 0
    assert "secret" not in out.stdout + out.stderr
    message = " ".join(out.stderr.split())
    assert f"127.0.0.1:{port}" in message and "Traceback" not in message
    assert not (tmp_path / "unused").exists()
    # What the user reads: a note per retry and one error line, each naming the cause in
    # the system's words; not the driver's own log lines or its wrapped exceptions.
    lines = out.stderr.splitlines()
    notes = [line for line in lines if line.startswith(f"ClickHouse at 127.0.0.1:{port}")]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(notes) == 3 and all("Connection refused; retrying in" in n for n in notes), lines
    assert len(errors) == 1 and "after 4 attempts" in errors[0], lines
    assert len(lines) == 4, lines
    assert "Connection refused. Check that the server is running" in message
    assert "Unexpected Http Driver Exception" not in message
    assert "HTTPConnectionPool" not in message


def test_the_validator_fails_on_a_tampered_database_and_explains(
    target: Target, fixtures_dir: Path
) -> None:
    url = target.new_url()
    run_json("migrate", "--source-dir", str(fixtures_dir), url=url)
    args = ("--source-dir", str(fixtures_dir), "--full-validation", "--tolerance", "0.001")
    module = "context_cleaner.migration.validator"
    untouched = validate_migration_integrity(
        bridge(url), [str(fixtures_dir)], full_validation=True, tolerance=0.001
    )
    assert untouched.passed and untouched.token_variance == 0

    extra = 1_000_000  # 6.4% of the fixtures' 15,537,336 tokens: far above 0.1%
    with Database(url).session() as client:
        client.insert(
            "enhanced_token_details",
            [
                [
                    "msg_tampered",
                    "req_tampered",
                    1,
                    "tampered-session",
                    "-home-u-x",
                    "-home-u-x/tampered-session.jsonl",
                    datetime(2026, 2, 11, tzinfo=UTC),
                    "claude-opus-4-6",
                    extra,
                ]
            ],
            column_names=[
                "message_id",
                "request_id",
                "ver",
                "session_id",
                "project",
                "file_path",
                "timestamp",
                "model",
                "input_tokens",
            ],
        )
    out = run_cli(*args, module=module, url=url)
    assert out.returncode != 0
    text = " ".join(out.stdout.split())
    assert "FAILED" in text
    assert "unaccounted: -home-u-x/tampered-session.jsonl" in text
    assert "transcripts 0, database 1,000,000 tokens" in text
    assert f"Unexplained difference of +{extra:,} tokens" in text
    assert "summary table disagrees" in text

    report = run_json(*args, module=module, url=url, ok=False)
    assert report["passed"] is False
    assert report["token_variance"] == extra
    assert report["database_sessions"] == report["source_sessions"] + 1
    assert [m["session_id"] for m in report["session_mismatches"]] == ["tampered-session"]


def test_a_damaged_database_says_so_and_what_to_do(tmp_path: Path, fixtures_dir: Path) -> None:
    """Bytes of the database's own files overwritten (a disk error, a copy taken mid-write):
    each command ends with one error naming the damage and the two ways back, not the
    engine's checksum message alone."""
    db = tmp_path / "db"
    url = f"chdb://{db}"
    run_json("migrate", "--source-dir", str(fixtures_dir), url=url)
    for data in db.rglob("data.bin"):
        with data.open("r+b") as f:
            f.seek(data.stat().st_size // 2)
            f.write(b"garbage-garbage")
    for command in (("report", "daily"), ("status",), ("validate",)):
        out = run_cli(*command, url=url)
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
        assert "DB::Exception" in lines[0], lines  # the engine's own words are kept
        assert "The database's files are damaged" in lines[0], lines[0]
        assert "run `context-cleaner migrate` to build it again" in lines[0], lines[0]


def test_a_damaged_table_definition_says_the_engine_could_not_start_and_why(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    db = tmp_path / "db"
    url = f"chdb://{db}"
    run_json("migrate", "--source-dir", str(fixtures_dir), url=url)
    definition = next(db.glob("store/*/*/counted_token_details.sql"))
    definition.write_text("garbage (\n")
    out = run_cli("status", url=url)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Cannot parse definition from metadata file" in out.stderr  # the engine's line
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: The embedded engine could not start on {db}"), last
    assert "restore the folder from a copy" in last and "Traceback" not in out.stderr


def test_a_time_zone_the_engine_does_not_know_is_named(tmp_path: Path) -> None:
    """The engine refuses to load under a ``TZ`` it does not know, and chDB reports that
    as "engine not found": the message said clickhouse-connect needed reinstalling."""
    url = f"chdb://{tmp_path}/db"
    out = run_cli("status", url=url, env=cli_env(url, TZ="Garbage/Zone"))
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert lines == [
        "error: The embedded engine cannot start with TZ='Garbage/Zone': it does not know that "
        "time zone. Set TZ to an IANA name (TZ=Europe/Berlin) or unset it (reports choose "
        "their days with --timezone)."
    ], out.stderr
    assert run_cli("status", url=url, env=cli_env(url, TZ="Europe/Berlin")).returncode == 0

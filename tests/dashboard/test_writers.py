"""Writers and a polled dashboard share the embedded database; writers come first.

Real processes throughout: a uvicorn dashboard (``context-cleaner dashboard``),
client processes requesting the page's endpoints back-to-back (``_poller.py``),
``context-cleaner migrate`` / ``sync`` subprocesses, and a helper process that holds
the database the way a long migration does. Nothing here measures time: how much
slower the writers are with clients polling is measured in
``benchmarks/dashboard_bench.py`` (``--only dashboard_writers``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import REPO, Server, cli_env, migrate_copy, run_cli

from context_cleaner.bridge.lock import read_holder

POLLER = Path(__file__).with_name("_poller.py")
CLIENTS = 4
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=300) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _totals(totals: dict[str, Any]) -> dict[str, int]:
    return {k: int(totals[k]) for k in (*TOKEN_KEYS, "total_tokens")}


def _append_responses(folder: Path, count: int) -> None:
    """Append ``count`` new assistant responses (copies of one with new ids) to a file."""
    target = next(folder.rglob("short.jsonl"))
    template = None
    for line in target.read_text().splitlines():
        doc = json.loads(line)
        message = doc.get("message")
        if doc.get("type") == "assistant" and isinstance(message, dict) and message.get("usage"):
            template = doc
            break
    assert template is not None
    with target.open("a") as f:
        for i in range(count):
            doc = json.loads(json.dumps(template))
            doc["message"]["id"] = f"msg_writers_{i}"
            doc["requestId"] = f"req_writers_{i}"
            doc["uuid"] = f"00000000-0000-4000-8000-{i:012d}"
            f.write(json.dumps(doc) + "\n")


def _until_fresh(base: str, total: int | None) -> int:
    """Ask for the overview until it is read afresh (and shows ``total`` when given)."""
    deadline = time.monotonic() + 120
    while True:
        status, doc = _get(base + "/api/overview")
        assert status == 200, doc
        got = int(doc["totals"]["total_tokens"])
        if not doc["stale"] and (total is None or got == total):
            return got
        assert time.monotonic() < deadline, f"no fresh answer showing {total}: {doc}"
        time.sleep(0.05)


class Clients:
    """``CLIENTS`` poller processes against one dashboard."""

    def __init__(self, base: str, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder
        self.stop_file = folder / "stop"
        self.outs = [folder / f"client{i}.json" for i in range(CLIENTS)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(POLLER), base, str(self.stop_file), str(out)],
                env=cli_env(),
                cwd=REPO,
            )
            for out in self.outs
        ]

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for out in self.outs:
            started = out.with_name(out.name + ".started")
            while not started.exists():
                assert all(p.poll() is None for p in self.procs), "a client exited"
                assert time.monotonic() < deadline, "the clients did not start polling"
                time.sleep(0.05)

    def stop(self) -> list[dict[str, Any]]:
        self.stop_file.touch()
        for p in self.procs:
            assert p.wait(timeout=300) == 0
        return [json.loads(out.read_text()) for out in self.outs]

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


@pytest.fixture
def clients() -> Iterator[Any]:
    started: list[Clients] = []

    def start(base: str, folder: Path) -> Clients:
        c = Clients(base, folder)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def test_migrate_and_sync_finish_exactly_while_four_clients_poll(
    projects_dir: Path, tmp_path: Path, clients: Any, expected_totals: dict[str, int]
) -> None:
    """Before: the dashboard's requests overlapped, its hold on the database was never
    released, and ``sync``/``migrate`` failed after 30 s ("in use by ... dashboard")."""
    copy = tmp_path / "projects"
    shutil.copytree(projects_dir, copy)
    url = f"chdb://{tmp_path / 'db'}"
    server = Server("--clickhouse-url", url).wait_ready()
    polling = clients(server.base, tmp_path / "clients")
    polling.wait_started()
    try:
        migrate = run_cli("migrate", "--source-dir", str(copy), "--clickhouse-url", url, "--json")
        assert migrate.returncode == 0, migrate.stderr
        assert "in use" not in migrate.stderr
        migrated = _totals(json.loads(migrate.stdout)["database_totals"])
        assert {k: migrated[k] for k in expected_totals} == expected_totals  # ccusage's

        # between the two writers the dashboard reads the migrated database afresh
        _until_fresh(server.base, migrated["total_tokens"])
        _append_responses(copy, 3)
        sync = run_cli("sync", "--source-dir", str(copy), "--clickhouse-url", url, "--json")
        assert sync.returncode == 0, sync.stderr
        assert "in use" not in sync.stderr
        assert json.loads(sync.stdout)["records_inserted"] == 3
        synced = _until_fresh(server.base, None)
        seen = polling.stop()
    finally:
        err = server.stop()
    assert "Traceback" not in err, err

    status = run_cli("status", "--clickhouse-url", url, "--json")
    assert status.returncode == 0, status.stderr
    analysed = run_cli("analyze", "--source-dir", str(copy), "--json")
    final = _totals(json.loads(analysed.stdout)["totals"])
    assert _totals(json.loads(status.stdout)["totals"]) == final  # every byte counted once
    assert final["total_tokens"] > migrated["total_tokens"]
    assert synced == final["total_tokens"]  # and the dashboard shows it once the sync is done

    for client in seen:
        assert client["errors"] == []  # every request answered (fresh or kept)
        assert client["requests"] > len(client["totals"]) > 0
        # never a number that was not the database's at some point
        assert all(0 <= total <= final["total_tokens"] for total, _stale in client["totals"])


HOLD = """
import sys, time
from pathlib import Path
from context_cleaner.bridge import Database
with Database(sys.argv[1], lock_timeout=120).session() as client:
    client.query("SELECT 1")
    Path(sys.argv[2]).write_text("held")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.02)
"""


def test_the_dashboard_serves_kept_answers_marked_stale_while_a_writer_holds_the_database(
    projects_dir: Path, tmp_path: Path
) -> None:
    _copy, url = migrate_copy(projects_dir, tmp_path)
    server = Server("--clickhouse-url", url, env={"CONTEXT_CLEANER_LOCK_TIMEOUT": "3"})
    server.wait_ready()
    held, release = tmp_path / "held", tmp_path / "release"
    holder: subprocess.Popen[str] | None = None
    try:
        status, first = _get(server.base + "/api/overview")
        assert status == 200 and first["stale"] is False and first["as_of"].endswith("Z")
        assert first["totals"]["total_tokens"] == 15_537_336

        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, url, str(held), str(release)],
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not held.exists():  # the dashboard let go of the database for the writer
            assert holder.poll() is None, holder.communicate()[1]
            assert time.monotonic() < deadline, "the writer never got the database"
            time.sleep(0.05)
        assert read_holder(url.removeprefix("chdb://") + ".lock").pid == holder.pid

        status, kept = _get(server.base + "/api/overview")
        assert status == 200
        assert kept["stale"] is True
        assert kept["as_of"] == first["as_of"]
        assert f"process {holder.pid}" in kept["busy"]
        assert {k: v for k, v in kept.items() if k not in ("stale", "as_of", "busy")} == {
            k: v for k, v in first.items() if k not in ("stale", "as_of")
        }

        status, never = _get(server.base + "/api/totals?model=claude-sonnet-4-5-20250929")
        assert status == 503  # no earlier answer to keep: busy, try again
        assert f"process {holder.pid}" in never["error"]

        release.touch()
        assert holder.wait(timeout=60) == 0
        status, after = _get(server.base + "/api/overview")
        assert status == 200 and after["stale"] is False and "busy" not in after
        assert after["as_of"] >= first["as_of"]
    finally:
        release.touch()
        if holder is not None and holder.poll() is None:
            holder.kill()
        if holder is not None:
            holder.communicate(timeout=30)
        err = server.stop()
    assert "Traceback" not in err, err

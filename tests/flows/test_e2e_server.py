"""End to end: a real ``prefect server start``, deployments/prefect.yaml, a process worker, serve,
and ``--engine prefect`` runs SIGKILLed mid-way.

One server, on a free loopback port with its own PREFECT_HOME, serves every test of the
module; every command is the real CLI in a subprocess. The worker's environment points
CLAUDE_CONFIG_DIR and the default database into tmp, so even a scheduled run that happens
to fall due during the test never touches the user's transcripts or database.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from .conftest import REPO
from .helpers import database_totals

pytestmark = pytest.mark.e2e

PREFECT = str(Path(sys.executable).with_name("prefect"))
CCUSAGE_TOTAL = 15_537_336
FORCE_ALERT = json.dumps({"slow_processing": {"threshold": 1e15, "min_run_seconds": 0}})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    api_url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CLAUDE_"))}
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_LOGGING_LEVEL="WARNING",
            PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""),
        )
        env.update(extra)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
        done = subprocess.run(
            list(args),
            env=env or self.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def run_failing(self, *args: str, env: dict[str, str], timeout: float = 120) -> str:
        """Run a command that must fail; its output."""
        done = subprocess.run(
            list(args), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode != 0, f"{args}\n{done.stdout[-3000:]}"
        return done.stdout + done.stderr

    def get(self, path: str) -> Any:
        response = httpx.get(self.api_url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_for_state(self, flow_run_id: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.get(f"/flow_runs/{flow_run_id}")["state"]["type"]
            if (
                state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
                or time.monotonic() > deadline
            ):
                return str(state)
            time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    started = Server(f"http://127.0.0.1:{port}/api", home)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=started.env(PREFECT_UI_ENABLED="false"),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(started.api_url + "/health", timeout=2) as r:
                    if r.read().strip() == b"true":
                        break
            except OSError:
                pass
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not answer /api/health"
            time.sleep(0.5)
        yield started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


WORK_POOL_DEPLOYMENTS = ("incremental-sync/hourly-sync", "validation/daily-validation")


@pytest.fixture(scope="module")
def deployed(server: Server) -> dict[str, dict[str, Any]]:
    """deployments/prefect.yaml deployed to a process work pool: each deployment's
    :func:`_as_deployed` view, as ``prefect deploy`` left it."""
    server.run(PREFECT, "work-pool", "create", "context-cleaner", "--type", "process")
    server.run(
        PREFECT, "deploy", "--prefect-file", "deployments/prefect.yaml", "--all", "--no-prompt"
    )
    return {
        name: _as_deployed(server.get(f"/deployments/name/{name}"))
        for name in WORK_POOL_DEPLOYMENTS
    }


def _as_deployed(deployment: dict[str, Any]) -> dict[str, Any]:
    """What ``serve`` must never change of a deployment it did not create."""
    limit = deployment.get("global_concurrency_limit") or {}
    return {
        "work_pool_name": deployment["work_pool_name"],
        "tags": sorted(deployment["tags"]),
        "concurrency_limit": limit.get("limit"),
        "schedules": [(s["schedule"], s["active"]) for s in deployment["schedules"]],
        "paused": deployment["paused"],
        "parameters": deployment["parameters"],
        "entrypoint": deployment["entrypoint"],
        "description": deployment["description"],
    }


def test_deployed_hourly_sync_runs_on_a_process_worker_and_alerts(
    server: Server, deployed: dict[str, dict[str, Any]], fixtures_dir: Path, tmp_path: Path
) -> None:
    hook = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"chdb://{tmp_path}/db"
    worker_env = server.env(
        CLAUDE_CONFIG_DIR=str(tmp_path / "no-transcripts"),
        CONTEXT_CLEANER_CLICKHOUSE_URL=f"chdb://{tmp_path}/scheduled-db",
    )
    try:
        sync, daily = (deployed[name] for name in WORK_POOL_DEPLOYMENTS)
        assert sync["work_pool_name"] == "context-cleaner"
        assert [s["cron"] for s, _ in sync["schedules"]] == ["0 * * * *"]
        assert sync["concurrency_limit"] == 1 and sync["tags"] == ["context-cleaner"]
        assert [s["cron"] for s, _ in daily["schedules"]] == ["30 3 * * *"]

        server.run(
            sys.executable,
            "deployments/create_alert_automation.py",
            "--webhook-url",
            f"http://127.0.0.1:{hook.server_port}/hook",
            "--allow-private-urls",
        )
        out = server.run(
            PREFECT,
            "deployment",
            "run",
            "incremental-sync/hourly-sync",
            "--params",
            json.dumps({"source_dirs": [str(fixtures_dir / "projects")], "clickhouse_url": url}),
            "--job-variable",
            "env=" + json.dumps({"CONTEXT_CLEANER_ALERTS": FORCE_ALERT}),
        )
        match = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert match, out
        flow_run_id = match.group(1)
        server.run(
            PREFECT, "worker", "start", "--pool", "context-cleaner", "--run-once", env=worker_env
        )
        assert server.wait_for_state(flow_run_id) == "COMPLETED"
        assert database_totals(url)["total_tokens"] == CCUSAGE_TOTAL

        deadline = time.monotonic() + 30
        while not _Webhook.received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _Webhook.received, "the alert automation sent no notification"
        text = _Webhook.received[0]["text"]
        assert text.startswith("context-cleaner alert: slow_processing")
    finally:
        hook.shutdown()
        hook.server_close()


def test_serve_runs_its_own_deployments_and_leaves_the_work_pools_alone(
    server: Server, deployed: dict[str, dict[str, Any]], fixtures_dir: Path, tmp_path: Path
) -> None:
    url = f"chdb://{tmp_path}/db"
    source = ["--source-dir", str(fixtures_dir / "projects")]
    env = server.env(PREFECT_RUNNER_POLL_FREQUENCY="1", CONTEXT_CLEANER_HOST="e2e-host")
    served = ("incremental-sync/hourly-sync@e2e-host", "validation/daily-validation@e2e-host")
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "context_cleaner", "serve", "--clickhouse-url", url, *source],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # serve registers its two deployments, under names of its own
            try:
                sync, daily = (server.get(f"/deployments/name/{name}") for name in served)
                if sync["last_polled"] and daily["parameters"].get("clickhouse_url") == url:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        assert sync["work_pool_name"] is None and sync["parameters"]["clickhouse_url"] == url
        assert [s["schedule"]["cron"] for s in sync["schedules"]] == ["0 * * * *"]
        assert [s["schedule"]["cron"] for s in daily["schedules"]] == ["30 3 * * *"]
        assert not sync["paused"] and not daily["paused"]
        for name, before in deployed.items():  # untouched while serve runs
            assert _as_deployed(server.get(f"/deployments/name/{name}")) == before, name
        out = server.run(PREFECT, "deployment", "run", served[0])
        match = re.search(r"UUID: ([0-9a-f-]{36})", out)
        assert match, out
        assert server.wait_for_state(match.group(1)) == "COMPLETED"
        assert database_totals(url)["total_tokens"] == CCUSAGE_TOTAL

        second = server.run_failing(  # a second serve of this host would take them over
            sys.executable, "-m", "context_cleaner", "serve", "--clickhouse-url", url, env=env
        )
        assert "Another `context-cleaner serve` serves" in second
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=30)
        log.close()
    for name, before in deployed.items():  # stopping serve left them exactly as deployed
        assert _as_deployed(server.get(f"/deployments/name/{name}")) == before, name
    assert all(server.get(f"/deployments/name/{name}")["paused"] for name in served)

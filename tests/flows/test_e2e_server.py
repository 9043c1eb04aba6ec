"""End to end: a real ``prefect server start``, deployments/prefect.yaml, a process worker, serve,
and ``--engine prefect`` runs SIGKILLed mid-way.

One server, on a free loopback port with its own PREFECT_HOME, serves every test of the
module; every command is the real CLI in a subprocess. The worker's environment points
CLAUDE_CONFIG_DIR and the default database into tmp, so even a scheduled run that happens
to fall due during the test never touches the user's transcripts or database.
"""

from __future__ import annotations

import contextlib
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
import psutil
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
        assert sync["concurrency_limit"] == 1 and "context-cleaner" in sync["tags"]
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


# -- a --engine prefect run SIGKILLed mid-way ---------------------------------------------------


def _running_flow_run(api_url: str, pid: int) -> str | None:
    """The id of the Running historical-migration flow run of process ``pid`` (None yet)."""
    body = {
        "flows": {"name": {"any_": ["historical-migration"]}},
        "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}},
    }
    try:
        runs = httpx.post(api_url + "/flow_runs/filter", json=body, timeout=10).json()
    except httpx.HTTPError:
        return None
    for run in runs:
        if run["labels"].get("context-cleaner.pid") == pid:
            return str(run["id"])
    return None


def _batches_done(api_url: str, flow_run_id: str) -> int:
    body = {
        "flow_runs": {"id": {"any_": [flow_run_id]}},
        "task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    }
    runs = httpx.post(api_url + "/task_runs/filter", json=body, timeout=10).json()
    return sum(1 for run in runs if run["name"].startswith("batch-"))


def _temporary_api(proc: subprocess.Popen[bytes]) -> str | None:
    """The API of the temporary server ``proc`` started (None while there is none)."""
    try:
        children = psutil.Process(proc.pid).children()
    except psutil.Error:
        return None
    for child in children:
        with contextlib.suppress(psutil.Error):
            args = child.cmdline()
            if "uvicorn" in args and "--port" in args:
                return f"http://127.0.0.1:{args[args.index('--port') + 1]}/api"
    return None


def _kill_mid_run(args: list[str], env: dict[str, str], api_url: str | None) -> tuple[str, int]:
    """Start ``args`` (a ``--engine prefect`` migrate), SIGKILL it once its flow run is
    Running; the flow run's id and the session id of what it started."""
    log = env["PREFECT_HOME"] + ".kill.log"  # what it printed, for the failures
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        flow_run_id = None
        while flow_run_id is None:
            api = api_url or _temporary_api(proc)
            flow_run_id = _running_flow_run(api, proc.pid) if api else None
            assert proc.poll() is None, Path(log).read_text()[-3000:]
            assert time.monotonic() < deadline, Path(log).read_text()[-3000:]
            time.sleep(0.2)
        while not _batches_done(api, flow_run_id):  # mid-way: a batch committed
            assert proc.poll() is None, Path(log).read_text()[-3000:]
            assert time.monotonic() < deadline, Path(log).read_text()[-3000:]
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return flow_run_id, proc.pid
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise


def _session_left(sid: int, timeout: float = 15) -> list[str]:
    """The processes of session ``sid`` still alive after ``timeout`` s (command lines)."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(" ".join(p.cmdline())[:200])
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _migrate(corpus: Path, url: str) -> list[str]:
    return [
        *(sys.executable, "-m", "context_cleaner", "migrate", "--engine", "prefect"),
        *("--batch-size", "1", "--source-dir", str(corpus), "--clickhouse-url", url),
    ]


def test_a_killed_run_is_crashed_in_prefect_after_the_next_status(
    server: Server, small_corpus: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    url = f"chdb://{tmp_path}/db"
    env = server.env(CLAUDE_CONFIG_DIR=str(tmp_path / "none"))
    flow_run_id, _ = _kill_mid_run(_migrate(small_corpus[0], url), env, server.api_url)
    assert server.get(f"/flow_runs/{flow_run_id}")["state"]["type"] == "RUNNING"

    out = server.run(
        sys.executable,
        "-m",
        "context_cleaner",
        "status",
        "--json",
        "--clickhouse-url",
        url,
        env=env,
    )
    assert json.loads(out)["runs"][0]["status"] == "crashed"
    state = server.get(f"/flow_runs/{flow_run_id}")["state"]
    assert state["type"] == "CRASHED", state
    assert "ended without finishing the run" in state["message"]


def test_a_killed_run_leaves_no_temporary_server_behind(
    small_corpus: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """No PREFECT_API_URL: the run's own temporary server dies with it, SIGKILL too. (The
    next run ending the flow run Crashed: tests/flows/test_crashed_flow_runs.py.)"""
    home = tmp_path / "prefect-home"
    url = f"chdb://{tmp_path}/db"
    env = Server("", home).env(CLAUDE_CONFIG_DIR=str(tmp_path / "none"))
    del env["PREFECT_API_URL"]
    _, sid = _kill_mid_run(_migrate(small_corpus[0], url), env, None)
    assert _session_left(sid) == []

    status = subprocess.run(  # the local engine: no Prefect, its run record shows crashed
        [sys.executable, "-m", "context_cleaner", "status", "--json", "--clickhouse-url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(status.stdout)["runs"][0]["status"] == "crashed", status.stderr

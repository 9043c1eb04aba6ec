"""The temporary Prefect server of a ``--engine prefect`` run with no API configured.

Prefect starts a temporary server on its own when no API is set, as a plain child
process stopped at exit: a SIGKILLed run leaves it running for good, with parent 1.
So the engine starts the same server itself (Prefect's app, on a free loopback port,
over the database in ``PREFECT_HOME`` as Prefect's own would be), through this
module's ``__main__``: the child asks the kernel to SIGKILL it when its parent dies
(``PR_SET_PDEATHSIG``, :func:`~context_cleaner.analysis.processes.die_with_parent`)
and then becomes the server (``exec``, which keeps that request). The run then talks
to it through ``PREFECT_API_URL``, and stops it when it ends.

The kernel sends the signal when the *thread* that started the child ends, so the
server is started from the thread that runs the flow (the CLI's main thread).
Elsewhere than Linux the server is stopped at exit, as Prefect's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from context_cleaner.errors import ConfigurationError

#: How long the server is given to answer (Prefect's own default, 20 s, is short on a
#: busy machine); ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` when larger.
STARTUP_SECONDS = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",  # as Prefect starts its temporary server
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    command = [sys.executable, "-m", __name__, str(os.getpid()), str(port)]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)


def _wait_healthy(proc: subprocess.Popen[bytes], api_url: str, timeout: float) -> bool:
    """True once the server answers; False when it exited first (its port was taken)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{api_url}/health").status_code == 200:
                    return True
            time.sleep(0.1)
    raise ConfigurationError(
        f"Prefect's temporary server did not answer within {timeout:.0f} s. "
        "Start one with `prefect server start` and set PREFECT_API_URL."
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def temporary_server(timeout: float = STARTUP_SECONDS) -> Iterator[str]:
    """A temporary Prefect server for this block, dying with this process; yields its API URL."""
    for _ in range(5):
        port = _free_port()
        proc = _start(port)
        api_url = f"http://127.0.0.1:{port}/api"
        try:
            ready = _wait_healthy(proc, api_url, timeout)
        except BaseException:
            _stop(proc)
            raise
        if ready:
            break
    else:
        raise ConfigurationError(
            "Prefect's temporary server would not start (exit code "
            f"{proc.returncode}). Start one with `prefect server start` and set PREFECT_API_URL."
        )
    try:
        yield api_url
    finally:
        _stop(proc)


def _serve(parent: int, port: int) -> None:
    """Become the server: die with ``parent``, then exec uvicorn as Prefect runs it."""
    from context_cleaner.analysis.processes import die_with_parent

    die_with_parent(parent)
    spec = importlib.util.find_spec("prefect")  # where Prefect is, without importing it
    assert spec is not None and spec.origin is not None
    site = str(Path(spec.origin).parent.parent)
    uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", site]
    os.execv(
        sys.executable,
        [
            *uvicorn,
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))

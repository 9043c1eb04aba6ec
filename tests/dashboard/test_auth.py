"""Access control: loopback by default, a token for anything else, and on every request."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import TOKEN, free_port, migrate_copy, run_cli
from fastapi.testclient import TestClient

from context_cleaner.dashboard.app import COOKIE, LOOPBACK_HOSTS, create_app
from context_cleaner.dashboard.database_source import DatabaseSource
from context_cleaner.dashboard.settings import TOKEN_ENV, DashboardSettings, is_loopback
from context_cleaner.errors import ConfigurationError


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_settings_need_a_token_off_loopback() -> None:
    with pytest.raises(ConfigurationError, match="--token"):
        DashboardSettings.build(host="0.0.0.0", environ={})
    with pytest.raises(ConfigurationError, match="at least 16"):
        DashboardSettings.build(host="0.0.0.0", token="short", environ={})
    with pytest.raises(ConfigurationError, match="source"):
        DashboardSettings.build(source="cloud", environ={})
    from_env = DashboardSettings.build(host="0.0.0.0", environ={TOKEN_ENV: TOKEN})
    assert from_env.token == TOKEN and from_env.url(8110).endswith(f"?token={TOKEN}")
    plain = DashboardSettings.build(environ={})
    assert (plain.host, plain.port, plain.source) == ("127.0.0.1", 8110, "database")
    assert plain.token is None


def test_cli_refuses_a_public_address_without_a_token() -> None:
    port = free_port()
    done = run_cli("dashboard", "--host", "0.0.0.0", "--port", str(port), timeout=60)
    assert done.returncode == 1
    assert "Refusing to listen on 0.0.0.0" in done.stderr and "--token" in done.stderr
    with socket.socket() as s:  # nothing was bound
        s.bind(("0.0.0.0", port))


def test_cli_refuses_a_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        done = run_cli("dashboard", "--port", str(s.getsockname()[1]), timeout=60)
    assert done.returncode == 1 and "--port" in done.stderr


@pytest.fixture
def token_client(tmp_path: Path) -> Iterator[TestClient]:
    source = DatabaseSource(f"chdb://{tmp_path / 'none'}", keep_warm=0)
    with TestClient(create_app(source, token=TOKEN)) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/api/totals", "/api/health", "/static/app.js"])
def test_requests_without_the_token_get_401(token_client: TestClient, path: str) -> None:
    response = token_client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["error"]
    wrong = token_client.get(path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 401


def test_bearer_query_and_cookie_are_accepted(token_client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert token_client.get("/api/totals", headers=auth).status_code == 200
    page = token_client.get("/", params={"token": TOKEN})
    assert page.status_code == 200 and "Claude Code usage" in page.text
    assert token_client.cookies.get(COOKIE) == TOKEN
    assert token_client.get("/static/app.js").status_code == 200  # the cookie alone
    token_client.cookies.clear()
    assert token_client.get("/static/app.js").status_code == 401


def test_security_headers(tmp_path: Path) -> None:
    source = DatabaseSource(f"chdb://{tmp_path / 'none'}", keep_warm=0)
    with TestClient(create_app(source)) as client:
        response = client.get("/")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert client.get("/api/totals").headers["cache-control"] == "no-store"


def test_loopback_dashboard_rejects_foreign_host_headers(tmp_path: Path) -> None:
    source = DatabaseSource(f"chdb://{tmp_path / 'none'}", keep_warm=0)
    app = create_app(source, allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8110") as client:
        assert client.get("/api/info").status_code == 200
        rebound = client.get("/api/info", headers={"Host": "attacker.example:8110"})
        assert rebound.status_code == 400


@pytest.fixture(scope="module")
def served_db(projects_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrate_copy(projects_dir, tmp_path_factory.mktemp("auth"))[1]


def test_real_server_with_a_token(served_db: str, server_factory: Any) -> None:
    server = server_factory("--clickhouse-url", served_db, "--token", TOKEN)
    status, _, body = get(server.base + "/api/totals")
    assert status == 401 and b"token" in body
    status, _, body = get(server.base + "/api/totals", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and b'"total_tokens":15537336' in body
    status, headers, body = get(server.base + f"/?token={TOKEN}")
    assert status == 200 and COOKIE in headers.get("set-cookie", "")


def test_real_server_on_loopback_checks_the_host_header(
    served_db: str, server_factory: Any
) -> None:
    server = server_factory("--clickhouse-url", served_db)
    assert get(server.base + "/api/info")[0] == 200
    assert get(server.base + "/api/info", {"Host": "rebind.example"})[0] == 400

"""Fixtures for the migration tests: database targets, generated corpora, the CLI.

Every database test takes the ``target`` fixture, parametrized by where the data
goes: the embedded chDB engine (always) and a ClickHouse server (when
``CONTEXT_CLEANER_TEST_CLICKHOUSE_URL`` names one; skipped otherwise). A target
hands out a fresh, empty database per call of :meth:`Target.new_url`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from context_cleaner.testing.transcripts import generate_corpus

# ccusage 20.0.24, installed on first use: the reference count (tests/reports/helpers.py).
from reports.helpers import ccusage

__all__ = ["ccusage"]

SERVER_ENV = "CONTEXT_CLEANER_TEST_CLICKHOUSE_URL"


@dataclass
class Target:
    """Where a test's databases live: ``chdb`` folders below ``base``, or server databases."""

    kind: str
    base: str
    created: list[str] = field(default_factory=list)

    def new_url(self) -> str:
        """A URL of a fresh, empty database (embedded: a folder that does not exist yet)."""
        if self.kind == "chdb":
            url = f"chdb://{self.base}/db{len(self.created)}"
            self.created.append(url)
            return url
        name = f"cc_test_{secrets.token_hex(6)}"
        self._server_command(f"CREATE DATABASE {name}")
        self.created.append(name)
        parts = urlsplit(self.base)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def exists(self, url: str) -> bool:
        """True when the database of ``url`` holds anything (embedded: its folder exists)."""
        if self.kind == "chdb":
            return Path(url.removeprefix("chdb://")).exists()
        name = urlsplit(url).path.strip("/")
        rows = self._server_query(
            "SELECT count() FROM system.tables WHERE database = {d:String}", {"d": name}
        )
        return bool(rows[0][0])

    def _server_client(self) -> Any:
        from context_cleaner.bridge import open_client

        parts = urlsplit(self.base)
        return open_client(urlunsplit(parts._replace(path="")))

    def _server_command(self, sql: str) -> None:
        from context_cleaner.bridge import close_client

        client = self._server_client()
        try:
            client.command(sql)
        finally:
            close_client(client)

    def _server_query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        from context_cleaner.bridge import close_client

        client = self._server_client()
        try:
            return list(client.query(sql, parameters=params).result_rows)
        finally:
            close_client(client)

    def cleanup(self) -> None:
        if self.kind == "server":
            for name in self.created:
                self._server_command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture(params=["chdb", "server"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The database target a test runs against (see the module docstring)."""
    if request.param == "server":
        url = os.environ.get(SERVER_ENV, "").strip()
        if not url:
            pytest.skip(f"{SERVER_ENV} is not set: no ClickHouse server to test against")
        made = Target("server", url)
    else:
        made = Target("chdb", str(tmp_path / "databases"))
    yield made
    made.cleanup()


@pytest.fixture(scope="session")
def corpus_6mb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A generated realistic corpus of ~6 MB (read-only for tests) and its manifest."""
    out = tmp_path_factory.mktemp("corpus6mb")
    manifest = generate_corpus(out, 6_000_000, seed=2)  # 27 files
    return out, manifest


@pytest.fixture(scope="session")
def corpus_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A generated corpus of ~1.2 MB (8 files, 4 sessions, a resumed session) and its manifest."""
    out = tmp_path_factory.mktemp("corpus1mb")
    manifest = generate_corpus(out, 1_000_000, seed=4)
    return out, manifest

"""Fixtures for the bridge tests: real chDB databases in temporary directories."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bridge_helpers import Holder

from context_cleaner.bridge import Database, setup_schema


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh embedded database location."""
    return f"chdb://{tmp_path}/db"


@pytest.fixture
def database(db_url: str) -> Database:
    """A :class:`Database` with the schema applied."""
    db = Database(db_url, lock_timeout=5)
    with db.session() as client:
        setup_schema(client)
    return db


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[..., Holder]]:
    """Start helper processes with ``holder(mode, target, ready)``; all are ended after the test."""
    started: list[Holder] = []

    def start(mode: str, target: str, name: str = "a", hold: float = 30.0) -> Holder:
        h = Holder(mode, target, tmp_path / f"{name}.ready", hold)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()

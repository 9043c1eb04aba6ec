"""Opening clients: embedded engines held elsewhere, unreachable servers, no leaked secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from bridge_helpers import Holder

from context_cleaner.bridge import (
    Database,
    DatabaseLockedError,
    DatabaseUnavailableError,
    RetryPolicy,
    SchemaError,
    engine_holder,
    open_client,
)
from context_cleaner.bridge.url import parse_url
from context_cleaner.errors import ConfigurationError, TransientError, is_transient


def test_retry_policy_delays() -> None:
    assert list(RetryPolicy(attempts=5, initial_delay=0.5, max_delay=1.5).delays()) == [
        0.5,
        1.0,
        1.5,
        1.5,
    ]
    assert list(RetryPolicy(attempts=1).delays()) == []


def test_open_close_reopen_embedded(db_url: str) -> None:
    for value in (1, 2, 3):
        client = open_client(db_url)
        try:
            assert client.query(f"SELECT {value}").result_rows == [(value,)]
        finally:
            client.close()
    assert engine_holder(parse_url(db_url).path) is None  # closed: nobody holds the engine


def test_engine_opened_elsewhere_without_our_lock_names_that_process(
    db_url: str, holder: Callable[..., Holder]
) -> None:
    a = holder("direct", db_url)  # opens the directory with clickhouse-connect, no lock file
    a.wait_ready()
    path = parse_url(db_url).path
    pid, command = engine_holder(path) or (None, "")
    assert pid == a.pid and "_holder.py direct" in command
    with pytest.raises(DatabaseLockedError) as info:
        open_client(db_url)
    assert is_transient(info.value)
    assert info.value.holder_pid == a.pid
    assert f"process {a.pid}" in str(info.value) and path in str(info.value)
    a.release()
    with Database(db_url).session() as client:  # this process can open it afterwards
        assert client.query("SELECT 1").result_rows == [(1,)]


def test_unreachable_server_is_retried_then_unavailable(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://bob:hunter2@127.0.0.1:{closed_port}/usage"
    waits: list[float] = []
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DatabaseUnavailableError) as info:
        open_client(
            url,
            retry=RetryPolicy(attempts=3, initial_delay=0.01, multiplier=3),
            connect_timeout=2,
            sleep=waits.append,
        )
    error = info.value
    assert isinstance(error, TransientError)
    assert waits == [0.01, pytest.approx(0.03)]
    message = str(error)
    assert f"127.0.0.1:{closed_port}" in message and "after 3 attempts" in message
    assert "over 0.0 s: Connection refused. Check" in message  # the socket's words
    assert "run again" in message
    texts = [message, repr(error), str(error.__cause__), caplog.text]
    assert all("hunter2" not in text for text in texts)
    assert "attempt 1 of 3" in caplog.text and "attempt 2 of 3" in caplog.text


def test_a_host_that_does_not_resolve_is_named_in_the_systems_words() -> None:
    """The driver wraps the socket's error twice (urllib3's pool, then its own); the
    message names the innermost cause, without the wrapped text."""
    with pytest.raises(DatabaseUnavailableError) as info:
        open_client(
            "http://bob:hunter2@no-such-host.invalid:8123/usage",
            retry=RetryPolicy(attempts=2, initial_delay=0.01),
            connect_timeout=2,
            sleep=lambda _: None,
        )
    message = str(info.value)
    assert "after 2 attempts" in message and "hunter2" not in message
    assert "HTTPConnectionPool" not in message and "Max retries" not in message, message
    cause = message.split(" s: ", 1)[1].split(". Check", 1)[0]
    assert 0 < len(cause) < 80, cause  # e.g. "Name or service not known"


def test_unreachable_server_through_a_session(closed_port: int) -> None:
    db = Database(
        f"http://bob:hunter2@127.0.0.1:{closed_port}/usage",
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
    )
    assert "hunter2" not in repr(db)
    with pytest.raises(DatabaseUnavailableError) as info, db.session():
        pass
    assert "hunter2" not in str(info.value)


def test_driver_errors_inside_a_session_are_translated(db_url: str) -> None:
    with (
        pytest.raises(SchemaError, match="no_such_table"),
        Database(db_url).session() as client,
    ):
        client.query("SELECT * FROM no_such_table")


def test_second_directory_in_one_process_is_a_clear_error(tmp_path: Path) -> None:
    first = Database(f"chdb://{tmp_path}/one")
    with first.session(), pytest.raises(ConfigurationError) as info:
        open_client(f"chdb://{tmp_path}/two")
    assert f"{tmp_path}/one" in str(info.value) and "one database directory per process" in str(
        info.value
    )
    with Database(f"chdb://{tmp_path}/two").session() as client:  # fine once the first is closed
        assert client.query("SELECT 1").result_rows == [(1,)]


_LIBRARY_PROBE = """
import sys
from context_cleaner.bridge import close_client, open_client
client = open_client("chdb://:memory:")
client.command("CREATE TABLE t (a UInt8) ENGINE = Memory")
client.insert("t", [[1]], column_names=["a"])
rows = client.query("SELECT sum(a) FROM t").result_rows
close_client(client)
print(rows[0][0], sorted(m for m in ("pyarrow", "numpy", "pandas") if m in sys.modules))
import pyarrow  # hidden only while the libraries loaded
print(pyarrow.__name__)
"""


@pytest.mark.slow
def test_the_embedded_engine_loads_without_arrow_numpy_or_pandas() -> None:
    """chDB would import pyarrow (and numpy, whose BLAS threads spin) and clickhouse-connect
    pandas and numpy on a first insert; nothing here uses them, so none is loaded."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _LIBRARY_PROBE], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1 []", "pyarrow"]


_RELEASE_PROBE = """
import sys
import psutil
from context_cleaner.bridge import Database
from context_cleaner.bridge.token_bridge import EnhancedTokenDatabaseBridge
bridge = EnhancedTokenDatabaseBridge(Database(sys.argv[1]))
me = psutil.Process()
with bridge.writer() as w:
    w.client.query(
        "SELECT sum(length(a)) FROM (SELECT range(number % 10 + 200000) AS a FROM numbers(400))"
    )
    held = me.memory_info().rss
    w.release_memory()
    released = me.memory_info().rss
print(held // 2**20, released // 2**20)
"""


@pytest.mark.slow
def test_a_writer_gives_the_engines_freed_memory_back(tmp_path: Path) -> None:
    """The engine keeps freed pages for ~10 s unless asked; a migration asks after each unit,
    so one unit's peak is not carried into the next (benchmarked: docs/benchmarks.md)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _RELEASE_PROBE, f"chdb://{tmp_path / 'db'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    held, released = map(int, out.stdout.split())
    # The query's ~600 MiB of arrays were freed inside the engine but kept; now they are gone.
    assert held - released > 200, (held, released)

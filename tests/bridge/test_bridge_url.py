"""URL parsing, resolution and redaction: credentials never leave in text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.bridge import DatabaseURL, parse_url, redact, resolve_url
from context_cleaner.bridge.url import DEFAULT_EMBEDDED_PATH, PASSWORD_ENV, URL_ENV
from context_cleaner.errors import ConfigurationError


def test_chdb_absolute_path() -> None:
    url = parse_url("chdb:///var/lib/cc/db")
    assert url == DatabaseURL(scheme="chdb", path="/var/lib/cc/db")
    assert url.is_embedded and not url.is_memory
    assert url.dsn == "chdb:///var/lib/cc/db"
    assert url.endpoint == "/var/lib/cc/db"


def test_chdb_home_and_bare_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = os.path.expanduser("~")
    assert parse_url("chdb://~/x/db").path == f"{home}/x/db"
    assert parse_url("~/x/db").path == f"{home}/x/db"
    assert parse_url("/abs/db/").path == "/abs/db"
    monkeypatch.chdir(tmp_path)
    assert parse_url("rel/db").path == str(tmp_path / "rel" / "db")


def test_chdb_memory() -> None:
    assert parse_url("chdb://memory").is_memory
    assert parse_url("chdb://:memory:").dsn == "chdb://memory"


def test_http_url_parts() -> None:
    url = parse_url("http://alice:p%40ss@ch.example.com:9000/usage")
    assert (url.scheme, url.host, url.port, url.username, url.password, url.database) == (
        "http",
        "ch.example.com",
        9000,
        "alice",
        "p@ss",
        "usage",
    )
    assert url.endpoint == "ch.example.com:9000"
    assert url.dsn == "http://alice:p%40ss@ch.example.com:9000/usage"


def test_default_ports_and_no_database() -> None:
    assert parse_url("http://h").port == 8123
    assert parse_url("https://h/").port == 8443
    assert parse_url("https://h").database == ""
    assert parse_url("http://[::1]:8123/db").dsn == "http://[::1]:8123/db"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ftp://h/db",
        "chdb://host/path",
        "chdb://",
        "http://h:99999/db",
        "http://:8123/db",
        "http://h/a/b",
        "http://u:secretpw@h:8123/db?x=1",
        "chdb:///",
        "/",
    ],
)
def test_invalid_urls_are_configuration_errors(text: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(text)
    assert "secretpw" not in str(info.value)
    assert URL_ENV in str(info.value)


def test_resolution_order(tmp_path: Path) -> None:
    env = {URL_ENV: f"chdb://{tmp_path}/env"}
    assert resolve_url(f"chdb://{tmp_path}/flag", env).path == f"{tmp_path}/flag"
    assert resolve_url(None, env).path == f"{tmp_path}/env"
    assert resolve_url(None, {}).path == os.path.expanduser(DEFAULT_EMBEDDED_PATH)
    assert resolve_url(None, {URL_ENV: "  "}).path == os.path.expanduser(DEFAULT_EMBEDDED_PATH)


def test_password_from_environment() -> None:
    env = {URL_ENV: "http://bob@h:8123/db", PASSWORD_ENV: "from-env"}
    assert resolve_url(None, env).password == "from-env"
    # a password in the URL wins; chdb URLs ignore it
    assert resolve_url("http://bob:inline@h/db", env).password == "inline"
    assert resolve_url("chdb:///x", env).password == ""


def test_redacted_forms_hide_the_password() -> None:
    url = parse_url("https://bob:hunter2@h:8443/db")
    for text in (str(url), repr(url), url.redacted(), f"{url}", f"{url!r}"):
        assert "hunter2" not in text
    assert url.redacted() == "https://bob:***@h:8443/db"
    assert redact("see http://bob:hunter2@h:8123/db now") == "see http://bob:***@h:8123/db now"
    assert redact("chdb:///x") == "chdb:///x"


passwords = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(lambda p: p.strip() == p)
users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)


@pytest.mark.slow
@given(user=users, password=passwords, db=st.sampled_from(["", "default", "usage_db"]))
def test_any_password_round_trips_and_never_shows(user: str, password: str, db: str) -> None:
    url = DatabaseURL(
        scheme="http", host="h.example", port=8123, username=user, password=password, database=db
    )
    assert parse_url(url.dsn) == url
    expected = f"http://{user}:***@h.example:8123" + (f"/{db}" if db else "")
    assert str(url) == url.redacted() == redact(url.dsn) == expected
    assert "password" not in repr(url)
    assert repr(url).count(repr(user)) == 1 + (user == "http")  # the username (and scheme)


@pytest.mark.parametrize(
    "text",
    [
        "http://alice:pass w0rdTAIL@127.0.0.1:notaport/db",  # a space in the password
        "http://alice:p@ssTAIL@127.0.0.1:notaport/db",  # a raw "@" in the password
        "http://alice:pwTAIL@[::1/usage",  # a URL that urlsplit refuses
        "https://alice:a b@cTAIL@[::1",
    ],
)
def test_unparseable_urls_never_show_their_password(text: str) -> None:
    """The message of a URL that does not parse is as redacted as one that does."""
    with pytest.raises(ConfigurationError) as info:
        parse_url(text)
    assert "TAIL" not in str(info.value) and "alice:***@" in str(info.value)
    assert "TAIL" not in redact(text)


raw_passwords = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20
)


@given(
    user=users,
    password=raw_passwords,
    rest=st.sampled_from(["h:8123/db", "h:port/db", "[::1/usage", "h/a/b", "h:8123/db?x=1", ""]),
)
def test_any_raw_password_is_hidden_whether_the_url_parses_or_not(
    user: str, password: str, rest: str
) -> None:
    """Written into a URL unescaped (spaces, "@", "/"), the password shows in no message."""
    secret = f"SECRET{password}TAIL"
    text = f"http://{user}:{secret}@{rest}"
    shown = [redact(text)]
    try:
        shown.append(str(parse_url(text)))
    except ConfigurationError as exc:
        shown.append(str(exc))
    for out in shown:
        assert "SECRET" not in out and "TAIL" not in out, out

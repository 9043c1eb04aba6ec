"""Where the database is: parse, resolve and redact ClickHouse URLs (DESIGN §4).

Accepted forms::

    chdb:///abs/path             embedded engine in a directory (the default target)
    chdb://~/path                the same, below the home directory
    /abs/path, ~/path, rel/path  a bare path means chdb (relative paths are made absolute)
    chdb://memory                in-memory engine (tests only: nothing persists, no file lock)
    http://user:pass@host:8123/db    a ClickHouse server; https:// for TLS (default port 8443)

Resolution order: an explicit URL (flag), then ``CONTEXT_CLEANER_CLICKHOUSE_URL``,
then ``~/.context_cleaner/clickhouse``. A server URL without a password takes it
from ``CONTEXT_CLEANER_CLICKHOUSE_PASSWORD`` when set, so it need not be written
into shell history. The password is held out of ``repr`` and ``str``; only
:meth:`DatabaseURL.redacted` is ever shown.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, quote, unquote, urlsplit

from context_cleaner.bridge.exceptions import redact_text
from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import DEFAULT_EMBEDDED_PATH, PASSWORD_ENV, URL_ENV

Scheme = Literal["chdb", "http", "https"]
_DEFAULT_PORTS = {"http": 8123, "https": 8443}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database address. ``str()`` and ``repr()`` never show the password."""

    scheme: Scheme
    """``chdb`` for the embedded engine, ``http``/``https`` for a server."""
    path: str = ""
    """chdb: absolute directory of the database, or ``":memory:"``. Empty for servers."""
    host: str = ""
    port: int = 0
    username: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    """Server database from the URL path; empty means the user's default."""
    verify: bool = True
    """https: check the server's certificate (a credentials block may turn it off)."""
    ca_cert: str = ""
    """https: a CA bundle file to check the certificate with; empty: the system's."""

    @property
    def is_embedded(self) -> bool:
        """True for the in-process chDB engine."""
        return self.scheme == "chdb"

    @property
    def is_memory(self) -> bool:
        """True for the in-memory chDB engine (nothing is written to disk)."""
        return self.scheme == "chdb" and self.path == ":memory:"

    @property
    def dsn(self) -> str:
        """The clickhouse-connect DSN, credentials included. Never log or show it."""
        if self.is_memory:
            return "chdb://memory"
        if self.is_embedded:
            return f"chdb://{self.path}"
        auth = ""
        if self.username or self.password:
            auth = quote(self.username, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        db = f"/{quote(self.database, safe='')}" if self.database else ""
        return f"{self.scheme}://{auth}{self._host_port}{db}"

    @property
    def _host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """``host:port`` of a server, or the directory of an embedded database."""
        return self.path if self.is_embedded else self._host_port

    def redacted(self) -> str:
        """The URL as it may be shown: the password, if any, is ``***``."""
        if self.is_embedded:
            return self.dsn
        user = f"{quote(self.username, safe='')}{':***' if self.password else ''}@"
        user = user if (self.username or self.password) else ""
        db = f"/{quote(self.database, safe='')}" if self.database else ""
        return f"{self.scheme}://{user}{self._host_port}{db}"

    def __str__(self) -> str:
        return self.redacted()

    def with_password(self, password: str) -> DatabaseURL:
        """A copy with ``password`` set."""
        return dataclasses.replace(self, password=password)

    def tls_options(self) -> dict[str, Any]:
        """The client's TLS arguments that differ from its defaults (none for plain http)."""
        if self.scheme != "https":
            return {}
        options: dict[str, Any] = {} if self.verify else {"verify": False}
        if self.ca_cert:
            options["ca_cert"] = self.ca_cert
        return options


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``; text that is not a URL is left as is."""
    return redact_text(url)


def parse_url(text: str) -> DatabaseURL:
    """Parse a database URL or bare path (forms in the module docstring).

    Raises :class:`ConfigurationError` (naming the redacted URL) for anything else.
    """
    raw = text.strip()
    if not raw:
        raise ConfigurationError(
            f"The ClickHouse URL is empty. Set {URL_ENV} to chdb:///path or http://host:8123/db, "
            "or leave it unset for the embedded default."
        )
    if "://" not in raw:
        return _embedded(raw, text)
    try:
        parts = urlsplit(raw)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
        raise _bad(text, f"it cannot be read as a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme == "chdb":
        location = parts.netloc + parts.path
        if parts.query or parts.fragment:
            raise _bad(text, "a chdb URL takes no ?query or #fragment")
        if location in ("memory", ":memory:"):
            return DatabaseURL(scheme="chdb", path=":memory:")
        if not location:
            raise _bad(text, "the chdb URL names no directory (use chdb:///abs/path)")
        if parts.netloc and parts.netloc != "~":
            raise _bad(text, "use chdb:///abs/path (three slashes) or chdb://~/path")
        return _embedded(location, text)
    if scheme in _DEFAULT_PORTS:
        return _server(scheme, parts, text)
    raise _bad(text, f"unknown scheme {parts.scheme!r}: use chdb://, http:// or https://")


def _embedded(location: str, original: str) -> DatabaseURL:
    path = Path(unquote(location)).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    resolved = os.path.normpath(str(path))
    if resolved == "/":
        raise _bad(original, "the embedded database cannot be the filesystem root")
    return DatabaseURL(scheme="chdb", path=resolved)


def _server(scheme: str, parts: SplitResult, original: str) -> DatabaseURL:
    if parts.query or parts.fragment:
        raise _bad(
            original, "query parameters are not supported; put only the database in the path"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise _bad(original, "the port is not a number between 1 and 65535") from exc
    if not parts.hostname:
        raise _bad(original, "the URL names no host")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) > 1:
        raise _bad(original, "the path may name one database only")
    return DatabaseURL(
        scheme=scheme,  # type: ignore[arg-type]
        host=parts.hostname,
        port=port,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(segments[0]) if segments else "",
    )


def _bad(original: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"Invalid ClickHouse URL {redact(original.strip())!r}: {why}. "
        f"Fix --clickhouse-url or {URL_ENV}."
    )


def resolve_url(
    explicit: str | DatabaseURL | None = None, environ: Mapping[str, str] | None = None
) -> DatabaseURL:
    """The database to use: ``explicit`` (a flag), else ``$CONTEXT_CLEANER_CLICKHOUSE_URL``,
    else the embedded default. A server URL without a password takes
    ``$CONTEXT_CLEANER_CLICKHOUSE_PASSWORD``."""
    env = os.environ if environ is None else environ
    if isinstance(explicit, DatabaseURL):
        url = explicit
    elif explicit:
        url = parse_url(explicit)
    elif env.get(URL_ENV, "").strip():
        url = parse_url(env[URL_ENV])
    else:
        url = parse_url(DEFAULT_EMBEDDED_PATH)
    if not url.is_embedded and not url.password and env.get(PASSWORD_ENV):
        url = url.with_password(env[PASSWORD_ENV])
    return url

"""Dashboard settings: where it listens, what it reads, and the access token.

Read from flags, then the environment, then defaults. The one security rule
lives here: the dashboard listens on the loopback interface unless a token is
given, and a token is then required on every request.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import TOKEN_ENV

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8110
MIN_TOKEN_LENGTH = 16
SOURCES = ("database", "direct")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DashboardSettings:
    """Everything ``context-cleaner dashboard`` needs to start."""

    host: str = DEFAULT_HOST
    """Address to listen on; anything but loopback requires :attr:`token`."""
    port: int = DEFAULT_PORT
    """TCP port (0 = any free port)."""
    source: str = "database"
    """``database`` (the migrated data, via the bridge) or ``direct`` (read the transcripts:
    the spec's immediate rollback while the database is repaired)."""
    clickhouse_url: str | None = None
    """Database URL; default ``$CONTEXT_CLEANER_CLICKHOUSE_URL`` or the embedded default."""
    source_dirs: Sequence[str] = field(default_factory=tuple)
    """Transcript folders for ``direct``; default the Claude config folders."""
    prices: str | None = None
    """Price override file (as for ``analyze --prices``)."""
    token: str | None = None
    """Access token; required on every request when set."""

    @classmethod
    def build(
        cls,
        *,
        host: str | None = None,
        port: int | None = None,
        source: str | None = None,
        clickhouse_url: str | None = None,
        source_dirs: Sequence[str] | None = None,
        prices: str | None = None,
        token: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> DashboardSettings:
        """Flags first, then the environment (:data:`TOKEN_ENV`), then defaults; validated."""
        env = os.environ if environ is None else environ
        settings = cls(
            host=host or DEFAULT_HOST,
            port=DEFAULT_PORT if port is None else port,
            source=source or "database",
            clickhouse_url=clickhouse_url,
            source_dirs=tuple(source_dirs or ()),
            prices=prices,
            token=token if token is not None else (env.get(TOKEN_ENV) or None),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` naming the problem and the fix."""
        if self.source not in SOURCES:
            raise ConfigurationError(
                f"Unknown dashboard source {self.source!r}; use --source database or direct."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"--port {self.port} is not a TCP port (0-65535).")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"The dashboard token is {len(self.token)} characters; use at least "
                f"{MIN_TOKEN_LENGTH}, e.g. {secrets.token_urlsafe(24)!r} "
                f"(--token or ${TOKEN_ENV})."
            )
        if not is_loopback(self.host) and not self.token:
            raise ConfigurationError(
                f"Refusing to listen on {self.host}: anyone who can reach it could read your "
                f"usage. Pass --token or set ${TOKEN_ENV} (at least {MIN_TOKEN_LENGTH} "
                f"characters), or listen on {DEFAULT_HOST}."
            )

    @property
    def display_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def url(self, port: int | None = None) -> str:
        """The page's address (with the token, when one is set, so it can be opened as is)."""
        base = f"http://{self.display_host}:{self.port if port is None else port}/"
        return f"{base}?token={self.token}" if self.token else base

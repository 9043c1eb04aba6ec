"""Prefect blocks of context-cleaner: the database's credentials, kept as Prefect secrets.

Register the block type once per Prefect server, then save a block::

    prefect block register -m context_cleaner.orchestration.blocks

    from context_cleaner.orchestration.blocks import ClickHouseCredentials
    ClickHouseCredentials(
        url="https://ch.example:8443/usage", username="alice", password="...",
    ).save("usage-db")

and name it where a URL would go: ``--credentials-block usage-db`` on the command line,
``credentials_block: usage-db`` as a flow or deployment parameter, or
``$CONTEXT_CLEANER_CREDENTIALS_BLOCK``. The password is a ``SecretStr``: Prefect
stores it encrypted and shows it as ``********``; it is read only where the database
is opened, so it never becomes a flow parameter, a log line or an artifact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prefect.blocks.abstract import CredentialsBlock
from pydantic import ConfigDict, Field, SecretStr, field_validator

from context_cleaner.bridge.from_settings import CheckedURL
from context_cleaner.bridge.url import DatabaseURL, parse_url, redact
from context_cleaner.errors import ConfigurationError
from context_cleaner.settings import CREDENTIALS_ENV, Settings

if TYPE_CHECKING:
    from context_cleaner.bridge.database import Database

__all__ = ["ClickHouseCredentials", "load_credentials", "with_credentials"]


class ClickHouseCredentials(CredentialsBlock):
    """The ClickHouse database context-cleaner writes to, and how to log in to it.

    Example:
        Load stored credentials and open the database::

            from context_cleaner.orchestration.blocks import ClickHouseCredentials

            database = ClickHouseCredentials.load("BLOCK_NAME").get_client()
            with database.session() as client:
                client.query("SELECT 1")
    """

    model_config = ConfigDict(hide_input_in_errors=True)  # a mistyped URL may hold a password

    _block_type_name = "ClickHouse Credentials"
    _description = (
        "The ClickHouse database context-cleaner migrates Claude Code token usage into: "
        "its URL, user, password (a secret) and TLS options."
    )

    url: str = Field(
        default=...,
        title="URL",
        description="http(s)://host:port/database of a ClickHouse server (or chdb:///path "
        "for the embedded engine), without a password.",
        examples=["https://ch.example:8443/usage", "http://127.0.0.1:8123/default"],
    )
    username: str | None = Field(
        default=None, description="The user to log in as (default: the URL's, else ClickHouse's)."
    )
    password: SecretStr | None = Field(default=None, description="The user's password.")
    secure: bool = Field(
        default=False,
        description="Connect over TLS (https; port 8443 unless the URL names one). An https "
        "URL is secure whatever this says.",
    )
    verify: bool = Field(default=True, description="Check the server's TLS certificate.")
    ca_cert: str | None = Field(
        default=None,
        title="CA certificate",
        description="A CA bundle file (PEM) to check the server's certificate with; default: "
        "the system's.",
    )

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        try:
            parsed = parse_url(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        if parsed.password:
            raise ValueError(
                f"The URL {redact(value)!r} holds a password; put it in the password field, "
                "which Prefect keeps secret."
            )
        return value

    def database_url(self) -> DatabaseURL:
        """The database these credentials name, password and TLS options included."""
        url = parse_url(self.url)
        if url.is_embedded:
            return url
        scheme = url.scheme
        port = url.port
        if self.secure and scheme == "http":
            scheme = "https"
            if urlsplit(self.url.strip()).port is None:
                port = 8443
        return DatabaseURL(
            scheme=scheme,
            host=url.host,
            port=port,
            username=self.username or url.username,
            password=self.password.get_secret_value() if self.password else "",
            database=url.database,
            verify=self.verify,
            ca_cert=self.ca_cert or "",
        )

    def get_client(self) -> Database:
        """The database, ready to open (``with database.session() as client: ...``)."""
        from context_cleaner.bridge.database import Database

        return Database(self.database_url())


def load_credentials(name: str) -> ClickHouseCredentials:
    """The saved block ``name``; a missing one, or no Prefect API, is a ConfigurationError."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigurationError(
            f"The credentials block {name!r} is kept by a Prefect server, and no Prefect API "
            "is set: set PREFECT_API_URL (or `prefect config set PREFECT_API_URL=...`), or "
            "name the database with --clickhouse-url."
        )
    try:
        block = ClickHouseCredentials.load(name)
    except ValueError as exc:
        raise ConfigurationError(
            f"No ClickHouseCredentials block named {name!r} on the Prefect server "
            f"({str(exc).splitlines()[0]}). Save one (README, section Prefect) or fix "
            f"--credentials-block / {CREDENTIALS_ENV}."
        ) from None
    return block


def with_credentials(settings: Settings) -> Settings:
    """``settings`` whose database is its credentials block's (unchanged without one).

    The URL the settings then carry shows no password; the password and the TLS options
    travel in its parse (:class:`~context_cleaner.bridge.from_settings.CheckedURL`),
    which is what the database is opened from."""
    if not settings.credentials_block:
        return settings
    url = load_credentials(settings.credentials_block).database_url()
    checked = CheckedURL(url.with_password("").dsn)
    checked.parsed = url
    return settings.replace(clickhouse_url=checked)

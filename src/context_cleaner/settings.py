"""One typed settings object, and the one home of every environment variable name.

:class:`Settings` holds what a run of migrate, sync, validate, rollback, status, run or
serve is told: where the transcripts and the database are, how work is batched and
committed, which engine runs it. It is read from flags, then the environment, then
the defaults written here once (:meth:`Settings.from_env`), by the command line, the
Prefect flows, ``serve`` and the Python API alike, and passed down: nothing below the
command line sees its flags.

A leaf module (it imports nothing of the project but :mod:`context_cleaner.errors`)
and cheap to import: a frozen dataclass, not a pydantic model, so a sync that finds
nothing new still starts without pydantic.

The ClickHouse URL is kept as given and never shown: ``repr`` hides it whole. Parsing
and redacting it are the bridge's job (``bridge.url``): the database is opened once per
command, and shown as ``DatabaseURL.redacted()``.

Environment variables: every name the project reads is defined below. The OpenTelemetry
SDK's own ``OTEL_*`` variables stay in :mod:`context_cleaner.observability.telemetry`,
which reads them as that SDK specifies; ``PREFECT_API_URL`` (Prefect's own) and
``CLAUDE_CONFIG_DIR`` (Claude Code's own) are named here because the project reads them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from context_cleaner.errors import ConfigurationError

# -- environment variable names ---------------------------------------------------------------

URL_ENV = "CONTEXT_CLEANER_CLICKHOUSE_URL"
PASSWORD_ENV = "CONTEXT_CLEANER_CLICKHOUSE_PASSWORD"
CREDENTIALS_ENV = "CONTEXT_CLEANER_CREDENTIALS_BLOCK"
PRICES_ENV = "CONTEXT_CLEANER_PRICES"
LOCK_TIMEOUT_ENV = "CONTEXT_CLEANER_LOCK_TIMEOUT"
HOST_ENV = "CONTEXT_CLEANER_HOST"
ALERTS_ENV = "CONTEXT_CLEANER_ALERTS"
POLL_ENV = "CONTEXT_CLEANER_WATCH_POLL"
TOKEN_ENV = "CONTEXT_CLEANER_DASHBOARD_TOKEN"
DEBUG_ENV = "CONTEXT_CLEANER_DEBUG"
PAUSE_ENV = "CONTEXT_CLEANER_PAUSE_BEFORE_WRITE"
CONFIG_DIR_ENV = "CLAUDE_CONFIG_DIR"
API_ENV = "PREFECT_API_URL"

ENVIRONMENT: dict[str, str] = {
    URL_ENV: "the database URL (`clickhouse_url`)",
    PASSWORD_ENV: "a server's password, so it need not be written into the URL",
    CREDENTIALS_ENV: "the name of a `ClickHouseCredentials` Prefect block (`credentials_block`)",
    PRICES_ENV: "a JSON file of price overrides (`prices`)",
    LOCK_TIMEOUT_ENV: "seconds to wait for another process holding the embedded database "
    "(default 30)",
    HOST_ENV: "this machine's name on its rows (default the hostname)",
    ALERTS_ENV: "alert thresholds as JSON, over the spec's `MIGRATION_ALERTS`",
    POLL_ENV: "`1`: watch mode polls instead of using file events (`watch_polling`)",
    TOKEN_ENV: "the dashboard's access token (16+ characters)",
    DEBUG_ENV: "`1`: show the traceback of an error (`--debug`)",
    PAUSE_ENV: "crash tests only: stop before the N-th snapshot write",
    CONFIG_DIR_ENV: "Claude Code's config folder(s), comma-separated: the transcript roots",
    API_ENV: "Prefect's API; when set, `--engine auto` runs commands as Prefect flows",
}
"""Every environment variable the project reads, and what it sets (docs/operations.md)."""

# -- defaults (each written once) --------------------------------------------------------------

DEFAULT_EMBEDDED_PATH = "~/.context_cleaner/clickhouse"
BATCH_SIZE = 100
SPEC_CHECKPOINT_INTERVAL = 10
"""The spec's ``migrate_all_historical_data(checkpoint_interval=10)``: the Python API's
interval (the command line's is :attr:`Settings.checkpoint_interval`, 0)."""
MAX_CHECKPOINTS = 10
"""The most checkpoints one migration takes: when its files would make more at the interval
asked for, a wider one is used (``migration.checkpoints.bounded_interval``). Each checkpoint
is a snapshot of 4 tables kept until the next migration, and every kept table slows each
opening of the embedded engine (~2.5 ms a table measured, docs/operations.md)."""
MAX_BATCH_BYTES = 64 * 1024 * 1024
COMMIT_EVERY = 1.0
COMMIT_MAX_RECORDS = 20_000
MAX_MEMORY_MB = 200
DEBOUNCE = 1.0
SAMPLE_SIZE = 100
TOLERANCE = 0.001
SYNC_CRON = "0 * * * *"
VALIDATION_CRON = "30 3 * * *"
ENGINES = ("auto", "prefect", "local")
WRITE_LIMIT = "context-cleaner-database"
"""The Prefect global concurrency limit (one slot) every flow run that writes or validates
a server's database holds, so scheduled and triggered runs never overlap there."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _setting(flag: str | None = None, env: str | None = None) -> dict[str, Any]:
    return {"flag": flag, "env": env}


def source_list(value: str | os.PathLike[str] | Sequence[str] | None) -> list[str] | None:
    """Transcript folders as one list: a single folder, several, or None (the defaults)."""
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value] or None


@dataclass(frozen=True)
class Settings:
    """Everything a run is told; defaults here, then the environment, then flags win."""

    source_dirs: tuple[str, ...] | None = field(
        default=None, metadata=_setting("--source-dir", CONFIG_DIR_ENV)
    )
    """Transcript folders (each a Claude config folder or its ``projects/``). None: the
    folders in ``$CLAUDE_CONFIG_DIR`` (read by discovery), else ``~/.config/claude/projects``
    and ``~/.claude/projects``. A folder given twice (one linked to the other) or inside
    another is walked once, as part of the outer one."""

    clickhouse_url: str | None = field(default=None, metadata=_setting("--clickhouse-url", URL_ENV))
    """The database, kept as given: ``chdb:///path`` (embedded) or
    ``http(s)://user@host:8123/db``. None: the embedded ``chdb://~/.context_cleaner/clickhouse``.
    Never shown as given (``repr`` hides it; the bridge shows it redacted)."""

    credentials_block: str | None = field(
        default=None, metadata=_setting("--credentials-block", CREDENTIALS_ENV)
    )
    """The name of a ``ClickHouseCredentials`` Prefect block holding the database's URL,
    user, password (a secret) and TLS options, instead of :attr:`clickhouse_url`
    (``prefect block register -m context_cleaner.orchestration.blocks``). One of the two
    names the database: a flag or parameter given wins over the other's environment
    variable."""

    prices: str | None = field(default=None, metadata=_setting("--prices", PRICES_ENV))
    """A JSON file of price overrides laid over the bundled table. None: the bundled table."""

    batch_size: int = field(default=BATCH_SIZE, metadata=_setting("--batch-size"))
    """Files per read batch (batches are also capped at :attr:`max_batch_bytes`)."""

    parallel_workers: int | None = field(default=None, metadata=_setting("--parallel-workers"))
    """Processes reading transcripts. None: the number of cores (never more)."""

    checkpoint_interval: int = field(default=0, metadata=_setting("--checkpoint-interval"))
    """migrate: record a checkpoint (a rollback point) every N files, at most 10 a run (a
    multiple of N when more; a warning says so); 0: none (the snapshot before the run is
    always taken)."""

    commit_every: float = field(default=COMMIT_EVERY, metadata=_setting("--commit-every"))
    """Seconds of read batches one commit gathers (sooner when another process waits for the
    database; 0: every batch on its own). A commit costs ~0.1 s of fixed database work, so
    fewer, larger ones are faster, and a waiting reader gets the database within about this."""

    max_batch_bytes: int = field(default=MAX_BATCH_BYTES, metadata=_setting())
    """migrate: source bytes one read batch holds at most, so memory stays flat whatever the
    corpus (a sync reads batches of at most 16 MiB)."""

    commit_max_records: int = field(default=COMMIT_MAX_RECORDS, metadata=_setting())
    """migrate: usage records one commit gathers at most, so memory stays flat whatever the
    corpus (usually :attr:`commit_every` ends a commit first; measurements in
    docs/benchmarks.md)."""

    max_memory_mb: int = field(default=MAX_MEMORY_MB, metadata=_setting())
    """migrate, sync: the bound on the private memory a run adds to its process tree (the
    processes' own memory, not the pages of files they map): near it, a run commits what
    it gathered at once (``migration.memory``)."""

    engine: str = field(default="auto", metadata=_setting("--engine"))
    """``local``, ``prefect`` (run as a Prefect flow) or ``auto``: Prefect when
    ``$PREFECT_API_URL`` is set, else local."""

    validate: bool = field(default=True, metadata=_setting("--no-validate"))
    """migrate: check, at the end, the records the run read against the database rows."""

    force: bool = field(default=False, metadata=_setting("--force"))
    """migrate: read every file from its start again, whatever was committed."""

    dry_run: bool = field(default=False, metadata=_setting("--dry-run"))
    """Read and count everything, write nothing; project the time."""

    debounce: float = field(default=DEBOUNCE, metadata=_setting("--debounce"))
    """sync --watch: group changes over at most this many seconds and sync at most once
    every this many seconds."""

    watch_polling: bool = field(default=False, metadata=_setting(None, POLL_ENV))
    """sync --watch: poll the folders instead of using file events (network filesystems)."""

    full_validation: bool = field(default=False, metadata=_setting("--full-validation"))
    """validate: the spec's flag; every record is compared with or without it."""

    sample_size: int = field(default=SAMPLE_SIZE, metadata=_setting("--sample-size"))
    """validate: accepted for the spec's scripts; every record is compared whatever it says."""

    tolerance: float = field(default=TOLERANCE, metadata=_setting("--tolerance"))
    """validate: accepted token variance as a ratio; a missing or altered record fails
    whatever the ratio."""

    sync_cron: str = field(default=SYNC_CRON, metadata=_setting("--sync-cron"))
    """serve: when the scheduled sync runs (cron; hourly)."""

    validation_cron: str = field(default=VALIDATION_CRON, metadata=_setting("--validation-cron"))
    """serve: when the scheduled validation runs (cron; 03:30 daily)."""

    def __post_init__(self) -> None:
        if self.source_dirs is not None and not isinstance(self.source_dirs, tuple):
            dirs = source_list(self.source_dirs)  # a str or a list, as given
            object.__setattr__(self, "source_dirs", tuple(dirs) if dirs else None)
        if self.engine not in ENGINES:
            raise ConfigurationError(
                f"Unknown engine {self.engine!r}; use --engine {', '.join(ENGINES)}."
            )
        # The numbers are checked by the flags' types and by the migrator, which the
        # Python API reaches without flags.

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "clickhouse_url" and value is not None:
                value = "***"  # shown only as the bridge redacts it (DatabaseURL.redacted)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Flags (``overrides``; a None one is not given), then the environment, then defaults."""
        env = os.environ if environ is None else environ
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"Settings has no field {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, f in names.items():
            variable = f.metadata.get("env")
            if variable is None or variable == CONFIG_DIR_ENV:  # discovery reads that one
                continue
            raw = env.get(variable, "").strip()
            if f.type in ("bool", bool):  # on: 1, true, yes, on; off: 0, false, no, off, unset
                if raw.lower() not in _TRUE + _FALSE:
                    raise ConfigurationError(
                        f"{variable}={raw!r} is neither on (1, true, yes, on) nor off "
                        "(0, false, no, off). Fix or unset it."
                    )
                values[name] = raw.lower() in _TRUE
            elif raw:
                values[name] = raw
        given = {k: v for k, v in overrides.items() if v is not None}
        _one_database(values, given)
        values.update(given)
        return cls(**values)

    @property
    def sources(self) -> list[str] | None:
        """:attr:`source_dirs` as a list, as the pipeline takes them (None: the defaults)."""
        return list(self.source_dirs) if self.source_dirs else None

    @classmethod
    def from_values(
        cls, values: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """:meth:`from_env` with the settings among ``values``, a mapping that holds other
        things too: a command's parsed flags, a flow's parameters."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_env(environ, **{k: v for k, v in values.items() if k in names})

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def use_prefect(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when runs go through Prefect: ``prefect``, or ``auto`` with an API set."""
        env = os.environ if environ is None else environ
        if self.engine == "prefect":
            return True
        return self.engine == "auto" and bool(env.get(API_ENV))


def _one_database(from_env: dict[str, Any], given: dict[str, Any]) -> None:
    """The database is named by a URL or a credentials block, never both: one given as a
    flag drops the other's environment variable; both given (or both in the environment)
    is an error."""
    both = ("clickhouse_url", "credentials_block")
    named = [name for name in both if name in given]
    if len(named) == 2 or (not named and all(name in from_env for name in both)):
        raise ConfigurationError(
            "Both a ClickHouse URL and a credentials block name the database; give one "
            f"(--clickhouse-url / {URL_ENV} or --credentials-block / {CREDENTIALS_ENV})."
        )
    for name in named:
        from_env.pop(both[1 - both.index(name)], None)


DEFAULTS = Settings()
"""The defaults, for signatures below the command line that need one value of them."""


def settings_table() -> str:
    """The settings as a markdown table (field, flag, environment variable, default, what):
    docs/operations.md holds it and a test keeps the two the same."""
    import ast
    import inspect
    from itertools import pairwise

    tree = ast.parse(inspect.getsource(Settings))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, after in pairwise(body):
        named = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if named and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[node.target.id] = " ".join(str(after.value.value).split())  # type: ignore[union-attr]
    rows = [
        "| Setting | Flag | Environment | Default | What |",
        "|---|---|---|---|---|",
    ]
    for f in dataclasses.fields(Settings):
        flag, env = f.metadata.get("flag"), f.metadata.get("env")
        text = docs[f.name].replace("|", "\\|").replace("``", "`")
        text = re.sub(r":(?:attr|class|func|mod):`~?([^`]+)`", r"`\1`", text)
        rows.append(
            f"| `{f.name}` | {f'`{flag}`' if flag else ''} | {f'`{env}`' if env else ''} "
            f"| `{f.default!r}` | {text} |"
        )
    return "\n".join(rows)


def environment_table() -> str:
    """Every environment variable the project reads, as a markdown table."""
    rows = ["| Variable | What it sets |", "|---|---|"]
    rows += [f"| `{name}` | {what} |" for name, what in ENVIRONMENT.items()]
    return "\n".join(rows)

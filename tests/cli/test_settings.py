"""One settings object: defaults once, then the environment, then flags; never a URL shown;
argparse only under cli/; every environment variable named in one place; documented."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from context_cleaner.cli import build_parser
from context_cleaner.cli.common import command_settings
from context_cleaner.errors import MigrationError
from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
from context_cleaner.settings import (
    DEFAULTS,
    POLL_ENV,
    PRICES_ENV,
    URL_ENV,
    Settings,
    environment_table,
    settings_table,
    source_list,
)

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "context_cleaner"


def test_the_defaults_are_the_documented_ones() -> None:
    s = Settings()
    assert s == DEFAULTS
    assert (s.batch_size, s.parallel_workers, s.checkpoint_interval) == (100, None, 0)
    assert (s.commit_every, s.commit_max_records, s.max_batch_bytes) == (1.0, 20_000, 64 * 2**20)
    assert (s.engine, s.validate, s.force, s.dry_run) == ("auto", True, False, False)
    assert (s.debounce, s.watch_polling) == (1.0, False)
    assert (s.sample_size, s.tolerance, s.full_validation) == (100, 0.001, False)
    assert (s.sync_cron, s.validation_cron) == ("0 * * * *", "30 3 * * *")
    assert Settings.from_env({}) == s


def test_the_environment_then_flags() -> None:
    env = {URL_ENV: "chdb:///tmp/env-db", PRICES_ENV: "/tmp/prices.json", POLL_ENV: "yes"}
    from_env = Settings.from_env(env)
    assert from_env.clickhouse_url == "chdb:///tmp/env-db"
    assert from_env.prices == "/tmp/prices.json" and from_env.watch_polling
    flagged = Settings.from_env(env, clickhouse_url="chdb:///tmp/flag-db", prices=None)
    assert flagged.clickhouse_url == "chdb:///tmp/flag-db"  # a flag wins
    assert flagged.prices == "/tmp/prices.json"  # a flag not given (None) leaves the variable
    assert not Settings.from_env({POLL_ENV: "0"}).watch_polling
    with pytest.raises(TypeError, match="no field"):
        Settings.from_env({}, batch=3)


def test_source_dirs_are_normalised_in_one_place() -> None:
    assert source_list(None) is None and source_list([]) is None
    assert source_list("a") == ["a"] and source_list(Path("a")) == ["a"]
    assert source_list(("a", "b")) == ["a", "b"]
    assert Settings(source_dirs="a").source_dirs == ("a",)  # type: ignore[arg-type]
    assert Settings(source_dirs=["a", "b"]).sources == ["a", "b"]  # type: ignore[arg-type]
    assert Settings(source_dirs=[]).source_dirs is None  # type: ignore[arg-type]


RUN_FLAGS = st.fixed_dictionaries(
    {},
    optional={
        "batch_size": st.integers(1, 10**6),
        "parallel_workers": st.integers(1, 64),
        "checkpoint_interval": st.integers(0, 10**4),
        "commit_every": st.floats(0, 3600, allow_nan=False).map(lambda v: round(v, 3)),
        "engine": st.sampled_from(["auto", "prefect", "local"]),
        "dry_run": st.just(True),
        "force": st.just(True),
        "validate": st.just(False),
        "prices": st.from_regex(r"/tmp/[a-z]{1,8}\.json", fullmatch=True),
        "clickhouse_url": st.from_regex(r"chdb:///tmp/[a-z]{1,8}", fullmatch=True),
        "source_dirs": st.lists(st.from_regex(r"/tmp/[a-z]{1,8}", fullmatch=True), max_size=3),
    },
)


def _argv(command: str, values: dict[str, Any]) -> list[str]:
    argv = [command]
    for name, value in values.items():
        if name == "validate":
            argv.append("--no-validate")
        elif name == "source_dirs":
            for folder in value:
                argv += ["--source-dir", folder]
        elif value is True:
            argv.append("--" + name.replace("_", "-"))
        else:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv


@given(command=st.sampled_from(["migrate", "sync"]), values=RUN_FLAGS)
def test_flags_become_settings_and_nothing_else(command: str, values: dict[str, Any]) -> None:
    """flags -> Settings -> values: every given flag is its field's value; every other field
    keeps its default."""
    args = build_parser().parse_args(_argv(command, values))
    settings = command_settings(args, environ={})
    expected = dict(values)
    if "source_dirs" in expected:
        expected["source_dirs"] = tuple(expected["source_dirs"]) or None
    for f in dataclasses.fields(Settings):
        want = expected.get(f.name, getattr(DEFAULTS, f.name))
        assert getattr(settings, f.name) == want, f.name


@given(
    user=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    password=st.from_regex(r"[A-Za-z0-9!$%^*()_+=-]{6,20}", fullmatch=True),
    host=st.from_regex(r"[a-z]{1,10}\.example", fullmatch=True),
)
def test_the_url_never_appears_in_repr(user: str, password: str, host: str) -> None:
    url = f"https://{user}:{password}@{host}:8443/usage"
    s = Settings.from_env({URL_ENV: url})
    assert s.clickhouse_url == url  # kept as given
    for shown in (repr(s), str(s), repr(s.replace(batch_size=5)), f"{s}"):
        assert password not in shown and url not in shown


def test_the_migrator_takes_its_settings() -> None:
    s = Settings(
        clickhouse_url="chdb:///nonexistent-never-opened",
        batch_size=7,
        parallel_workers=1,
        checkpoint_interval=3,
        commit_every=0.5,
        validate=False,
        max_batch_bytes=2**20,
        commit_max_records=500,
    )
    m = HistoricalDataMigrator(settings=s)
    assert (m.batch_size, m.parallel_workers, m.checkpoint_interval) == (7, 1, 3)
    assert (m.commit_every, m.validation_enabled) == (0.5, False)
    options = m._options(None, False, m.checkpoint_interval)  # what its runs are told
    assert (options.batch_size, options.parallel_workers, options.commit_every) == (7, 1, 0.5)
    assert (options.max_batch_bytes, options.commit_max_records) == (2**20, 500)
    assert m.bridge.database.url.path == "/nonexistent-never-opened"
    spec = HistoricalDataMigrator("chdb:///nonexistent-never-opened")  # the spec's defaults
    assert spec.batch_size == 100 and spec.validation_enabled


def test_file_pattern_filters_discovery(tmp_path: Path) -> None:
    session = tmp_path / "projects" / "p" / "s1.jsonl"
    agent = tmp_path / "projects" / "p" / "s1" / "subagents" / "agent-1.jsonl"
    agent.parent.mkdir(parents=True)
    session.write_text("{}\n")
    agent.write_text("{}\n{}\n")
    m = HistoricalDataMigrator(f"chdb://{tmp_path}/db")  # no database yet: nothing opened
    everything = m.discover(str(tmp_path / "projects"))
    assert sorted(Path(f.path).name for f in everything.files) == ["agent-1.jsonl", "s1.jsonl"]
    agents = m.discover(str(tmp_path / "projects"), "agent-*.jsonl")
    assert [Path(f.path) for f in agents.files] == [agent]
    assert agents.total_bytes == agents.pending_bytes == agent.stat().st_size
    nested = m.discover(str(tmp_path / "projects"), "subagents/*.jsonl")
    assert [Path(f.path) for f in nested.files] == [agent]
    assert m.discover(str(tmp_path / "projects"), "*.json").files == []
    with pytest.raises(MigrationError, match="empty"):
        m.discover(str(tmp_path / "projects"), "")


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(SRC.rglob("*.py"))]


def test_argparse_is_imported_only_under_cli() -> None:
    offenders = []
    for path, tree in _modules():
        if path.parent.name == "cli":
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "argparse" for n in names):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_every_environment_variable_is_named_in_settings_only() -> None:
    """``NAME_ENV = "..."`` lives in settings.py; the OpenTelemetry SDK's own ``OTEL_*``
    names stay with the telemetry module that reads them as that SDK specifies."""
    homes: dict[str, list[str]] = {}
    for path, tree in _modules():
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and any(isinstance(t, ast.Name) and t.id.endswith("_ENV") for t in node.targets)
                and not node.value.value.startswith("OTEL_")
            ):
                homes.setdefault(node.value.value, []).append(str(path.relative_to(SRC)))
    assert homes and all(where == ["settings.py"] for where in homes.values()), homes


def test_the_runbook_tables_are_the_model() -> None:
    runbook = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert settings_table() in runbook
    assert environment_table() in runbook


def test_a_flag_url_is_parsed_once_per_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from context_cleaner.bridge import from_settings, url

    calls: list[str] = []
    real = url.parse_url

    def counted(text: str) -> Any:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(url, "parse_url", counted)
    monkeypatch.setattr(from_settings, "parse_url", counted)
    args = build_parser().parse_args(["status", "--clickhouse-url", "chdb:///tmp/cc-once"])
    database = from_settings.open_database(command_settings(args, environ={}))
    assert database.url.path == "/tmp/cc-once" and calls == ["chdb:///tmp/cc-once"]


def test_the_deployments_use_the_settings_defaults() -> None:
    """deployments/prefect.yaml restates a few defaults (YAML cannot import them)."""
    yaml = (REPO / "deployments" / "prefect.yaml").read_text(encoding="utf-8")
    assert f'cron: "{DEFAULTS.sync_cron}"' in yaml
    assert f'cron: "{DEFAULTS.validation_cron}"' in yaml
    assert f"batch_size: {DEFAULTS.batch_size}\n" in yaml
    assert f"tolerance: {DEFAULTS.tolerance}\n" in yaml

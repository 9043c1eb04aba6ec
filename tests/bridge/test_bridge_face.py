"""The bridge's public face: every exported name resolves, and importing it costs nothing."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import context_cleaner.bridge as bridge


def test_every_exported_name_comes_from_its_module() -> None:
    assert sorted(bridge.__all__) == sorted(bridge._MODULE_OF)
    for name in bridge.__all__:
        module = importlib.import_module(f"context_cleaner.bridge.{bridge._MODULE_OF[name]}")
        assert getattr(bridge, name) is getattr(module, name), name
    assert set(bridge.__all__) <= set(dir(bridge))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        bridge.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_the_token_bridge_hands_on_the_names_its_importers_use() -> None:
    from context_cleaner.bridge import token_bridge

    assert token_bridge.COUNTED == bridge.COUNTED_VIEW
    for name in set(token_bridge.__all__) - {"COUNTED"}:
        assert getattr(token_bridge, name) is getattr(bridge, name), name


_PROBE = """
import sys
{setup}
print(sorted(m for m in sys.modules if m.startswith(("clickhouse_connect", "chdb",
      "context_cleaner.bridge."))))
"""


def _loaded_after(setup: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(setup=setup), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_importing_the_face_loads_no_part_of_the_bridge() -> None:
    assert _loaded_after("import context_cleaner.bridge") == "[]"


def test_analyze_imports_neither_clickhouse_connect_nor_chdb(tmp_path: Path) -> None:
    setup = (
        "import runpy\n"
        "sys.argv = ['context-cleaner', 'analyze', '--source-dir', sys.argv[1], '--json']\n"
        "try:\n"
        "    runpy.run_module('context_cleaner', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stdout.flush()\n"
        "print()"
    )
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "s.jsonl").write_text("{}\n")
    last = _loaded_after(setup, str(tmp_path)).splitlines()[-1]
    assert "clickhouse_connect" not in last and "chdb" not in last, last

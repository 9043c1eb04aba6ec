"""Package faces that load their names on first use (PEP 562).

A face lists its public names once, as imports under ``if TYPE_CHECKING:`` (what
type checkers and editors read) and in ``__all__``. At run time nothing there
is imported: :func:`lazy_face` gives the package a ``__getattr__`` that, the
first time a name is read, finds its module among those imports, imports it and
keeps the value on the package. So ``import context_cleaner`` (and every
command's start-up) pays for none of the modules behind the names.
"""

from __future__ import annotations

import sys

# not ``typing.TYPE_CHECKING``: importing typing would be most of a face's import time
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def _typing_imports(path: str) -> dict[str, tuple[str, str]]:
    """name -> (module, name in it) of the ``from m import n`` lines under ``if TYPE_CHECKING:``."""
    import ast

    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    found: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                    for alias in stmt.names:
                        found[alias.asname or alias.name] = (stmt.module, alias.name)
    return found


def lazy_face(package: str) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``__init__`` lists its names
    under ``if TYPE_CHECKING:`` and in ``__all__``."""
    face = sys.modules[package]
    homes: dict[str, tuple[str, str]] = {}

    def __getattr__(name: str) -> object:
        if not homes:
            homes.update(_typing_imports(str(face.__file__)))
        if name not in homes or name not in vars(face).get("__all__", ()):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = homes[name]
        __import__(module)  # not importlib: importing it would cost more than this module
        value = getattr(sys.modules[module], attribute)
        setattr(face, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(face)) | set(vars(face).get("__all__", ())))

    return __getattr__, __dir__

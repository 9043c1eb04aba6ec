"""Package faces that load their names on first use (PEP 562).

A face lists its names once; each is imported from its module the first time it
is read and then kept on the package, so ``import context_cleaner`` (and every
command's start-up) pays for none of the modules behind the names.
"""

from __future__ import annotations

import sys

# not ``typing.TYPE_CHECKING``: importing typing would be most of the start-up cost
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping


def lazy_face(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps a module to its names."""
    home = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        __import__(module)  # not importlib: importing it would cost more than this module
        value = getattr(sys.modules[module], name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(home))

    return __getattr__, __dir__

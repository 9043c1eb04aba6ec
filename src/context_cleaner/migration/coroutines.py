"""The spec's coroutines over synchronous work: one way, for the migrator and the API.

Every coroutine of the spec's ``HistoricalDataMigrator`` runs synchronous work (a method of
the migration service, or a function of the testing API) in a worker thread, so the event
loop stays free. Work that writes takes the migrator's turn (its write lock): the service's
methods take it themselves where they write, the API's functions take it through
:func:`in_thread` (``HistoricalDataMigrator._turn``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(
    turn: AbstractContextManager[object] | None,
    work: Callable[P, T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``work`` in a worker thread, holding ``turn`` (a migrator's write lock) while it runs
    when one is given."""
    import asyncio  # here: a run from the command line never loads it (~30 ms)

    if turn is None:
        return await asyncio.to_thread(work, *args, **kwargs)

    def run() -> T:
        with turn:
            return work(*args, **kwargs)

    return await asyncio.to_thread(run)


class InThread:
    """The spec's coroutine of a synchronous method, declared in its class body: the same
    parameters, the method run by :func:`in_thread` (it takes the turn itself where it
    writes). Replaced by that coroutine function when its class is made."""

    def __init__(self, method: Callable[..., Any], doc: str) -> None:
        self.method, self.doc = method, doc

    def __set_name__(self, owner: type, name: str) -> None:
        method = self.method

        @functools.wraps(method)  # inspect.signature shows the method's parameters
        async def coroutine(self: Any, /, *args: Any, **kwargs: Any) -> Any:
            return await in_thread(None, method, self, *args, **kwargs)

        coroutine.__name__, coroutine.__doc__ = name, self.doc
        coroutine.__qualname__ = f"{owner.__qualname__}.{name}"
        setattr(owner, name, coroutine)

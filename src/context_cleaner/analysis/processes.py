"""Worker processes that never outlive the process that started them.

A pool worker blocks on its queue (or on a pipe to its parent), which never closes
when the parent is SIGKILLed: the worker would wait, with parent 1, forever. On
Linux the kernel can send a process a signal when its parent dies
(``PR_SET_PDEATHSIG``); every pool of this package starts its workers through
:func:`die_with_parent`. Elsewhere workers end with their pool as usual.

Workers never run the caller's ``__main__`` (:func:`pool_context`), so a script without an
``if __name__ == "__main__":`` guard, a notebook or a ``python -`` script can use the API.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import types
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext, SpawnContext, SpawnProcess
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Make this process receive SIGKILL when ``parent`` (its parent) dies.

    Called first in a new worker, with the pid of the process that started the pool.
    A parent that died before the request took effect ends the worker at once.
    """
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:
        os._exit(1)


_MAIN_SWAP = threading.Lock()


class _LibrarySpawnProcess(SpawnProcess):
    """A spawned worker that does not import the parent's ``__main__``.

    multiprocessing's spawn (and forkserver) start the child by re-importing the parent's
    main script or ``-m`` module, as ``__mp_main__``, so that functions defined there can be
    unpickled. A script without a main guard then runs again in every worker: its migration
    opens the database the parent holds (BrokenProcessPool, then DatabaseLockedError). Our
    workers run only this package's functions, so the child needs no main at all: what the
    parent tells it comes from ``spawn.get_preparation_data``, which reads
    ``sys.modules["__main__"]`` while the process is launched. During the launch (a few ms,
    one launch at a time) that entry is a bare module, as in a notebook, so the child
    imports nothing of the caller's.

    Why here and not around the pool: a pool spawns workers lazily, on later submits from
    any thread, so only the process's own launch is the exact window; and swapping the
    ``sys.modules`` entry, not clearing the user's module's ``__file__``/``__spec__``,
    leaves the user's globals untouched for their other threads (one that looks the entry up
    during those milliseconds sees the bare module). Launching workers through a ``-m``
    entry point of our own would need a pool of our own as well. The price: a function
    handed to these workers must be importable, not defined in ``__main__``.
    """

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _MAIN_SWAP:
            real = sys.modules.get("__main__")
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                return SpawnProcess._Popen(process_obj)
            finally:
                if real is not None:
                    sys.modules["__main__"] = real


class _LibrarySpawnContext(SpawnContext):
    Process = _LibrarySpawnProcess


_LIBRARY_SPAWN = _LibrarySpawnContext()


def pool_context(start_method: str | None = None) -> BaseContext:
    """The multiprocessing context for this package's pools: ``fork`` as asked, else a
    spawn that never runs the caller's ``__main__`` (:class:`_LibrarySpawnProcess`).

    ``start_method`` None: the platform's default (``forkserver``, whose workers would
    import the main too, is served by that spawn).
    """
    method = start_method or multiprocessing.get_start_method()
    if method == "fork":
        return multiprocessing.get_context("fork")
    return _LIBRARY_SPAWN


def worker_pool(workers: int, start_method: str | None = None) -> ProcessPoolExecutor:
    """A process pool whose workers end when this process dies (:func:`die_with_parent`).

    ``start_method``: ``"spawn"`` in a process that may hold the embedded engine
    (its state must not be copied into a fork); None for the platform's default.
    """
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(start_method),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )

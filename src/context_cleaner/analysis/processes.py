"""Worker processes that never outlive the process that started them.

A pool worker blocks on its queue (or on a pipe to its parent), which never closes
when the parent is SIGKILLed: the worker would wait, with parent 1, forever. On
Linux the kernel can send a process a signal when its parent dies
(``PR_SET_PDEATHSIG``); every pool of this package starts its workers through
:func:`die_with_parent`. Elsewhere workers end with their pool as usual.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

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


def worker_pool(workers: int, start_method: str | None = None) -> ProcessPoolExecutor:
    """A process pool whose workers end when this process dies (:func:`die_with_parent`).

    ``start_method``: ``"spawn"`` in a process that may hold the embedded engine
    (its state must not be copied into a fork); None for the platform's default.
    """
    context = multiprocessing.get_context(start_method) if start_method else None
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )

"""The package's pools: ``fork`` as asked, else a spawn that leaves ``__main__`` alone."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from context_cleaner.analysis.processes import pool_context


def _main_file() -> str | None:
    return getattr(sys.modules["__main__"], "__file__", None)


@pytest.mark.slow
def test_a_spawned_worker_imports_no_main_and_ours_is_restored() -> None:
    main = sys.modules["__main__"]
    assert pool_context("fork").get_start_method() == "fork"
    with ProcessPoolExecutor(1, mp_context=pool_context("spawn")) as pool:
        pid, child_main = pool.submit(os.getpid).result(), pool.submit(_main_file).result()
    assert pid != os.getpid()
    assert child_main is None  # the child's __main__ is its own bootstrap, not pytest's
    assert sys.modules["__main__"] is main

"""Bulk work collects less often, and leaves the collector as it found it."""

from __future__ import annotations

import gc
import threading

from context_cleaner.analysis import gc_pace


def test_bulk_work_sets_and_restores_the_thresholds_even_when_blocks_overlap() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(900, 11, 12)  # whatever the host chose is what comes back
        entered, release = threading.Barrier(2), threading.Event()

        def other_run() -> None:
            with gc_pace.bulk_work():
                entered.wait()
                release.wait()

        thread = threading.Thread(target=other_run)
        with gc_pace.bulk_work():
            assert gc.get_threshold() == gc_pace.BULK_THRESHOLDS
            thread.start()
            entered.wait()
        # This block ended first: the other is still bulk work.
        assert gc.get_threshold() == gc_pace.BULK_THRESHOLDS
        release.set()
        thread.join()
        assert gc.get_threshold() == (900, 11, 12)
        try:
            with gc_pace.bulk_work():
                raise KeyError("a failed run")
        except KeyError:
            pass
        assert gc.get_threshold() == (900, 11, 12)
    finally:
        gc.set_threshold(*before)

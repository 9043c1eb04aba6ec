"""``context-cleaner sync --watch``: sync within about a second of each change to the transcripts.

Filesystem events (watchfiles: inotify on Linux, polling as the fallback) say
which transcript files changed; each sync reads only those (``only_paths``), so
it costs what the new bytes cost. Around that:

- **Debounce.** Changes are grouped: a sync starts once writes pause for
  :data:`STEP_MS`, or after ``--debounce`` seconds of continuous writing, and at
  most once every ``--debounce`` seconds, so a busy session does not keep the
  database busy: between syncs the lock is free for ``status`` and the dashboard
  (each sync also releases it between batches when someone waits).
- **Safety net.** A full sync runs at start, right after the watcher is up
  (covering changes made while it started), when a folder appears, and every
  :data:`FULL_SYNC_SECONDS`; with nothing new it only stats files. Events that
  were missed therefore cost at most a minute of lag.
- **Polling.** ``CONTEXT_CLEANER_WATCH_POLL=1`` (``Settings.watch_polling``) forces
  polling; when file events cannot be used (no inotify, watch limit reached) the
  watcher falls back to it. When polling fails too (a symlink loop in the folders, a
  file name that is not UTF-8), a full sync runs every :data:`POLLING_FULL_SYNC_SECONDS`
  and the watcher is tried again every :data:`WATCH_RETRY_SECONDS`.
  A poller compares modification times, which miss a write landing in the same
  clock tick as the previous look, so when polling the full sync (which compares
  sizes too) runs every :data:`POLLING_FULL_SYNC_SECONDS`.
- **Errors.** A failed sync is logged and retried with backoff (up to
  :data:`MAX_BACKOFF` seconds); the watcher never dies of one. Only a
  configuration error at start ends it, with a non-zero exit code.
- **Stopping.** SIGINT or SIGTERM: the current batch is committed, then exit 0.
- **Output.** ``--json``: one JSON line per sync (the result plus ``trigger``:
  ``initial``, ``change``, ``full``; ``error`` for a failed one), except safety-net
  syncs that found nothing; otherwise one line per sync that read something or failed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from context_cleaner.errors import ContextCleanerError, TerminalError
from context_cleaner.migration.incremental import (
    SyncInterrupted,
    SyncRun,
    source_roots,
    summary_line,
)
from context_cleaner.migration.run_record import new_run_id
from context_cleaner.settings import DEFAULTS, Settings

if TYPE_CHECKING:
    from context_cleaner.migration.historical_migrator import HistoricalDataMigrator
    from context_cleaner.migration.run_results import IncrementalMigrationResult

#: Quiet time after a write before its changes are synced.
STEP_MS = 50
#: How often the loop wakes up without events (for retries and the periodic full sync).
TICK_MS = 500
#: The safety-net full sync runs this often (stat calls only when nothing changed).
FULL_SYNC_SECONDS = 60.0
POLLING_FULL_SYNC_SECONDS = 5.0
#: Longest wait before retrying a failed sync.
MAX_BACKOFF = 60.0
#: Polling interval when file events are not used.
POLL_DELAY_MS = 300
#: When the watcher fails in both modes (a symlink loop makes the poller give up; a name
#: that is not UTF-8 stops both), it is tried again this often; full syncs run meanwhile.
WATCH_RETRY_SECONDS = 60.0


class Watcher:
    """Turns filesystem events into incremental syncs (see the module docstring)."""

    def __init__(
        self,
        migrator: HistoricalDataMigrator,
        settings: Settings = DEFAULTS,
        *,
        as_json: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        """Watch the settings' folders (``source_dirs``), with their ``debounce`` and
        ``watch_polling``; ``as_json``: a JSON line per sync on ``out``."""
        self.migrator = migrator
        self.roots: list[Path] = source_roots(settings.sources)
        self.absolute = [Path(os.path.abspath(r)) for r in self.roots]
        self.debounce = max(0.0, settings.debounce)
        self.as_json = as_json
        self.polling = settings.watch_polling
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stop = threading.Event()
        self.run_row = SyncRun(migration_id=new_run_id("watch"))
        self.pending: set[str] = set()
        self.full_due = 0.0  # monotonic time of the next full sync (0 = as soon as possible)
        self.retry_at = 0.0
        self.failures = 0
        self.last_sync = 0.0

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Watch until stopped; returns the exit code."""
        previous = self._install_signals()
        try:
            self._sync(None, "initial", initial=True)
            self.full_due = 0.0  # once more as soon as the watcher is up
            for changes in self._events():
                self._collect(changes)
                if self.stop.is_set():
                    break
                self._sync_due()
        finally:
            self._restore_signals(previous)
        self._say(f"stopped; run {self.run_row.migration_id}: {self.run_row.syncs} sync(s).")
        return 0

    def _sync_due(self) -> None:
        now = time.monotonic()
        if now < self.retry_at or now < self.last_sync + self.debounce:
            return
        if now >= self.full_due:
            self.pending.clear()
            self._sync(None, "full")
        elif self.pending:
            paths, self.pending = self.pending, set()
            self._sync(paths, "change")

    def _sync(self, paths: set[str] | None, trigger: str, *, initial: bool = False) -> None:
        started = time.monotonic()
        self.last_sync = started
        try:
            result = self.migrator.sync(
                [str(r) for r in self.roots],
                only_paths=paths,
                run=self.run_row,
                should_stop=self.stop.is_set,
            )
        except SyncInterrupted:
            return
        except TerminalError as exc:
            if initial:
                raise
            self._failed(paths, exc)
            return
        except Exception as exc:  # never die of one sync: log, retry later
            self._failed(paths, exc)
            return
        self.failures = 0
        self.retry_at = 0.0
        if paths is None:
            every = POLLING_FULL_SYNC_SECONDS if self.polling else FULL_SYNC_SECONDS
            self.full_due = started + every
        if result.errors:  # unreadable files: read again after a backoff
            self.full_due = min(self.full_due, started + self._backoff(1))
        self._emit(result, trigger)

    def _failed(self, paths: set[str] | None, exc: Exception) -> None:
        self.failures += 1
        delay = self._backoff(self.failures)
        self.retry_at = time.monotonic() + delay
        if paths is None:
            self.full_due = 0.0
        else:
            self.pending |= paths
        kind = "" if isinstance(exc, ContextCleanerError) else f"{type(exc).__name__}: "
        self._say(f"error: sync failed: {kind}{exc}; retrying in {delay:.0f} s.")
        if self.as_json:
            self._line({"trigger": "error", "success": False, "errors": [f"{kind}{exc}"]})

    @staticmethod
    def _backoff(failures: int) -> float:
        return min(MAX_BACKOFF, 2.0 ** max(0, failures - 1))

    # -- events --------------------------------------------------------------------------------

    def _events(self) -> Iterator[set[tuple[int, str]]]:
        """Changes from watchfiles (an empty set every :data:`TICK_MS` without any)."""
        import watchfiles

        failed = ""  # the last error of the watcher itself, said once
        while not self.stop.is_set():
            mode = "polling" if self.polling else "file events"
            if not failed:
                where = ", ".join(map(str, self.absolute))
                self._say(f"watching {where} ({mode}); Ctrl-C to stop.")
            try:
                yield from watchfiles.watch(
                    *self.absolute,
                    watch_filter=None,
                    debounce=max(STEP_MS, int(self.debounce * 1000)),
                    step=STEP_MS,
                    stop_event=self.stop,
                    rust_timeout=TICK_MS,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                    force_polling=True if self.polling else None,
                    poll_delay_ms=POLL_DELAY_MS,
                )
                return
            except (OSError, RuntimeError) as exc:
                if self.stop.is_set():
                    return
                self.full_due = 0.0
                if not self.polling:
                    self._say(f"file events unavailable ({exc}); polling instead.")
                    self.polling = True
                    continue
                if str(exc) != failed:
                    failed = str(exc)
                    self._say(
                        f"error: watching failed ({exc}); a full sync every "
                        f"{POLLING_FULL_SYNC_SECONDS:.0f} s instead, the watcher tried again "
                        f"every {WATCH_RETRY_SECONDS:.0f} s."
                    )
                # No events: the loop's full syncs (our own walk) carry on meanwhile.
                again = time.monotonic() + WATCH_RETRY_SECONDS
                while not self.stop.is_set() and time.monotonic() < again:
                    yield set()
                    self.stop.wait(TICK_MS / 1000)

    def _collect(self, changes: set[tuple[int, str]]) -> None:
        import watchfiles

        for change, raw in changes:
            if raw.endswith(".jsonl"):
                if change != watchfiles.Change.deleted:  # a deleted file keeps its rows
                    path = self._as_discovered(raw)
                    if path is not None:
                        self.pending.add(path)
            elif change == watchfiles.Change.added and os.path.isdir(raw):
                self.full_due = 0.0  # files may have landed before the folder was watched

    def _as_discovered(self, raw: str) -> str | None:
        """An event's absolute path as discovery spells it (under the root as given)."""
        for root, absolute in zip(self.roots, self.absolute, strict=True):
            try:
                rel = Path(raw).relative_to(absolute)
            except ValueError:
                continue
            return str(root / rel)
        return None

    # -- output and signals ------------------------------------------------------------------

    def _emit(self, result: IncrementalMigrationResult, trigger: str) -> None:
        quiet = trigger == "full" and not (result.files_changed or result.errors)
        if self.as_json:  # a line per sync, but not per safety-net look that found nothing
            if not quiet:
                self._line({"trigger": trigger, **result.to_dict()})
            return
        if result.files_changed or result.errors or trigger == "initial":
            self.out.write(summary_line(result) + "\n")
            self.out.flush()
        for error in result.errors:
            self._say(f"error: {error}")

    def _line(self, payload: dict[str, Any]) -> None:
        self.out.write(json.dumps(payload, default=str) + "\n")
        self.out.flush()

    def _say(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def stop(signum: int, _frame: FrameType | None) -> None:
            if self.stop.is_set():  # a second signal: stop now
                raise KeyboardInterrupt
            self._say(f"{signal.Signals(signum).name}: finishing the current batch, then exiting.")
            self.stop.set()

        return {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def watch_and_sync(
    migrator: HistoricalDataMigrator, settings: Settings, *, as_json: bool = False
) -> int:
    """``context-cleaner sync --watch``: watch the settings' folders until stopped."""
    return Watcher(migrator, settings, as_json=as_json).run()

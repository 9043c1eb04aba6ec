"""Incremental sync: read only what was appended since each file's last commit (DESIGN §5).

One sync:

1. discover the files (stat only) and keep those asked for (``only_paths``, ``since``);
2. ask the stat cache (:mod:`~context_cleaner.migration.sync_cache`) whether any of
   them changed since the database committed it; if none did, stop here: the
   database engine is never opened, so a sync with nothing new costs a few stat calls
   (with the cache's quiet walk, not even a walk: step 1 is skipped too);
3. otherwise plan from the tracking rows (or the stat cache, below): a file that stats
   exactly as when it was committed is unchanged (its head is not even read); the others
   are read from their committed offset, or from 0 when their identity changed
   (truncated, replaced, rotated);
4. read and commit the ranges in batches through the migration pipeline (rows, then
   offsets: a unit of work per batch, the lock released between them when a reader waits);
5. record the run (one row, rewritten with running totals, and one log row) only when
   something was read, then rebuild the stat cache and measure the data lag.

**The tracking rows: read once, and only the changed files' when the cache allows.**
Reading the whole tracking table (a GROUP BY over every file's rows, then 20,000 objects
for 20,000 files), before planning and again for the new stat cache, was most of what a
sync of one changed file among many cost. Now:

- *Planning* (:func:`_committed_states`): the write generation is read under the lock,
  in the session that reads the states. When the stat cache is of that very generation,
  no writer wrote since it was made, and it holds exactly the stamps of the files whose
  current tracking row is a clean commit (it is only ever written from such rows, see
  below). A file that stats as its cache stamp therefore has a clean commit of exactly
  that stamp: the plan would skip it anyway. Only the other files' rows (and those of the
  files the data lag is measured on) are read, by path. Any other case (no cache, another
  generation, more than :data:`MAX_LOOKUPS` such files, a server) reads the whole table.
- *The new cache* (step 5): the states read are updated with the file commits this
  sync wrote (:func:`after_commits`, :func:`~context_cleaner.migration.sync_cache.stamps_after`)
  *only* when the write generation proves that nobody else wrote in between; otherwise
  the whole table is read again, as before.

Why that can never make a sync skip data it should read:

- the states and the generation token are read in one session, under the lock: they
  are the table at that token (every writer replaces the token under the lock before
  writing, :func:`~context_cleaner.bridge.bump_generation`);
- while this sync runs, :func:`~context_cleaner.bridge.watch_writes` follows its
  thread's writes: each replaced token must be the one this thread saw or wrote last.
  A write by another process (the lock may be released between units when one waits),
  or by another thread, replaces the token unseen, so this thread's next write finds
  an unexpected token, or the final read (under the lock) finds a token this thread did
  not write: either way the table is read again. An empty or unreadable token, a token
  that could not be written, or a server (no token) also read it again;
- this sync's own units change tracking rows only through ``commit_files``, each of
  which the watch records after it is written, in order: so the table then is exactly
  the states updated with those commits, and the cache written is keyed by the token
  it was proven at. A commit missing from the record (a failed insert) leaves the file's
  older state, whose stamp the file no longer matches: the next sync plans, never skips.

A rollback, a migrate or another sync in between therefore always makes this sync read
the table again; a stale state can only ever cost a full plan.

``tokens_added`` and ``records_inserted`` are the net change of the database's counted
totals made by this sync's commits, measured inside each unit of work by the summary
refresh (after minus before, for the sessions the unit touched): lines repeating
responses already stored add 0, a response whose partial line was synced earlier adds
only the difference. Lines that could not be counted are reported by reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from context_cleaner.analysis.discovery import (
    Discovery,
    resolve_roots,
)
from context_cleaner.bridge import Database
from context_cleaner.errors import MigrationError
from context_cleaner.migration import sync_cache
from context_cleaner.migration.counts import add_net
from context_cleaner.migration.run_record import LogEntry, RunCounts, RunRecorder, new_run_id
from context_cleaner.migration.run_results import IncrementalMigrationResult
from context_cleaner.migration.sync_plan import (
    SyncRequest,
    discover_request,
    file_problems,
    plan_sync,
    select_files,
    walks_everything,
)
from context_cleaner.settings import BATCH_SIZE, DEFAULTS

if TYPE_CHECKING:  # the bridge's reads and the pipeline: imported when a sync runs in full
    from context_cleaner.analysis.discovery import TranscriptFile
    from context_cleaner.bridge import EnhancedTokenDatabaseBridge, FileCommit
    from context_cleaner.migration.models import BatchProcessingResult
    from context_cleaner.migration.pipeline import ProgressCallback, RunOptions, RunState
    from context_cleaner.migration.planning import FileState
    from context_cleaner.migration.sync_cache import FileStamp

#: Every this many syncs of one run (``sync --watch``), the run's superseded file
#: tracking rows are dropped, so the table grows with files, not with syncs.
COMPACT_EVERY = 50

#: Files the stat cache does not vouch for, above which a sync reads the whole tracking
#: table (one GROUP BY) rather than those files' rows by path.
MAX_LOOKUPS = 2_000

#: Bytes per batch in a sync: smaller units of work than a migration's, so a reader
#: waiting for the database waits for less.
SYNC_MAX_BATCH_BYTES = 16 * 1024 * 1024


class SyncInterrupted(MigrationError):
    """A stop was requested; the batches committed so far stay committed."""


@dataclass
class SyncRun:
    """The run row of one ``sync`` (or of a whole ``sync --watch``): identity and running totals."""

    migration_id: str = field(default_factory=lambda: new_run_id("sync"))
    started: float = field(default_factory=time.time)
    syncs: int = 0
    totals: RunCounts = field(default_factory=RunCounts)
    """Files, records, skipped lines and the net change of the counted totals made by
    every sync of this run (what its row holds)."""
    tokens: int = 0
    bytes_read: int = 0
    errors: list[str] = field(default_factory=list)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


def skipped_note(count: int, by_reason: dict[str, int]) -> str:
    """``N line(s) could not be counted (malformed_json 3, ...)``: for every summary."""
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(by_reason.items(), key=lambda x: -x[1]))
    return (
        f"{count:,} line(s) could not be counted" + (f" ({reasons})" if reasons else "") + "; "
        "`context-cleaner analyze --json` lists each with file, line and byte offset."
    )


def fast_sync(
    database: Database, host: str, request: SyncRequest, run: SyncRun | None = None
) -> tuple[IncrementalMigrationResult | None, Discovery | None]:
    """The sync's result when no file changed since its commit (stat calls only), else None;
    and what discovery found (for :func:`run_sync`, so it does not walk again; None when
    the stat cache's quiet walk answered without a walk).

    Needs neither the engine nor the price table: the CLI calls it first.
    """
    started = time.time()
    run = run or SyncRun()
    if walks_everything(request):
        roots = [str(r) for r in resolve_roots(request.source_dirs or None)]
        quiet = sync_cache.quiet_walk(database, host, roots)
        if quiet is not None:
            return _result(
                run,
                started,
                files_checked=quiet.files,
                files_deleted=quiet.deleted,
                errors=[],
                warnings=[],
                data_lag_seconds=0.0,
            ), None
    found = discover_request(request)
    return _nothing_new(database, host, request, found, run, started), found


def _nothing_new(
    database: Database,
    host: str,
    request: SyncRequest,
    found: Discovery,
    run: SyncRun,
    started: float,
) -> IncrementalMigrationResult | None:
    if not request.modified_files_only or request.force_reanalysis:
        return None
    cache = sync_cache.load_cache(database, host)
    files = select_files(found.files, request.only_paths, request.since)
    if cache is None or not cache.covers(files):
        return None
    if walks_everything(request):
        sync_cache.remember_quiet(database, cache, found)
    errors, warnings = file_problems(found, request.only_paths)
    return _result(
        run,
        started,
        files_checked=len(files),
        files_deleted=cache.missing(found, request.only_paths),
        errors=errors,
        warnings=warnings,
        data_lag_seconds=0.0,
    )


def run_sync(
    bridge: EnhancedTokenDatabaseBridge,
    request: SyncRequest,
    *,
    batch_size: int = BATCH_SIZE,
    parallel_workers: int | None = DEFAULTS.parallel_workers,
    run: SyncRun | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    found: Discovery | None = None,
) -> IncrementalMigrationResult:
    """One incremental sync (see the module docstring). Raises on database failures.

    ``found``: discovery already done by :func:`fast_sync` (which found work to do).
    """
    started = time.time()
    run = run or SyncRun()
    if found is None:
        found = discover_request(request)
        quick = _nothing_new(bridge.database, bridge.host, request, found, run, started)
        if quick is not None:
            return quick
    from context_cleaner.bridge import bump_generation, read_generation, watch_writes
    from context_cleaner.migration import freshness, pipeline
    from context_cleaner.migration.readers import tree_rss

    files = select_files(found.files, request.only_paths, request.since)
    file_errors, warnings = file_problems(found, request.only_paths)
    options = pipeline.RunOptions(
        source_dirs=request.source_dirs,
        batch_size=batch_size,
        parallel_workers=pipeline.resolve_workers(parallel_workers),
        checkpoint_interval=0,
        max_batch_bytes=SYNC_MAX_BATCH_BYTES,
        snapshot_checkpoints=False,
    )
    state = pipeline.RunState(run.migration_id)
    with bridge.database.held():
        bridge.setup_migration_infrastructure()
        # Working memory is what the sync adds to its process once connected, as a
        # migration's (it was its whole resident memory: "peak 74 MB private (working 262)").
        state.baseline_rss = tree_rss()
        start, states, known, check = _committed_states(bridge, request, files, found)
        with watch_writes(bridge.database, start) as watch:
            state.plan, restamped = plan_sync(check, states, request)
            if known is not None:  # the files the stat cache vouched for: unchanged
                planned = set(map(id, check))
                state.plan.unchanged.extend(f for f in files if id(f) not in planned)
            state.discovery = found
            keys = known.keys() if known is not None else sync_cache.pair_keys(states)
            deleted = sync_cache.count_missing(keys, found, request.only_paths)
            if state.plan.items:
                from context_cleaner.migration.crashed_runs import close_crashed

                roots = [str(r) for r in found.roots]
                close_crashed(bridge, state, roots)
                _read_and_commit(bridge, state, options, run, progress, should_stop)
                if run.syncs % COMPACT_EVERY == 0:  # a long watch: one tracking row per file
                    with bridge.writer() as w:
                        w.compact_tracking(run.migration_id)
            if restamped:
                with bridge.writer() as w:
                    w.commit_files(restamped, run.migration_id)
            with bridge.reading():
                generation = read_generation(bridge.database)
                if generation == "":  # nothing has written since the database was made
                    bump_generation(bridge.database)
                    generation = read_generation(bridge.database)
                if watch is not None and watch.settled(generation):  # no second read
                    committed = after_commits(states, watch.commits)
                    if known is not None:
                        stamps = sync_cache.stamps_after(known, watch.commits)
                    else:
                        stamps = sync_cache.stamps_of(committed)
                else:  # another writer came in between (or a server): read them again
                    committed = bridge.tracked_files()
                    stamps = sync_cache.stamps_of(committed)
                newest = bridge.newest_record_time()
    sync_cache.save_stamps(bridge.database, bridge.host, generation, stamps, found)
    offsets = freshness.committed_offsets(committed)
    fresh = freshness.measure_freshness(found.files, offsets, newest)
    plan = state.plan
    skipped = (
        [skipped_note(state.skipped_lines, state.skipped_by_reason)] if state.skipped_lines else []
    )
    return _result(
        run,
        started,
        files_checked=len(files),
        files_changed=len(plan.items),
        files_new=sum(1 for i in plan.items if i.reason in ("new", "forced")),
        files_reset=len(plan.reset),
        files_deleted=deleted,
        bytes_read=state.bytes_read,
        records_inserted=state.records_added,
        tokens_added=state.tokens_added,
        skipped_lines=state.skipped_lines,
        errors=file_errors + state.errors,
        warnings=skipped
        + warnings
        + state.warnings
        + [f"{f.path}: re-read from 0 ({why})" for f, why in plan.reset],
        data_lag_seconds=fresh.data_lag_seconds,
        skipped_lines_by_reason=dict(state.skipped_by_reason),
        skipped_line_examples=list(state.skipped_examples),
        closed_runs=list(state.closed_runs),
    )


def _committed_states(
    bridge: EnhancedTokenDatabaseBridge,
    request: SyncRequest,
    files: list[TranscriptFile],
    found: Discovery,
) -> tuple[
    str | None, dict[tuple[str, str], FileState], dict[str, FileStamp] | None, list[TranscriptFile]
]:
    """The write generation and, read with it under the lock, the states to plan from.

    Returns ``(generation, states, known, check)``: when the stat cache is of this very
    generation, ``known`` is its stamps, ``check`` the files it does not vouch for, and
    ``states`` holds the rows of those files (and of the files the lag is measured on)
    only; else ``known`` is None, ``check`` every file and ``states`` the whole table.
    """
    from context_cleaner.bridge import read_generation
    from context_cleaner.migration import freshness, pipeline

    trusts_stamps = request.modified_files_only and not request.force_reanalysis
    cache = sync_cache.load_cache(bridge.database, bridge.host) if trusts_stamps else None
    with bridge.reading():
        start = read_generation(bridge.database)
        if cache is not None and start and cache.generation == start:
            check = cache.uncovered(files)
            wanted = {f.relative_path for f in (*check, *freshness.probed(found.files))}
            if len(wanted) <= MAX_LOOKUPS:
                return start, pipeline.load_states(bridge, wanted), cache.files, check
        return start, pipeline.load_states(bridge), None, files


def after_commits(
    states: dict[tuple[str, str], FileState], commits: list[FileCommit]
) -> Collection[FileState | FileCommit]:
    """Each file's state once ``commits`` (written in this order after ``states`` was
    read) are in: what the tracking table holds then, when no one else wrote."""
    for c in commits:  # ``states`` is the sync's own: updated in place
        states[c.source_root, c.file_path] = c
    return states.values()


def _read_and_commit(
    bridge: EnhancedTokenDatabaseBridge,
    state: RunState,
    options: RunOptions,
    run: SyncRun,
    progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    def between_batches(_state: RunState, _batch: BatchProcessingResult) -> None:
        if should_stop is not None and should_stop():
            raise SyncInterrupted(
                f"Sync {state.migration_id} stopped after {state.files_done} file(s); "
                "what was read is committed. Run `context-cleaner sync` to continue."
            )

    from context_cleaner.migration import pipeline

    try:
        pipeline.run_batches(bridge, state, options, progress=progress, on_batch=between_batches)
    except BaseException as exc:
        _record_run(bridge, run, state, "failed", str(exc))
        raise
    _record_run(bridge, run, state, "completed" if not state.errors else "failed")


def _record_run(
    bridge: EnhancedTokenDatabaseBridge, run: SyncRun, state: RunState, status: str, error: str = ""
) -> None:
    """Add this sync to the run's totals and rewrite its row (one row per run) and log it."""
    run.syncs += 1
    totals, found = run.totals, state.discovery
    totals.source_roots = [str(r) for r in found.roots] if found else []
    totals.files_found = len(found.files) if found else 0
    totals.files_processed += state.files_done - state.files_failed
    totals.files_failed += state.files_failed
    totals.records_inserted += state.records_added
    totals.lines_skipped += state.skipped_lines
    add_net(totals.net, state.net)
    run.tokens += state.tokens_added
    run.bytes_read += state.bytes_read
    for reason, count in state.skipped_by_reason.items():
        run.skipped_by_reason[reason] = run.skipped_by_reason.get(reason, 0) + count
    run.errors = (run.errors + state.errors + ([error] if error else []))[-50:]
    details: dict[str, Any] = {
        "syncs": run.syncs,
        "tokens_added": run.tokens,
        "bytes_read": run.bytes_read,
        "errors": run.errors,
    }
    if run.skipped_by_reason:
        details["skipped_lines_by_reason"] = run.skipped_by_reason
    if state.closed_runs:
        details["closed_runs"] = [c["migration_id"] for c in state.closed_runs]
    from context_cleaner.migration.status import progress_record  # heavy; only when writing

    this_sync = {
        "progress": progress_record(state, status),
        "files": state.files_done,
        "bytes": state.bytes_read,
        "records": state.records_inserted,
        "tokens_read": state.tokens_in_records,
        "errors": state.errors[:20] + ([error] if error else []),
    }
    recorder = RunRecorder(bridge, "sync", run.migration_id, started=run.started)
    log = LogEntry(
        "sync",
        f"sync {run.syncs}",
        "failed" if status == "failed" else "completed",
        this_sync,
        recorder.elapsed_ms(state.started),
    )
    # Already failing: a refused row must not hide the original error.
    recorder.finished(status, totals, details, log, quiet=bool(error))


def _result(run: SyncRun, started: float, **fields: Any) -> IncrementalMigrationResult:
    end = time.time()
    defaults: dict[str, Any] = {
        "files_changed": 0,
        "files_new": 0,
        "files_reset": 0,
        "files_deleted": 0,
        "bytes_read": 0,
        "records_inserted": 0,
        "tokens_added": 0,
        "skipped_lines": 0,
    }
    defaults.update(fields)
    return IncrementalMigrationResult(
        migration_id=run.migration_id,
        start_time=datetime.fromtimestamp(started, UTC),
        end_time=datetime.fromtimestamp(end, UTC),
        success=not defaults["errors"],
        duration_seconds=end - started,
        **defaults,
    )


def source_roots(source_dirs: list[str] | None) -> list[Path]:
    """The roots a sync reads (for the watcher)."""
    return resolve_roots(source_dirs or None)


def summary_line(result: IncrementalMigrationResult) -> str:
    """One human line about a sync (the CLI and the watcher print it)."""
    lag = result.data_lag_seconds
    text = (
        f"Synced {result.files_changed} of {result.files_checked} file(s) "
        f"({result.bytes_read / 1e6:,.2f} MB read, {result.records_inserted:,} records and "
        f"{result.tokens_added:,} tokens added) in {result.duration_seconds:.2f} s"
    )
    extras = [
        f"{n} {what}"
        for n, what in (
            (result.files_new, "new"),
            (result.files_reset, "re-read from 0"),
            (result.files_deleted, "deleted (rows kept)"),
            (len(result.errors), "error(s)"),
            (result.skipped_lines, "line(s) skipped"),
        )
        if n
    ]
    if extras:
        text += "; " + ", ".join(extras)
    return text + ("." if lag is None else f"; data lag {lag:,.1f} s.")

"""The batch tasks of the migrate and sync flows, and the executor that calls them.

:class:`PrefectBatches` is the pipeline's batch executor inside a flow
(``pipeline.BATCH_EXECUTOR``, set by :func:`flows.orchestrated`): the planned batches
become at most :data:`~resume_keys.MAX_BATCH_TASKS` ``migrate-batch`` task runs,
called one after another in the flow's thread, so database writes stay in this
process and in order (as in the local engine) while up to ``--parallel-workers``
processes read ahead. A task retries only
:class:`~context_cleaner.errors.TransientError` (exponential backoff with jitter),
has a timeout, and persists its result under a key of file identities and byte
ranges plus the database epoch (:mod:`resume_keys`), so a run after a crash shows the
batches the crashed run finished as Cached and skips them. The run's progress
artifact is updated as batches finish.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.tasks import exponential_backoff

from context_cleaner.analysis.scan import ScanResult
from context_cleaner.bridge import EnhancedTokenDatabaseBridge
from context_cleaner.errors import TransientError
from context_cleaner.migration import pipeline
from context_cleaner.migration.models import BatchProcessingResult
from context_cleaner.migration.pipeline import BatchReader, RunOptions, RunState
from context_cleaner.migration.planning import WorkItem
from context_cleaner.orchestration import resume_keys
from context_cleaner.orchestration.resume_keys import ItemSpec

TASK_RETRIES = 3
RETRY_BACKOFF_SECONDS = 2.0
"""First retry after ~2 s, then ~4 s, ~8 s (each +/- 50 % jitter)."""
BATCH_TIMEOUT_SECONDS = 600.0
"""A batch task's time limit: this plus one second per MB it has to read."""
PROGRESS_EVERY_SECONDS = 2.0


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry a failed task only when its error may pass."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


RETRYING: dict[str, Any] = {
    "retries": TASK_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=RETRY_BACKOFF_SECONDS),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient_only,
}


# -- batch tasks ---------------------------------------------------------------------------


class BatchFeed:
    """What a batch task works with besides its cache key: database, read-ahead, pending work.

    The task's batches are committed in units as the local engine commits them
    (:class:`~context_cleaner.migration.pipeline.Gatherer`); ``units`` says which
    batches each result covers. Kept across the task's retries: units already
    committed are skipped and scans already read are reused (a replayed range is
    harmless, DESIGN §5).
    """

    def __init__(
        self,
        bridge: EnhancedTokenDatabaseBridge,
        migration_id: str,
        reads: Iterator[tuple[int, ScanResult, float]],
        work: Sequence[Sequence[WorkItem]],
        first_index: int,
        options: RunOptions,
    ) -> None:
        self.bridge = bridge
        self.migration_id = migration_id
        self.reads = reads
        self.work = [list(b) for b in work if b]
        self.first_index = first_index
        self.options = options
        self.ran = False
        self.scans: dict[int, tuple[ScanResult, float]] = {}
        self.units: list[list[int]] = []
        self.results: list[BatchProcessingResult] = []

    def run(self) -> list[BatchProcessingResult]:
        self.ran = True
        committed = {n for unit in self.units for n in unit}
        gather = pipeline.Gatherer(self.options, self.bridge)
        last = len(self.work) - 1
        for n, batch in enumerate(self.work):
            if n in committed:
                continue
            if n not in self.scans:
                read = next(self.reads, None)
                if read is None:
                    raise RuntimeError("the read-ahead ended before the batches did")
                self.scans[n] = (read[1], read[2])
            scan, seconds = self.scans[n]
            unit = gather.add(n, batch, scan, seconds, last=n == last)
            if unit is not None:
                self._commit(unit)
        if (unit := gather.take()) is not None:
            self._commit(unit)
        return self.results

    def _commit(self, unit: pipeline.CommitUnit) -> None:
        result = unit.commit(
            self.bridge, self.migration_id, self.options.dry_run, first_index=self.first_index
        )
        self.units.append(unit.indices)
        self.results.append(result)
        for n in unit.indices:
            del self.scans[n]


@task(
    name="migrate-batch",
    cache_policy=(INPUTS - "feed") + TASK_SOURCE,
    persist_result=True,
    **RETRYING,
)
def migrate_batch(
    epoch: str, spec: list[list[ItemSpec]], feed: BatchFeed
) -> list[BatchProcessingResult]:
    """Commit the pending bytes of these batches (``spec``: the files and ranges planned);
    one result per unit committed (``feed.units``)."""
    return feed.run()


@task(name="plan-batches", cache_policy=(INPUTS - "fresh") + TASK_SOURCE, persist_result=True)
def plan_batches(
    epoch: str,
    listing: str,
    batch_size: int,
    max_batch_bytes: int,
    max_tasks: int,
    fresh: list[list[list[ItemSpec]]],
) -> list[list[list[ItemSpec]]]:
    """Which files form which task: ``fresh``, unless this corpus was laid out before."""
    return fresh


class _Progress:
    """The run's progress artifact: created on the first batch, updated (throttled) after each."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.total = state.plan.pending_bytes if state.plan else 0
        self.id: Any = None
        self.shown = -1.0
        self.at = 0.0

    def update(self, final: bool = False) -> None:
        done = self.state.bytes_read
        pct = 100.0 if final or not self.total else min(100.0, 100.0 * done / self.total)
        now = time.monotonic()
        if not final and pct - self.shown < 1.0 and now - self.at < PROGRESS_EVERY_SECONDS:
            return
        if self.id is None:
            self.id = create_progress_artifact(
                progress=pct,
                key="migration-progress",
                description=f"Run {self.state.migration_id}: share of the pending bytes committed "
                f"({self.total / 1e6:,.1f} MB).",
            )
        elif pct != self.shown:
            update_progress_artifact(self.id, progress=pct)
        self.shown, self.at = pct, now


class PrefectBatches:
    """The pipeline's batch executor inside a flow (see the module docstring)."""

    def __init__(self, max_tasks: int = resume_keys.MAX_BATCH_TASKS) -> None:
        self.max_tasks = max_tasks
        self.tasks_run = 0
        self.tasks_cached = 0
        self.batches_cached = 0

    def __call__(self, job: pipeline.BatchJob) -> pipeline.BatchResults:
        bridge, state, options, plan, reader = job
        assert state.plan is not None and state.discovery is not None
        fresh = resume_keys.plan_layout(plan, self.max_tasks)
        if options.dry_run:
            epoch, layout = "", fresh
        else:
            epoch = resume_keys.database_epoch(bridge)
            files = state.discovery.files
            if options.only_paths is not None:
                files = [f for f in files if str(f.path) in options.only_paths]
            layout = plan_batches.with_options(refresh_cache=options.force)(
                epoch,
                resume_keys.listing_fingerprint(files),
                options.batch_size,
                options.max_batch_bytes,
                self.max_tasks,
                fresh,
            )
        chunks = resume_keys.assign(
            layout, plan, options.batch_size, options.max_batch_bytes, self.max_tasks
        )
        progress = _Progress(state)
        made = BatchReader(pipeline.read_workers(state, options)) if reader is None else None
        with made if made is not None else contextlib.nullcontext(reader) as active:
            reads = active.read([b for c in chunks for b in c.work if b])
            index = 0
            for number, chunk in enumerate(chunks, 1):
                feed = BatchFeed(bridge, state.migration_id, reads, chunk.work, index, options)
                index += len(feed.work)
                options_ = {
                    "task_run_name": f"batch-{number:03d}-of-{len(chunks):03d}",
                    "timeout_seconds": BATCH_TIMEOUT_SECONDS + chunk.pending_bytes / 1e6,
                    "refresh_cache": chunk.pending or options.force,
                }
                if options.dry_run:
                    options_.update(cache_policy=NO_CACHE, persist_result=False)
                results = migrate_batch.with_options(**options_)(epoch, chunk.spec, feed)
                if not feed.ran:  # a cache hit: an earlier run committed all of it
                    self.tasks_cached += 1
                    self.batches_cached += len(results)
                    continue
                self.tasks_run += 1
                for unit, result in zip(feed.units, results, strict=True):
                    yield [item for n in unit for item in feed.work[n]], result
                    progress.update()
        progress.update(final=True)

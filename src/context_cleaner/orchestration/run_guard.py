"""How every flow run starts and ends: tags, credentials, the write limit, retries, failures.

:func:`guarded` runs a flow's body:

1. **Tags**: the run gets ``context-cleaner``, its kind (``migrate``, ``sync``,
   ``validate``, ``rollback``) and ``host:<name>``, whoever started it (a deployment,
   ``serve``, ``--engine prefect``).
2. **Credentials**: a ``credentials_block`` parameter is loaded here
   (:mod:`.blocks`), so the password is read in the run and is never a parameter.
3. **Start-up**: a server's database is reached once before any work. Failing with a
   :class:`~context_cleaner.errors.TransientError` here is the one failure a flow-level
   retry is for (``retries`` on the flows; a run from the command line fails at once,
   after the bridge's own connection retries, as the local engine does).
4. **The write limit**: a run that writes or validates a server's database holds a slot
   of the global concurrency limit :data:`~context_cleaner.settings.WRITE_LIMIT` (one
   slot; created on first use), so sync, migrate, validation and rollback runs never
   overlap there, whichever deployment or process started them. The embedded engine
   keeps its file lock instead (it also orders the local engine and the dashboard).
5. **Failures**: an error of this package (an expected condition: no snapshot kept, an
   unknown run id, a database that does not answer, a failed validation) ends the run
   ``Failed`` with its one-paragraph message as the state message and no traceback;
   any other exception is a defect and stays loud. Every failure after start-up spends
   the run's remaining retries first, since Prefect retries a flow whatever failed it.

Prefect logs a task's exception with its traceback; :class:`QuietExpected` drops the
traceback of this package's errors from Prefect's run logs (``--debug`` or
``$CONTEXT_CLEANER_DEBUG`` keeps it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from prefect import get_client, get_run_logger
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Failed, State

from context_cleaner.bridge.database import Database
from context_cleaner.bridge.from_settings import open_database
from context_cleaner.errors import ContextCleanerError, TransientError
from context_cleaner.orchestration.blocks import with_credentials
from context_cleaner.settings import DEBUG_ENV, WRITE_LIMIT, Settings

R = TypeVar("R")

FLOW_RETRIES = 2
FLOW_RETRY_DELAY_SECONDS = 60
RETRYING_FLOW: dict[str, Any] = {
    "retries": FLOW_RETRIES,
    "retry_delay_seconds": FLOW_RETRY_DELAY_SECONDS,
}
"""A scheduled run whose database does not answer at start is tried twice more, a
minute apart (a server restarting, a network blip)."""

TAG = "context-cleaner"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


class QuietExpected(logging.Filter):
    """Drop the traceback of this package's own errors from a log record (not of others)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ContextCleanerError) and not debugging():
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_errors() -> None:
    """Install :class:`QuietExpected` on Prefect's flow and task run loggers (once)."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietExpected) for f in logger.filters):
            logger.addFilter(QuietExpected())


def run_tags(kind: str) -> list[str]:
    """The tags of a run of ``kind``."""
    from context_cleaner.bridge.host import default_host

    return [TAG, kind, f"host:{default_host()}"]


def _tag_run(kind: str) -> None:
    run_id = flow_run.get_id()
    if not run_id:
        return
    current = list(flow_run.get_tags())
    missing = [t for t in run_tags(kind) if t not in current]
    if missing:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, tags=current + missing)


def ensure_write_limit(name: str = WRITE_LIMIT) -> None:
    """Create the global concurrency limit ``name`` with one slot unless it exists (a limit
    someone set up, with any number of slots, is left as it is)."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run made it meanwhile
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


LEASE_SECONDS = 60.0
"""A slot's lease: renewed while the run lives; a killed run's slot is freed by the
server within about this long (its repossessor service)."""


def needs_write_slot(database: Database) -> bool:
    """True for a server's database with a Prefect server configured.

    The embedded engine's file lock already orders its writers. Prefect's temporary
    server (no ``PREFECT_API_URL``) runs no repossessor, so a slot a killed run held there
    would never be freed and every later run would wait for it."""
    from prefect.settings import PREFECT_API_URL

    return not database.url.is_embedded and bool(PREFECT_API_URL.value())


@contextlib.contextmanager
def write_slot(database: Database, writes: bool) -> Iterator[None]:
    """Hold a slot of :data:`WRITE_LIMIT` while the block runs, for a run that writes (not
    a dry run) to a database that needs it (:func:`needs_write_slot`)."""
    if not writes or not needs_write_slot(database):
        yield
        return
    ensure_write_limit()
    # strict: a limit that cannot be taken fails the run rather than letting it write
    # unguarded; a lease renewal that fails once (an API blip) does not stop a long run.
    with concurrency(
        WRITE_LIMIT,
        occupy=1,
        lease_duration=LEASE_SECONDS,
        strict=True,
        raise_on_lease_renewal_failure=False,
    ):
        yield


def _reach(database: Database) -> None:
    """Open (and close) a server's database once: it answers, or the start-up failed."""
    if not database.url.is_embedded:
        with database.session():
            pass


def _no_more_retries() -> None:
    """Spend the run's remaining retries, so the failure it proposes next is final."""
    context = FlowRunContext.get()
    run_id = flow_run.get_id()
    if not run_id or context is None or not context.flow or not context.flow.retries:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        policy = run.empirical_policy
        if policy.retries and run.run_count <= policy.retries:
            spent = policy.model_copy(update={"retries": max(0, run.run_count - 1)})
            client.update_flow_run(run_id, empirical_policy=spent)


def failed(exc: ContextCleanerError) -> State:
    """The run's end for an expected failure: ``Failed`` with the error's message; the
    error itself is the state's data, so calling the flow raises it again."""
    return Failed(message=" ".join(str(exc).split()), data=exc)


def guarded(
    kind: str,
    values: Mapping[str, Any],
    body: Callable[[Settings, Database], R],
    *,
    writes: bool = True,
) -> R | State:
    """Run ``body`` with the settings among ``values`` (a flow's parameters) and its
    database, as the module docstring says."""
    started = False
    try:
        _tag_run(kind)
        settings = with_credentials(Settings.from_values(values))
        database = open_database(settings)
        _reach(database)
        started = True
        with write_slot(database, writes):
            return body(settings, database)
    except ContextCleanerError as exc:
        if started or not isinstance(exc, TransientError):
            _no_more_retries()
        if debugging():
            get_run_logger().exception("%s failed", kind)
        return failed(exc)
    except Exception:
        _no_more_retries()
        raise

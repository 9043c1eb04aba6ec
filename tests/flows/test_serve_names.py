"""``serve``'s deployments are this host's own: it refuses names it did not register.

Against the session's temporary Prefect API (the whole of ``serve``, with a work pool
deployed beside it and a second ``serve``: tests/flows/test_e2e_server.py).
"""

from __future__ import annotations

import pytest

from context_cleaner.errors import ConfigurationError
from context_cleaner.orchestration.engine import _check_served, served_names

from .conftest import Harness

pytestmark = pytest.mark.slow


def test_the_names_carry_the_host_and_never_the_work_pools() -> None:
    assert served_names("laptop") == ("hourly-sync@laptop", "daily-validation@laptop")
    assert served_names("a/b<c>") == ("hourly-sync@a-b-c-", "daily-validation@a-b-c-")
    assert not set(served_names()) & {"hourly-sync", "daily-validation"}


def test_serve_refuses_a_name_a_work_pool_owns(prefect_harness: Harness) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="cc-pool", type="process"), overwrite=True)
        flow_id = client.create_flow_from_name("incremental-sync")
        client.create_deployment(flow_id, "hourly-sync@pooled", work_pool_name="cc-pool")
        with pytest.raises(ConfigurationError, match="belongs to the work pool 'cc-pool'"):
            _check_served(client, "incremental-sync", "hourly-sync@pooled", 10)
        _check_served(client, "incremental-sync", "hourly-sync@nobody", 10)  # not there: free
        paused = client.create_deployment(flow_id, "hourly-sync@stopped", paused=True)
        assert paused
        _check_served(client, "incremental-sync", "hourly-sync@stopped", 10)  # a stopped serve's

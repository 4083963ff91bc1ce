"""The cluster the dask context's tests run on: a real
``distributed.LocalCluster(n_workers=2, processes=True)`` per test module,
closed when the module ends, however its tests end. A test module imports
its fixtures by name (``from _dask_cluster import cluster, ctx, reap_children``)."""
from __future__ import annotations

import pytest

N_WORKERS = 2


@pytest.fixture(scope="module")
def cluster():
    dask = pytest.importorskip("dask")
    import distributed
    # a task whose worker dies is rerun once, as on the cluster the context
    # starts itself (see gomp.dask.context)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        c = distributed.LocalCluster(n_workers=N_WORKERS, threads_per_worker=1,
                                     processes=True, dashboard_address=None)
    try:
        yield c
    finally:
        try:
            c.close(timeout=30)
        except Exception:
            # distributed 2024.8 (the last for Python 3.9) can time out
            # closing nannies that still restart a killed worker: end the
            # cluster's processes instead, as every test's own are ended
            import scripts
            scripts.kill_children()


@pytest.fixture(scope="module")
def ctx(cluster):
    import gomp
    context = gomp.get_context("dask", address=cluster.scheduler_address)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(autouse=True)
def reap_children(request):
    """The conftest's fixture of this name kills every multiprocessing child
    after each test; here those are the cluster's workers (the nannies'
    processes), which live as long as the module's cluster, so only the
    cluster's worker count is checked: back to full strength after a test
    that killed one."""
    yield
    if "ctx" in request.fixturenames:
        ctx = request.getfixturevalue("ctx")
        ctx.client.wait_for_workers(N_WORKERS, timeout=60)


def worker_pids(ctx) -> "dict[str, int]":
    """address -> pid of each worker."""
    import os
    return ctx.client.run(os.getpid)

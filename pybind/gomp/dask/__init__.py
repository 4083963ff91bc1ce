"""The multiprocessing API on a Dask cluster: ``gomp.get_context("dask")``.

    ctx = gomp.get_context("dask")                        # a LocalCluster of processes
    ctx = gomp.get_context("dask", address="tcp://host:8786")
    ctx = gomp.get_context("dask", address=client)        # a distributed.Client
    with ctx.Pool() as pool:
        print(pool.map(f, range(100)))

Tasks run on Dask workers; Dask's scheduler places them, steals work and
reruns a task whose worker died. The primitives besides ``Pool`` map onto
Dask's coordination objects:

=====================  ===========================================
multiprocessing        on the cluster
=====================  ===========================================
``Pool``               Dask tasks (a chunk per task), :mod:`.pool`
``Process``            a long-running task, seceded from the worker's
                       thread pool, :mod:`.process`
``Queue``              ``distributed.Queue``, :mod:`.queues`
``Lock``/``Semaphore``  ``distributed.Lock``/``Semaphore``, and
``Event``              ``distributed.Event``, :mod:`.synchronize`
``Value``              ``distributed.Variable``, :mod:`.sharedctypes`
=====================  ===========================================

``Pipe``, ``Array``, shared memory and managers have no cluster-wide
counterpart and raise :class:`NotImplementedError` saying what to use.

This package needs Dask distributed: ``pip install "gomp-multiprocessing[dask]"``.
Every worker needs gomp installed too, as it needs any module the tasks use.
"""
from __future__ import annotations

EXTRA = "gomp-multiprocessing[dask]"

try:
    import distributed  # noqa: F401
except ImportError as e:
    raise ImportError("gomp's 'dask' context needs Dask distributed, which is not "
                      "installed: pip install \"%s\"" % EXTRA, name=e.name) from e

from .context import DaskContext  # noqa: E402

__all__ = ["DaskContext"]

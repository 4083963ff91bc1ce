"""A Dask worker killed under a pool: its task runs once more elsewhere, and
a task that kills every worker it runs on fails with WorkerLostError."""
from __future__ import annotations

import os
import signal
import time

import pytest

from gomp.pool import WorkerLostError
from _dask_cluster import cluster, ctx, reap_children, worker_pids  # noqa: F401  (fixtures)
import _dask_targets as D
import _pool_targets as T

pytestmark = pytest.mark.timeout(120)


def test_worker_killed_mid_map_reruns_its_task(ctx):
    before = worker_pids(ctx)
    with ctx.Pool() as p:
        r = p.map_async(D.sleep_then_pid, [0.5] * 6, chunksize=1)
        time.sleep(0.25)
        victim = next(iter(before.values()))
        os.kill(victim, signal.SIGKILL)
        pids = r.get(60)
    assert len(pids) == 6
    # the killed worker's task was run again by a worker that lived
    assert victim in before.values() and pids.count(victim) < 6
    assert set(pids) - {victim}


def test_task_killed_once_is_retried(ctx, tmp_path):
    with ctx.Pool() as p:
        marker = str(tmp_path / "marker")
        assert p.starmap(D.die_once, [(marker, i) for i in range(4)], chunksize=1) == [0, 1, 2, 3]
    assert os.path.exists(marker)


def test_task_that_kills_every_worker_fails_with_worker_lost_error(ctx):
    with ctx.Pool() as p:
        with pytest.raises(WorkerLostError) as info:
            p.apply(T.die)
        err = info.value
        assert err.pid is not None and err.attempts == 2
        assert "died while running this task" in str(err)
        assert type(err.__cause__).__name__ == "KilledWorker"
        errs = []
        r = p.apply_async(T.die, error_callback=errs.append)
        with pytest.raises(WorkerLostError):
            r.get(60)
        assert len(errs) == 1 and isinstance(errs[0], WorkerLostError)
        ctx.client.wait_for_workers(2, timeout=60)
        assert p.map(T.square, range(6)) == [x * x for x in range(6)]

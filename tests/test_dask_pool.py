"""gomp.get_context("dask").Pool: the stdlib's Pool API, its tasks run on a
real LocalCluster of two worker processes. The local pool's tests of that
API (tests/test_pool.py) run here too, on this module's pool fixture."""
from __future__ import annotations

import itertools
import os
import time

import pytest

import gomp
from _dask_cluster import cluster, ctx, reap_children, worker_pids  # noqa: F401  (fixtures)
import _dask_targets as D
import _pool_targets as T
# run here with the pool fixture below (on the cluster)
from test_pool import (  # noqa: F401
    test_apply_map_starmap, test_callbacks_run_in_the_parent, test_imap_and_imap_unordered,
    test_imap_iterable_raises, test_imap_next_timeout,
    test_imap_sends_each_item_of_a_slow_iterator_at_once, test_lambdas_and_closures,
    test_remote_traceback_and_pool_stays_usable, test_result_that_cannot_be_loaded_fails_its_task)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def mp():
    """The module the imported tests check errors against: gomp's (their
    pool is this module's, on the cluster)."""
    return gomp


@pytest.fixture
def pool(ctx):
    p = ctx.Pool()
    yield p
    p.terminate()
    p.join()


def test_imap_streams_an_endless_iterable(ctx):
    read = []

    def numbers():
        for i in itertools.count():
            read.append(i)
            yield 0.1

    with ctx.Pool(2) as p:
        it = p.imap(T.sleep_then, numbers())
        assert [next(it) for _ in range(4)] == [None] * 4
        time.sleep(0.5)
        # read as chunks finish, at most two per pool process ahead of them
        # (a Pool that listed its iterable first would never get here)
        assert len(read) < 40


def test_async_result_protocol(pool):
    r = pool.apply_async(T.sleep_then, (1.0, "v"))
    assert not r.ready()
    with pytest.raises(ValueError):
        r.successful()
    t = time.monotonic()
    with pytest.raises(gomp.TimeoutError):
        r.get(timeout=0.1)
    r.wait(0.05)
    assert time.monotonic() - t < 1.0
    assert r.get(timeout=30) == "v"
    assert r.ready() and r.successful()
    m = pool.map_async(T.square, range(4))
    m.wait(30)
    assert m.ready() and m.successful() and m.get() == [0, 1, 4, 9]
    f = pool.map_async(T.fail_on, range(4), chunksize=1, error_callback=None)
    f.wait(30)
    assert f.ready()  # every chunk is back; fail_on(x, bad) needs two arguments
    assert not f.successful()
    with pytest.raises(TypeError):
        f.get()


def test_what_cannot_travel_fails_its_task(pool):
    with pytest.raises(TypeError):
        pool.apply_async(T.square, (T.Unpicklable(),)).get(30)
    with pytest.raises(TypeError):
        pool.apply(T.unpicklable_result)
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        pool.apply(T.load_fails)
    assert pool.map(T.square, [1, 2]) == [1, 4]


def test_processes_bounds_the_tasks_in_flight(ctx):
    with ctx.Pool(1) as p:
        spans = sorted(p.map(D.interval, [0.2] * 4, chunksize=1))
    # one at a time, although the cluster has two workers
    assert all(a[1] <= b[0] + 0.01 for a, b in zip(spans, spans[1:]))
    with ctx.Pool() as p:
        assert p._processes == 2
        spans = sorted(p.map(D.interval, [0.4] * 2, chunksize=1))
    assert spans[1][0] < spans[0][1]  # both workers at once


def test_initializer_runs_once_per_worker_process(ctx):
    with ctx.Pool(initializer=D.init_count, initargs=("ready",)) as p:
        out = p.map(D.inits, range(20), chunksize=1)
    for values, _pid in out:
        assert values.count("ready") == 1
    with ctx.Pool(initializer=T.init, initargs=(7,)) as p:
        assert p.map(T.get_state, range(4)) == [7] * 4
    with ctx.Pool(initializer=T.init_fails) as p:
        with pytest.raises(RuntimeError, match="initializer fails"):
            p.apply(T.square, (1,))


def test_close_join_terminate_and_states(ctx):
    p = ctx.Pool(2)
    rs = [p.apply_async(T.sleep_then, (0.1, i)) for i in range(4)]
    it = p.imap(T.square, range(10))
    with pytest.raises(ValueError, match="still running"):
        p.join()
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(T.square, (1,))
    p.join()
    assert all(r.ready() for r in rs) and [r.get(0) for r in rs] == [0, 1, 2, 3]
    assert list(it) == [x * x for x in range(10)]

    with ctx.Pool(1) as p:
        assert "state=RUN" in repr(p)
        running = p.apply_async(T.sleep_then, (2,))
        waiting = p.apply_async(T.square, (2,))
        time.sleep(0.3)
        t = time.monotonic()
    p.join()
    assert time.monotonic() - t < 1.5  # not the 2 s the running task takes
    for r in (running, waiting):
        with pytest.raises(gomp.ProcessError):
            r.get(5)
    for call in (lambda: p.apply(T.square, (1,)), lambda: p.map(T.square, [1]),
                 lambda: p.imap_unordered(T.square, [1]),
                 lambda: p.starmap_async(T.add, [(1, 2)])):
        with pytest.raises(ValueError, match="Pool not running"):
            call()
    with pytest.raises(NotImplementedError):
        import pickle
        pickle.dumps(p)


@pytest.mark.parametrize("kwargs, error", [
    ({"processes": 0}, ValueError), ({"processes": 1.5}, ValueError),
    ({"maxtasksperchild": 0}, ValueError), ({"initializer": 3}, TypeError)])
def test_arguments_are_checked(ctx, kwargs, error):
    with pytest.raises(error):
        ctx.Pool(**kwargs)


def test_pool_tour(ctx):
    """The documentation's Pool tour ("Using a pool of workers"), as in
    examples/pool.py, on the cluster."""
    with ctx.Pool(processes=2) as pool:
        assert pool.map(T.square, range(10)) == [x * x for x in range(10)]
        assert sorted(pool.imap_unordered(T.square, range(10))) == [x * x for x in range(10)]
        assert pool.apply_async(T.square, (20,)).get(timeout=10) == 400
        pid = pool.apply_async(os.getpid, ()).get(timeout=10)
        workers = set(worker_pids(ctx).values())
        assert pid in workers and pid != os.getpid()
        assert set(r.get(timeout=10) for r in
                   [pool.apply_async(os.getpid, ()) for _ in range(4)]) <= workers
        res = pool.apply_async(time.sleep, (3,))
        with pytest.raises(gomp.TimeoutError):
            res.get(timeout=1)


def test_progress_bars_are_the_local_pools(pool):
    # the wrappers are the local pool's; their progress= is not the cluster's
    for call in (lambda: pool.map(T.square, range(3), progress=True),
                 lambda: pool.starmap_async(T.add, [(1, 2)], progress={"desc": "x"}),
                 lambda: pool.imap(T.square, range(3), progress=True)):
        with pytest.raises(NotImplementedError, match="progress bars"):
            call()
    assert pool.map(T.square, range(3), progress=False) == [0, 1, 4]
    assert list(pool.imap_unordered(T.square, range(3), progress=None)) != []

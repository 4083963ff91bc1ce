"""gomp.pool as the stdlib's pool beyond the documented API: what CPython's
own suite and libraries built on ``multiprocessing.pool`` rely on. Finished
tasks and their results are released at once; the stdlib's internals
(``_pool``, ``_processes``, ``_repopulate_pool``, ``_state``, ``_cache``)
and module names (``worker``, ``_PoolCache``, ...) exist with its meaning;
a pool that cannot start all its workers leaves none running. The tests
taking ``mp`` run on gomp and on the stdlib's spawn context."""
from __future__ import annotations

import functools
import gc
import os
import pickle
import queue
import time
import types
import unittest.mock
import weakref

import pytest

import scripts

import gomp
from gomp.pool import ThreadPool
import _pool_targets as T

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["processes", "threads"])
def pool(request, mp, mp_pool):
    p = mp.Pool(2) if request.param == "processes" else mp_pool.ThreadPool(2)
    try:
        yield p
    finally:
        p.terminate()
        p.join()


def released(refs, base, timeout=1.0):
    """Whether the weakly referenced objects, and every Counted made since
    there were base of them (copies unpickled from workers too), are gone.
    The pool's threads may finish delivering a result just after get()
    returns: wait a little for them, not for the next result."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if all(r() is None for r in refs) and T.Counted.n_instances <= base:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


# -- nothing of a finished task stays alive (CPython's test_release_task_refs)

def test_map_releases_arguments_and_results(pool):
    base = T.Counted.n_instances
    objs = [T.Counted() for _ in range(10)]
    refs = [weakref.ref(o) for o in objs]
    pool.map(T.echo, objs)
    del objs
    assert released(refs, base)


def test_apply_async_and_imap_release_arguments_and_results(pool):
    base = T.Counted.n_instances
    objs = [T.Counted() for _ in range(9)]
    refs = [weakref.ref(o) for o in objs]
    for o in objs[:3]:
        pool.apply_async(T.echo, (o,)).get(10)
    # from an iterator: the task handler must not keep its last item
    assert len(list(pool.imap(T.echo, iter(objs[3:6])))) == 3
    assert len(list(pool.imap_unordered(T.echo, iter(objs[6:]), chunksize=2))) == 3
    del o, objs
    assert released(refs, base)


def test_function_cost_estimates_keep_no_function_alive(pool):
    # the pool learns how long a function takes: a partial (or closure)
    # and what it holds must not be kept for that
    base = T.Counted.n_instances
    big = T.Counted()
    ref = weakref.ref(big)
    f = functools.partial(T.second, big)
    assert pool.map(f, range(20), chunksize=1) == list(range(20))
    del f, big
    assert released([ref], base)


@pytest.mark.gomp_extension
def test_a_failed_task_keeps_only_its_own_arguments_alive():
    # a thread pool hands the very exception over, with its traceback: that
    # must not reach the other tasks of the worker's message (the stdlib's
    # traceback keeps the frame that ran the whole chunk, and so all of it)
    with ThreadPool(1) as tp:
        objs = [T.Counted() for _ in range(10)]
        refs = [weakref.ref(o) for o in objs]
        bad = objs[5]
        errors = []
        r = tp.starmap_async(T.fail_on, [(o, bad) for o in objs], chunksize=10,
                             error_callback=errors.append)
        r.wait(10)
        del r, objs
        assert len(errors) == 1 and isinstance(errors[0], KeyError)
        tb = errors[0].__traceback__
        assert tb is not None and "fail_on" in [t.tb_frame.f_code.co_name
                                                for t in _walk(tb)]
        del tb
        others = refs[:5] + refs[6:]
        assert released(others, T.Counted.n_instances + 10)
        assert refs[5]() is bad
        del bad, errors
        assert released(refs, T.Counted.n_instances)


def _walk(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


# -- a result that cannot be pickled (CPython's test_unpickleable_result)

def test_unpicklable_result_gives_MaybeEncodingError_and_the_pool_goes_on(mp, mp_pool):
    with mp.Pool(2) as p:
        pids = {w.pid for w in p._pool}
        for _ in range(5):
            errors = []
            r = p.apply_async(T.make_lambda, error_callback=errors.append)
            with pytest.raises(mp_pool.MaybeEncodingError) as info:
                r.get(10)
            assert errors == [info.value]
            assert "lambda" in info.value.value and info.value.exc
        # no worker was lost on the way
        assert {w.pid for w in p._pool} == pids
        assert p.map(T.square, range(5)) == [0, 1, 4, 9, 16]


# -- the stdlib's internals

def test_state_cache_processes_and_pool(mp, mp_pool):
    p = mp.Pool(3)
    try:
        assert p._state == mp_pool.RUN and p._processes == 3
        assert len(p._pool) == 3 and all(w.is_alive() for w in p._pool)
        assert isinstance(p._cache, mp_pool._PoolCache) and not p._cache
        r = p.apply_async(T.sleep_then, (0.3, 1))
        assert p._cache[r._job] is r
        assert r.get(10) == 1
        deadline = time.monotonic() + 5
        while p._cache and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not p._cache
        p.close()
        assert p._state == mp_pool.CLOSE
        p.join()
        assert not any(w.is_alive() for w in p._pool)
    finally:
        p.terminate()
        p.join()
    assert p._state == mp_pool.TERMINATE


def test_repopulate_pool_brings_the_workers_up_to_processes(mp):
    with mp.Pool(2) as p:
        p._processes = 3
        p._repopulate_pool()
        assert len(p._pool) == 3 and len({w.pid for w in p._pool}) == 3
        assert all(w.is_alive() for w in p._pool)
        p._repopulate_pool()  # nothing missing: nothing added
        assert len(p._pool) == 3
        assert p.map(T.square, range(30), chunksize=1) == [x * x for x in range(30)]


def test_worker_lifetime_then_repopulate(mp):
    # CPython's test_pool_worker_lifetime
    p = mp.Pool(3, maxtasksperchild=10)
    try:
        first = [w.pid for w in p._pool]
        results = [p.apply_async(T.square, (i,)) for i in range(100)]
        assert [r.get(10) for r in results] == [i * i for i in range(100)]
        p._repopulate_pool()
        deadline = time.monotonic() + 5
        while not all(w.is_alive() for w in p._pool) and time.monotonic() < deadline:
            time.sleep(0.01)
        last = [w.pid for w in p._pool]
        assert None not in first and None not in last
        assert sorted(first) != sorted(last)
        p.close()
        p.join()
    finally:
        p.terminate()
        p.join()


class _FailingProcess:
    """A Process-like object as CPython's TestPoolNotLeakOnFailure makes:
    no pid, sentinel or Popen, and a join() without a timeout."""

    made: list = []
    starts_left = 0

    def __init__(self, **kwargs):
        self.name = "Fake Process"
        self.exitcode = None
        self.state = None
        _FailingProcess.made.append(self)

    def start(self):
        if _FailingProcess.starts_left <= 0:
            raise OSError("induced start failure")
        _FailingProcess.starts_left -= 1
        self.state = "started"

    def terminate(self):
        self.state = "stopping"

    def join(self):
        if self.state == "stopping":
            self.state = "stopped"

    def is_alive(self):
        return self.state in ("started", "stopping")


def test_workers_started_before_one_fails_to_start_are_ended(mp_pool):
    # CPython's TestPoolNotLeakOnFailure
    _FailingProcess.made = []
    _FailingProcess.starts_left = 3
    with pytest.raises(OSError, match="induced start failure"):
        mp_pool.Pool(5, context=unittest.mock.MagicMock(Process=_FailingProcess))
    assert len(_FailingProcess.made) == 4
    assert not any(p.is_alive() for p in _FailingProcess.made)


def _no_third_worker():
    raise OSError("no third worker")


def test_real_workers_started_before_one_fails_to_start_are_ended(mp, mp_pool):
    made = []

    def Process(**kwargs):  # real processes of mp's; the third fails to start
        p = mp.Process(**kwargs)
        if len(made) == 2:
            p.start = _no_third_worker
        made.append(p)
        return p

    context = types.SimpleNamespace(Process=Process, SimpleQueue=mp.SimpleQueue)
    try:
        with pytest.raises(OSError, match="no third worker"):
            mp_pool.Pool(4, context=context)
        assert len(made) == 3
        assert all(p.exitcode is not None for p in made[:2])
    finally:
        for p in made[:2]:
            if p.exitcode is None:
                p.kill()
                p.join(5)


def test_default_size_is_the_cpus_this_process_may_use(mp):
    if not hasattr(os, "process_cpu_count") or (os.cpu_count() or 1) < 2:
        pytest.skip("needs Python 3.13 and two CPUs")
    ctx = "gomp" if mp is gomp else "multiprocessing.get_context('spawn')"
    code = ("import os, gomp, multiprocessing\n"
            "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
            f"with {ctx}.Pool() as p:\n"
            "    print(len(p._pool))\n")
    env = scripts.env()
    env.pop("PYTHON_CPU_COUNT", None)
    r = scripts.run_code(code, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n"


# -- the stdlib's module-level names

def test_module_names_of_the_stdlib(mp, mp_pool, mp_connection):
    P = mp_pool
    assert (P.INIT, P.RUN, P.CLOSE, P.TERMINATE) == ("INIT", "RUN", "CLOSE", "TERMINATE")
    assert P.get_context("spawn") is mp.get_context("spawn")
    assert P.wait is mp_connection.wait
    with pytest.raises(ZeroDivisionError):
        P._helper_reraises_exception(ZeroDivisionError("x"))
    q = queue.SimpleQueue()
    cache = P._PoolCache({1: "a"}, notifier=q)
    cache[2] = "b"
    del cache[1]
    assert q.empty()
    del cache[2]
    assert q.get_nowait() is None and q.empty()
    assert P._PoolCache(a=1) == {"a": 1}


class _PicklingQueue(queue.SimpleQueue):
    """Pickles what is put, as a queue between processes does."""

    def put(self, obj):
        super().put(pickle.loads(pickle.dumps(obj)))


def test_stdlib_worker_loop_over_queues_of_ones_own(mp_pool):
    inq, outq = queue.SimpleQueue(), _PicklingQueue()
    tasks = [(T.square, (3,)), (T.fail, (1,)), (T.make_lambda, ()),
             (mp_pool._helper_reraises_exception, (KeyError("k"),)), (T.get_state, ())]
    for i, (func, args) in enumerate(tasks):
        inq.put((7, i, func, args, {}))
    inq.put(None)
    inq.put((7, 99, T.square, (1,), {}))  # after the sentinel: never run
    mp_pool.worker(inq, outq, T.init, ("ready",), None, True)
    got = {}
    while not outq.empty():
        job, i, (ok, value) = outq.get()
        assert job == 7
        got[i] = (ok, value)
    assert got[0] == (True, 9)
    ok, e = got[1]
    # wrapped: the worker's traceback comes along as the cause
    assert not ok and isinstance(e, ValueError)
    assert isinstance(e.__cause__, mp_pool.RemoteTraceback)
    ok, e = got[2]
    assert not ok and isinstance(e, mp_pool.MaybeEncodingError)
    ok, e = got[3]
    assert not ok and isinstance(e, KeyError) and e.__cause__ is None
    assert got[4] == (True, "ready")
    assert sorted(got) == [0, 1, 2, 3, 4] and inq.get_nowait()[1] == 99


def test_stdlib_worker_loop_maxtasks(mp_pool):
    inq, outq = queue.SimpleQueue(), queue.SimpleQueue()
    for i in range(3):
        inq.put((1, i, T.square, (i,), {}))
    mp_pool.worker(inq, outq, maxtasks=2)
    assert [outq.get_nowait()[1] for _ in range(2)] == [0, 1] and outq.empty()
    assert inq.get_nowait()[1] == 2
    for bad in (0, -1, 1.5):
        with pytest.raises(AssertionError):
            mp_pool.worker(inq, outq, maxtasks=bad)


def test_stdlib_worker_loop_in_a_child_over_the_context_queues(mp, mp_pool):
    # as torch's pool runs it: a Process whose target is pool.worker
    inq, outq = mp.SimpleQueue(), mp.SimpleQueue()
    p = mp.Process(target=mp_pool.worker, args=(inq, outq, None, (), None, True))
    p.start()
    try:
        for i in range(5):
            inq.put((3, i, T.square, (i,), {}))
        inq.put((3, 5, T.fail, (0,), {}))
        inq.put(None)
        got = sorted(outq.get() for _ in range(6))
        p.join(10)
        assert p.exitcode == 0
        assert [(i, r) for _, i, r in got[:5]] == [(i, (True, i * i)) for i in range(5)]
        ok, e = got[5][2]
        assert not ok and isinstance(e, ValueError)
        assert isinstance(e.__cause__, mp_pool.RemoteTraceback)
    finally:
        if p.exitcode is None:
            p.kill()
            p.join(5)

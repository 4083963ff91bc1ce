"""gomp.Pool: the stdlib's API and semantics (multiprocessing.pool). The
tests taking ``mp`` (or ``pool``) run on gomp and on the stdlib's spawn
context, those marked gomp_extension on gomp alone."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import gomp
import _pool_targets as T

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pool(mp):
    p = mp.Pool(2)
    yield p
    p.terminate()
    p.join()


def test_apply_map_starmap(pool):
    assert pool.apply(T.square, (7,)) == 49
    assert pool.apply(T.kw, (1,), {"b": 2, "c": 3}) == (1, 2, 3)
    assert pool.map(T.square, range(100)) == [x * x for x in range(100)]
    assert pool.map(T.square, range(10), chunksize=3) == [x * x for x in range(10)]
    assert pool.map(T.square, iter(range(5))) == [0, 1, 4, 9, 16]
    assert pool.map(T.square, []) == []
    assert pool.starmap(T.add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.starmap_async(T.add, [(1, 2)] * 5, 2).get(10) == [3] * 5


def test_imap_and_imap_unordered(pool):
    assert list(pool.imap(T.square, range(50))) == [x * x for x in range(50)]
    assert list(pool.imap(T.square, range(50), chunksize=7)) == [x * x for x in range(50)]
    assert sorted(pool.imap_unordered(T.square, range(50))) == [x * x for x in range(50)]
    assert sorted(pool.imap_unordered(T.square, T.gen(20), 3)) == [x * x for x in range(20)]
    assert list(pool.imap(T.square, [])) == []
    with pytest.raises(ValueError):
        pool.imap(T.square, range(3), chunksize=0)


def test_imap_next_timeout(mp, pool):
    it = pool.imap(T.sleep_then, [0.5, 0])
    with pytest.raises(mp.TimeoutError):
        it.next(timeout=0.05)
    assert it.next(timeout=10) is None
    assert next(it) is None
    with pytest.raises(StopIteration):
        next(it)


def test_imap_iterable_raises(pool):
    it = pool.imap(T.square, T.gen(5, fail_at=3))
    assert [next(it) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(OSError, match="fails at 3"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_async_result_protocol(mp, mp_pool, pool):
    r = pool.apply_async(T.sleep_then, (0.3, "v"))
    assert not r.ready()
    with pytest.raises(ValueError):
        r.successful()
    with pytest.raises(mp.TimeoutError):
        r.get(timeout=0.01)
    assert isinstance(r, mp_pool.AsyncResult) and mp_pool.ApplyResult is mp_pool.AsyncResult
    r.wait(0.01)
    assert r.get(timeout=10) == "v"
    assert r.ready() and r.successful()
    r.wait()
    m = pool.map_async(T.square, range(4))
    assert isinstance(m, mp_pool.MapResult)
    m.wait(10)
    assert m.successful() and m.get() == [0, 1, 4, 9]


def test_callbacks_run_in_the_parent(pool):
    got, errs, threads = [], [], []
    done = threading.Event()

    def cb(v):
        got.append(v)
        threads.append(threading.current_thread())

    r = pool.apply_async(T.square, (3,), callback=cb, error_callback=errs.append)
    r.get(10)
    m = pool.map_async(T.square, range(3), callback=cb)
    m.get(10)
    e = pool.apply_async(T.fail, (1,), callback=got.append,
                         error_callback=lambda exc: (errs.append(exc), done.set()))
    with pytest.raises(ValueError):
        e.get(10)
    assert done.wait(10)
    assert got == [9, [0, 1, 4]]
    assert len(errs) == 1 and isinstance(errs[0], ValueError)
    assert threads[0] is not threading.current_thread()
    me = pool.starmap_async(T.fail_on, [(i, 2) for i in range(6)], 1,
                            callback=got.append, error_callback=errs.append)
    with pytest.raises(KeyError):
        me.get(10)
    assert not me.successful()
    # the error callback runs once, after every chunk is back
    assert len(errs) == 2 and isinstance(errs[1], KeyError) and len(got) == 2


def test_remote_traceback_and_pool_stays_usable(mp_pool, pool):
    with pytest.raises(ValueError, match="bad 5") as info:
        pool.apply(T.fail, (5,))
    cause = info.value.__cause__
    assert isinstance(cause, mp_pool.RemoteTraceback)
    assert "Traceback" in str(cause) and "fail" in str(cause) and "bad 5" in str(cause)
    with pytest.raises(ValueError):
        pool.map(T.fail, range(3))
    with pytest.raises(KeyError):
        pool.starmap(T.fail_on, [(0, 1), (1, 1), (2, 1)])
    assert pool.apply(T.square, (4,)) == 16


def test_unpicklable_argument_and_result(mp_pool, pool):
    r = pool.apply_async(T.square, (T.Unpicklable(),))
    with pytest.raises(TypeError, match="cannot pickle"):
        r.get(10)
    with pytest.raises(mp_pool.MaybeEncodingError) as info:
        pool.apply(T.unpicklable_result)
    assert "Error sending result" in str(info.value)
    assert pool.map(T.square, [1, 2]) == [1, 4]


@pytest.mark.gomp_extension
def test_result_that_cannot_be_loaded_fails_its_task(pool):
    # the stdlib's result handler thread dies of it: the pool hangs
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        pool.apply(T.load_fails)
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        pool.map(T.load_fails, range(4))
    assert pool.apply(T.square, (5,)) == 25


@pytest.mark.gomp_extension
def test_lambdas_and_closures(pool):
    # the stdlib pickles functions by reference only
    k = 3
    assert pool.map(lambda x: x * k, range(4)) == [0, 3, 6, 9]
    assert pool.apply(lambda: "λ") == "λ"
    assert sorted(pool.imap_unordered(lambda x: -x, range(3))) == [-2, -1, 0]


def test_work_is_spread_over_workers(pool):
    busy = pool.apply_async(T.sleep_then, (0.5,))
    time.sleep(0.1)
    other = pool.apply(T.getpid)
    busy.get(10)
    workers = {p.pid for p in pool._pool}
    assert other in workers and len(workers) == 2
    assert len(set(pool.map(T.getpid, range(40), chunksize=1))) >= 1


def test_a_long_task_does_not_hold_back_the_others(pool):
    slow = pool.apply_async(T.sleep_then, (3, "slow"))
    t = time.monotonic()
    quick = [pool.apply_async(T.square, (i,)) for i in range(20)]
    assert [r.get(timeout=2) for r in quick] == [i * i for i in range(20)]
    assert time.monotonic() - t < 2
    assert not slow.ready()  # still running; the fixture's terminate() ends it


def test_context_manager_and_states(mp):
    with mp.Pool(1) as p:
        assert "state=RUN" in repr(p) and "pool_size=1" in repr(p)
        assert p.apply(T.square, (2,)) == 4
        with pytest.raises(ValueError, match="still running"):
            p.join()
        with pytest.raises(NotImplementedError):
            import pickle
            pickle.dumps(p)
    for call in (lambda: p.apply(T.square, (1,)), lambda: p.map(T.square, [1]),
                 lambda: p.apply_async(T.square, (1,)), lambda: p.imap(T.square, [1]),
                 lambda: p.imap_unordered(T.square, [1]),
                 lambda: p.starmap_async(T.add, [(1, 2)])):
        with pytest.raises(ValueError, match="Pool not running"):
            call()
    p.join()


def test_close_finishes_work_then_join(mp):
    p = mp.Pool(2)
    rs = [p.apply_async(T.sleep_then, (0.1, i)) for i in range(4)]
    it = p.imap(T.square, range(10))
    p.close()
    with pytest.raises(ValueError):
        p.apply_async(T.square, (1,))
    p.join()
    assert [r.get(0) for r in rs] == [0, 1, 2, 3]
    assert list(it) == [x * x for x in range(10)]
    assert all(w.exitcode == 0 for w in p._pool)
    assert not any(w.is_alive() for w in p._pool)


def _terminate_a_busy_pool(mp):
    """Terminate a pool of mp's while a task runs; check that it kills its
    workers at once. The task's result."""
    p = mp.Pool(2)
    workers = list(p._pool)
    r = p.apply_async(T.sleep_then, (30,))
    time.sleep(0.2)
    t = time.monotonic()
    p.terminate()
    assert time.monotonic() - t < 3
    p.join()
    assert all(w.exitcode is not None for w in workers)
    assert not set(workers) & set(mp.active_children())
    return r


def test_terminate_kills_at_once(mp):
    _terminate_a_busy_pool(mp)


@pytest.mark.gomp_extension
def test_terminate_fails_what_is_left(mp):
    # the stdlib's result of an unfinished task never becomes ready
    r = _terminate_a_busy_pool(mp)
    with pytest.raises(mp.ProcessError) as info:
        r.get(1)
    assert not isinstance(info.value, mp.TimeoutError)


def test_arguments_are_checked(mp):
    with pytest.raises(ValueError):
        mp.Pool(0)
    if mp is gomp or sys.version_info >= (3, 10):
        # the stdlib checks maxtasksperchild from Python 3.10 on
        with pytest.raises(ValueError):
            mp.Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError):
        mp.Pool(1, initializer=3)


def test_initializer_with_a_queue(mp):
    q = mp.Queue()
    with mp.Pool(2, initializer=T.init, initargs=("ready", q)) as p:
        assert p.map(T.get_state, range(4), chunksize=1) == ["ready"] * 4
        pids = {q.get(timeout=10)[1] for _ in range(2)}
        assert pids == {w.pid for w in p._pool}


def test_maxtasksperchild_replaces_workers(mp):
    with mp.Pool(1, maxtasksperchild=2) as p:
        pids = [p.apply(T.getpid) for _ in range(6)]
        assert len(set(pids)) == 3
        assert [pids[0]] * 2 == pids[:2]
        assert p.map(T.square, range(10), chunksize=1) == [x * x for x in range(10)]


def test_default_processes_and_context(mp, mp_pool):
    # the CPUs this process may use from Python 3.13 on, all of them before
    cpus = os.process_cpu_count() if hasattr(os, "process_cpu_count") else os.cpu_count()
    ctx = mp.get_context("spawn")
    with ctx.Pool() as p:
        assert len(p._pool) == (cpus or 1)
    with mp_pool.Pool(1, context=ctx) as p:
        assert p.apply(T.square, (3,)) == 9


def test_thread_pool(mp_pool):
    ThreadPool = mp_pool.ThreadPool
    with ThreadPool(3) as tp:
        assert tp.map(lambda x: x + 1, range(5)) == [1, 2, 3, 4, 5]
        assert tp.apply(threading.get_ident) != threading.get_ident()
        with pytest.raises(ValueError) as info:
            tp.apply(T.fail, (1,))
        assert not isinstance(info.value.__cause__, mp_pool.RemoteTraceback)
        assert sorted(tp.imap_unordered(T.square, range(5))) == [0, 1, 4, 9, 16]
    tp = ThreadPool(2, initializer=T.init, initargs=(7,))
    assert tp.apply(T.get_state) == 7
    tp.close()
    tp.join()


def test_imap_sends_each_item_of_a_slow_iterator_at_once(pool):
    def items():
        yield 1
        yield 2
        time.sleep(1.5)
        yield 3
    it = pool.imap(T.square, items())
    t = time.monotonic()
    assert it.next(timeout=1) == 1 and it.next(timeout=1) == 4
    assert time.monotonic() - t < 1
    assert list(it) == [9]


def test_large_arguments_and_results(pool):
    big = b"x" * (20 << 20)
    assert pool.apply(T.echo, (big,)) == big
    blobs = [bytes([i]) * (3 << 20) for i in range(6)]
    rs = [pool.apply_async(T.echo, (b,)) for b in blobs]
    assert [r.get(30) for r in rs] == blobs
    assert pool.map(len, blobs, chunksize=2) == [3 << 20] * 6


def test_pools_leave_no_descriptors_behind(mp):
    import gc
    import os

    def count():
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    with mp.Pool(2) as p:
        p.map(T.square, range(4))
    before = count()
    for _ in range(3):
        with mp.Pool(2) as p:
            p.map(T.square, range(4))
        p = mp.Pool(2)
        p.map(T.square, range(4))
        p.close()
        p.join()
    del p
    assert count() <= before

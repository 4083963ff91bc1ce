"""concurrent.futures.ProcessPoolExecutor on a gomp context (mp_context=),
and the stdlib's objects made with a gomp context, passed to gomp children."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import sys
import time

import pytest

import gomp
import _futures_targets as t
import scripts

METHODS = ["spawn", "forkserver"]


@pytest.fixture(params=METHODS)
def ctx(request):
    return gomp.get_context(request.param)


@pytest.fixture
def executor(ctx):
    ex = cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def test_submit_and_map(executor):
    assert executor.submit(t.square, 7).result(timeout=60) == 49
    assert list(executor.map(t.square, range(20), chunksize=3)) == [i * i for i in range(20)]
    assert list(executor.map(t.square, range(5), timeout=60)) == [0, 1, 4, 9, 16]


def test_exception_carries_the_remote_traceback(executor):
    f = executor.submit(t.fail, 3)
    with pytest.raises(ValueError, match="failed on 3") as info:
        f.result(timeout=60)
    cause = info.value.__cause__
    assert type(cause).__name__ == "_RemoteTraceback"
    assert "_futures_targets.py" in str(cause) and "def fail" not in str(cause)
    # the pool goes on
    assert executor.submit(t.square, 2).result(timeout=60) == 4


def test_workers_are_gomp_children(executor):
    pids = {executor.submit(t.pid).result(timeout=60) for _ in range(4)}
    assert pids and all(p != gomp.current_process().pid for p in pids)


def test_initializer_and_initargs(ctx):
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=t.remember,
                                initargs=("hello",)) as ex:
        assert set(ex.map(t.recall, range(6))) == {"hello"}


def test_shutdown_without_waiting_cancels_pending(ctx):
    ex = cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
    first = ex.submit(t.sleep_then, 1, 0.5)
    rest = [ex.submit(t.sleep_then, i, 0.5) for i in range(10)]
    started = time.monotonic()
    ex.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - started < 5
    assert first.result(timeout=60) == 1
    assert sum(f.cancelled() for f in rest) >= 8
    for f in rest:
        if not f.cancelled():
            f.result(timeout=60)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="max_tasks_per_child is new in 3.11")
def test_max_tasks_per_child_replaces_workers(ctx):
    # one at a time: the stdlib itself hangs when every worker retires at once
    # (its idle-worker count is off, CPython gh-115634)
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=2) as ex:
        pids = [ex.submit(t.pid).result(timeout=60) for _ in range(6)]
    assert len(set(pids)) == 3


@pytest.mark.skipif(sys.version_info < (3, 11), reason="max_tasks_per_child is new in 3.11")
def test_retiring_workers_never_look_crashed(ctx):
    # a worker that retires sends its last result, then exits: the executor
    # must see the result first, or it takes the exit for a crash
    # (BrokenProcessPool); 30 retirements in a row
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1) as ex:
        pids = [ex.submit(t.pid).result(timeout=60) for _ in range(30)]
    assert len(set(pids)) == 30


def test_killed_worker_breaks_the_pool(ctx):
    ex = cf.ProcessPoolExecutor(max_workers=2, mp_context=ctx)
    try:
        f = ex.submit(t.kill_self)
        with pytest.raises(cf.process.BrokenProcessPool):
            f.result(timeout=60)
        with pytest.raises(cf.process.BrokenProcessPool):
            ex.submit(t.square, 1).result(timeout=60)
    finally:
        ex.shutdown(wait=True)


def test_unpicklable_argument_fails_its_future(executor):
    f = executor.submit(t.square, lambda: 1)  # the stdlib's pickler refuses it
    with pytest.raises(Exception):
        f.result(timeout=60)
    assert executor.submit(t.square, 3).result(timeout=60) == 9


# -- the stdlib's objects, made with a gomp context ---------------------------

def test_stdlib_queue_made_with_a_gomp_context(ctx):
    q = multiprocessing.queues.Queue(ctx=ctx)
    p = ctx.Process(target=t.put_all, args=(q, [1, "two", (3,)]))
    p.start()
    assert [q.get(timeout=60) for _ in range(3)] == [1, "two", (3,)]
    p.join(60)
    assert p.exitcode == 0
    q.close()
    q.join_thread()


def test_stdlib_lock_and_connection_made_with_a_gomp_context(ctx):
    lock = multiprocessing.synchronize.Lock(ctx=ctx)
    r, w = multiprocessing.Pipe(duplex=False)  # the stdlib's: an OS pipe
    p = ctx.Process(target=t.send_over, args=(w, "through the stdlib's pipe"))
    p.start()
    w.close()
    assert r.recv() == "through the stdlib's pipe"
    p.join(60)
    assert p.exitcode == 0
    p = ctx.Process(target=t.with_lock, args=(lock,))
    p.start()
    p.join(60)
    assert p.exitcode == 0


def test_executor_results_never_wait_for_the_ring_watch_slice(tmp_path):
    # concurrent.futures waits on the result queue's descriptor, which a
    # watcher keeps readable while the ring holds a message. With the
    # watcher's sleeps made 20 s long, a wake-up it misses (a result that
    # arrives while the reader empties the descriptor) stalls a map for 20 s
    # instead of 0.2 s.
    script = scripts.write(tmp_path / "burst.py", """
        import sys, time
        import concurrent.futures as cf
        import gomp

        def square(x):
            return x * x

        if __name__ == "__main__":
            with cf.ProcessPoolExecutor(2, mp_context=gomp.get_context()) as ex:
                for i in range(100):
                    t = time.monotonic()
                    out = list(ex.map(square, range(4000), chunksize=10))
                    if time.monotonic() - t > 10:
                        sys.exit("a map stalled")
                    assert out == [x * x for x in range(4000)]
                    time.sleep(0.01)
    """)
    r = scripts.run_script(script, env=scripts.env(GOMP_RING_WATCH_SLICE_MS="20000"),
                           timeout=100)
    assert r.returncode == 0, r.stderr

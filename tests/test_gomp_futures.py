"""gomp.futures.ProcessPoolExecutor: the stdlib's executor contract (tests
taking ``Executor`` run on gomp's and on the stdlib's, spawn context), and
what only gomp's does (marked gomp_extension): a dead worker fails only its
futures, per-call timeouts, get_reusable_executor."""
from __future__ import annotations

import concurrent.futures as cf
import math
import os
import signal
import sys
import threading
import time

import pytest

import gomp
from gomp import futures as gf
from conftest import STDLIB
import _futures_targets as t

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["gomp", "stdlib-spawn"])
def Executor(request):
    """An executor class: gomp's, or the stdlib's on its spawn context."""
    if request.param == "gomp":
        return gf.ProcessPoolExecutor

    def stdlib(*args, **kw):
        kw.setdefault("mp_context", STDLIB)
        return cf.ProcessPoolExecutor(*args, **kw)
    return stdlib


@pytest.fixture
def executor(Executor):
    ex = Executor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def gex():
    ex = gf.ProcessPoolExecutor(max_workers=2)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


# -- the stdlib's contract ----------------------------------------------------

def test_submit_map_chunksize(executor):
    assert executor.submit(t.square, 7).result(timeout=30) == 49
    assert executor.submit(t.takes_timeout, 1, timeout=5).result(30) == (1, 5)
    assert list(executor.map(t.square, range(20))) == [i * i for i in range(20)]
    assert list(executor.map(t.square, range(20), chunksize=3)) == [i * i for i in range(20)]
    assert list(executor.map(t.sleep_then, range(3), [0] * 3, timeout=30)) == [0, 1, 2]
    assert list(executor.map(t.square, [])) == []
    with pytest.raises(ValueError):
        executor.map(t.square, range(3), chunksize=0)


def test_remote_exception_and_the_executor_goes_on(executor):
    f = executor.submit(t.fail, 3)
    with pytest.raises(ValueError, match="failed on 3") as info:
        f.result(timeout=30)
    assert "_futures_targets.py" in str(info.value.__cause__)
    assert isinstance(f.exception(), ValueError)
    assert executor.submit(t.square, 2).result(timeout=30) == 4


def test_map_deadline_raises_timeout_error(executor):
    it = executor.map(t.sleep_then, [1, 2], [5, 5], timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        next(it)
    assert time.monotonic() - t0 < 3


def test_future_protocol_and_wait(executor):
    fs = [executor.submit(t.sleep_then, i, 0.1) for i in range(4)]
    done, not_done = cf.wait(fs, timeout=30)
    assert not not_done and sorted(f.result() for f in done) == [0, 1, 2, 3]
    assert sorted(f.result() for f in cf.as_completed(
        [executor.submit(t.square, i) for i in range(5)], timeout=30)) == [0, 1, 4, 9, 16]
    f = executor.submit(t.sleep_then, "x", 0.5)
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.01)
    assert f.result(timeout=30) == "x" and f.done() and not f.cancelled()
    seen = []
    f.add_done_callback(seen.append)
    assert seen == [f]


def test_cancel_a_queued_call(Executor):
    with Executor(max_workers=1) as ex:
        first = ex.submit(t.sleep_then, "first", 0.5)
        queued = [ex.submit(t.square, i) for i in range(10)]
        time.sleep(0.1)
        assert not first.cancel()
        assert queued[-1].cancel() and queued[-1].cancelled()
        with pytest.raises(cf.CancelledError):
            queued[-1].result()
        assert first.result(30) == "first"
        assert [f.result(30) for f in queued[:-1]] == [i * i for i in range(9)]


def test_shutdown_cancels_what_no_worker_took(Executor):
    ex = Executor(max_workers=1)
    fs = [ex.submit(t.sleep_then, i, 0.3) for i in range(8)]
    time.sleep(0.1)
    ex.shutdown(wait=True, cancel_futures=True)
    ran = [f.result() for f in fs if not f.cancelled()]
    # the first was running; at most a couple more had been handed on
    assert ran == list(range(len(ran))) and 1 <= len(ran) <= 3
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.square, 1)


def test_shutdown_waits_for_running_calls(Executor):
    ex = Executor(max_workers=2)
    fs = [ex.submit(t.sleep_then, i, 0.2) for i in range(4)]
    ex.shutdown(wait=True)
    assert all(f.done() for f in fs) and [f.result() for f in fs] == [0, 1, 2, 3]
    ex.shutdown()  # again: nothing to do


def test_initializer_and_initargs(Executor):
    with Executor(max_workers=2, initializer=t.remember, initargs=("hello",)) as ex:
        assert set(ex.map(t.recall, range(6))) == {"hello"}


def test_max_tasks_per_child(Executor):
    if Executor is not gf.ProcessPoolExecutor and sys.version_info < (3, 11):
        pytest.skip("the stdlib's max_tasks_per_child is new in 3.11")
    with Executor(max_workers=1, max_tasks_per_child=2) as ex:
        pids = [ex.submit(t.pid).result(timeout=30) for _ in range(6)]
    assert len(set(pids)) == 3


def test_bad_arguments(Executor):
    with pytest.raises(ValueError):
        Executor(max_workers=0)
    with pytest.raises(TypeError):
        Executor(max_workers=1, initializer=42)
    if Executor is gf.ProcessPoolExecutor or sys.version_info >= (3, 11):
        with pytest.raises(ValueError):
            Executor(max_workers=1, max_tasks_per_child=0)
        with pytest.raises(TypeError):
            Executor(max_workers=1, max_tasks_per_child="2")


def test_unpicklable_argument_fails_its_future(executor):
    f = executor.submit(t.square, _Unpicklable())
    with pytest.raises(Exception, match="cannot pickle"):
        f.result(timeout=30)
    assert executor.submit(t.square, 3).result(timeout=30) == 9


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


# -- what gomp's executor does beyond the stdlib's --------------------------------

@pytest.mark.gomp_extension
@pytest.mark.parametrize("how,code", [("kill", -9), ("3", 3)])
def test_dead_worker_fails_only_its_futures(gex, how, code):
    slow = [gex.submit(t.sleep_then, i, 0.5) for i in range(2)]
    time.sleep(0.1)
    doomed = gex.submit(t.die_with, how)
    with pytest.raises(gf.WorkerLostError) as info:
        doomed.result(timeout=30)
    e = info.value
    assert isinstance(e, cf.process.BrokenProcessPool)
    assert isinstance(e, gomp.pool.WorkerLostError) and e.exitcode == code
    assert [f.result(timeout=30) for f in slow] == [0, 1]
    # the executor is not broken: a replacement worker takes new calls
    assert gex.submit(t.square, 5).result(timeout=30) == 25
    assert list(gex.map(t.square, range(10), chunksize=2)) == [i * i for i in range(10)]
    assert e.pid not in {gex.submit(t.pid).result(30) for _ in range(10)}


@pytest.mark.gomp_extension
@pytest.mark.parametrize("target,args", [(t.sleep_then, (1, 30)), (t.sleep_in_c, (30,)),
                                         (t.ignore_sigterm_and_sleep, (30,))])
def test_task_timeout_kills_the_call(gex, target, args):
    other = gex.submit(t.sleep_then, "other", 0.8)
    t0 = time.monotonic()
    f = gex.submit_with_timeout(0.4, target, *args)
    with pytest.raises(cf.TimeoutError) as info:
        f.result(timeout=30)
    assert time.monotonic() - t0 < 5
    e = info.value
    assert isinstance(e, gf.TaskTimeoutError) and isinstance(e, gomp.TimeoutError)
    assert e.timeout == 0.4 and "timeout of 0.4 s" in str(e)
    assert other.result(timeout=30) == "other"
    assert gex.submit(t.square, 6).result(timeout=30) == 36


@pytest.mark.gomp_extension
def test_executor_wide_and_map_task_timeouts():
    with gf.ProcessPoolExecutor(2, task_timeout=0.5) as ex:
        # the function's own timeout keyword is its own
        assert ex.submit(t.takes_timeout, 1, timeout=99).result(30) == (1, 99)
        with pytest.raises(gf.TaskTimeoutError):
            ex.submit(t.sleep_then, 1, 30).result(timeout=30)
        # per call: None is the executor's bound, math.inf none at all
        assert ex.submit_with_timeout(math.inf, t.sleep_then, 2, 0.8).result(30) == 2
        with pytest.raises(gf.TaskTimeoutError):
            ex.submit_with_timeout(None, t.sleep_then, 3, 30).result(timeout=30)
        # map: per call of a chunk, not per chunk (3 x 0.3 s > 0.5 s)
        assert list(ex.map(t.sleep_then, range(6), [0.3] * 6, chunksize=3)) == list(range(6))
        it = ex.map(t.sleep_then, range(3), [0, 30, 0], task_timeout=0.3)
        assert next(it) == 0
        with pytest.raises(gf.TaskTimeoutError):
            next(it)


@pytest.mark.gomp_extension
@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (0, ValueError), ("1", TypeError)])
def test_bad_task_timeouts_are_refused(gex, bad, exc):
    with pytest.raises(exc, match="timeout"):
        gf.ProcessPoolExecutor(1, task_timeout=bad)
    with pytest.raises(exc, match="timeout"):
        gex.submit_with_timeout(bad, t.square, 1)
    with pytest.raises(exc, match="timeout"):
        gex.map(t.square, [1], task_timeout=bad)


@pytest.mark.gomp_extension
def test_contexts():
    with gf.ProcessPoolExecutor(1, mp_context=gomp.get_context("forkserver")) as ex:
        assert ex.submit(t.square, 3).result(30) == 9
    with gf.ProcessPoolExecutor(1, mp_context=STDLIB) as ex:  # the stdlib's spawn: gomp's
        assert ex.submit(t.pid).result(30) in {c.pid for c in gomp.active_children()}
    import multiprocessing
    with pytest.raises(ValueError, match="fork"):
        gf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    with pytest.raises(TypeError, match="context"):
        gf.ProcessPoolExecutor(1, mp_context="spawn")


@pytest.mark.gomp_extension
def test_get_reusable_executor():
    a = gf.get_reusable_executor(2)
    try:
        assert gf.get_reusable_executor(2) is a
        # warm: the same workers serve every call
        workers = {w.pid for w in a._pool._pool}
        assert {gf.get_reusable_executor(2).submit(t.pid).result(30)
                for _ in range(6)} <= workers
        a.shutdown()
        b = gf.get_reusable_executor(2)
        assert b is not a and b.submit(t.square, 5).result(30) == 25
        c = gf.get_reusable_executor(1)  # other arguments: a new one
        assert c is not b and b._shutdown_thread
        assert c.submit(t.square, 6).result(30) == 36
    finally:
        gf.get_reusable_executor(1).shutdown()


# -- a caller that waits reads the results itself (Pool._await) ----------------

@pytest.mark.gomp_extension
def test_results_reach_many_threads_that_wait_at_once(gex):
    """Threads that each wait on their own futures at the same time: each
    result reaches its future, whichever thread reads the stream."""
    errors = []

    def loop(k):
        try:
            for i in range(150):
                x = 1000 * k + i
                assert gex.submit(t.square, x).result(timeout=30) == x * x
        except BaseException as e:  # reported by the test's thread
            errors.append(e)
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(50)
    assert not any(th.is_alive() for th in threads)
    assert errors == []


@pytest.mark.gomp_extension
def test_futures_no_caller_waits_on_still_complete(gex):
    """After callers read the results themselves (a wait that timed out, a
    long one, a run of short ones), results no caller asks for still come:
    the result thread takes the stream back."""
    slow = gex.submit(t.sleep_then, 1, 0.5)
    with pytest.raises(cf.TimeoutError):
        slow.result(timeout=0.05)
    assert slow.result(timeout=30) == 1
    assert [gex.submit(t.square, i).result(30) for i in range(50)] == [i * i for i in range(50)]
    done = threading.Event()
    gex.submit(t.square, 3).add_done_callback(lambda f: done.set())
    assert done.wait(10)
    fs = [gex.submit(t.square, i) for i in range(20)]
    assert sorted(f.result() for f in cf.as_completed(fs, timeout=10)) == sorted(
        i * i for i in range(20))


@pytest.mark.gomp_extension
def test_ctrl_c_in_result_leaves_the_executor_working(gex, ctrl_c):
    f = gex.submit(t.sleep_then, 7, 5)
    ctrl_c(0.3)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        f.result()
    assert time.monotonic() - started < 4
    # the interrupted wait lost nothing: the call's result still comes
    assert f.result(timeout=30) == 7
    assert gex.submit(t.square, 4).result(timeout=30) == 16


@pytest.mark.gomp_extension
def test_ctrl_c_storm_in_a_busy_loop_loses_no_future(ctrl_c):
    """SIGINT every few milliseconds while the main thread submits and reads
    results: each interrupt lands somewhere in submit() or result(), and
    still every future that submit() returned completes, and shutdown()
    returns."""
    ex = gf.ProcessPoolExecutor(2)
    futures = []
    interrupts = 0
    stop = threading.Event()
    main = threading.main_thread().ident

    def storm():
        while not stop.wait(0.007):
            signal.pthread_kill(main, signal.SIGINT)
    sender = threading.Thread(target=storm)
    try:
        sender.start()
        end = time.monotonic() + 3
        i = 0
        while time.monotonic() < end:
            try:
                f = ex.submit(t.square, i)
                futures.append(f)
                assert f.result() == i * i
            except KeyboardInterrupt:
                interrupts += 1
            i += 1
    finally:
        stop.set()
        while sender.is_alive():
            try:
                sender.join()
            except KeyboardInterrupt:
                pass
    try:
        assert interrupts > 20
        assert [f.result(timeout=30) for f in futures] == [
            f.result() for f in futures]  # every one completes
        assert all(f.done() and not f.exception() for f in futures)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.gomp_extension
def test_executor_dropped_without_shutdown_lets_its_workers_go():
    ex = gf.ProcessPoolExecutor(2)
    assert ex.submit(t.square, 2).result(30) == 4
    pids = {w.pid for w in ex._pool._pool}
    del ex
    import gc
    gc.collect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open("/proc/%d/stat" % pid).read().split(")")[1].split()[0] == "Z"


@pytest.mark.gomp_extension
def test_executor_example():
    import scripts
    r = scripts.run([sys.executable, scripts.example("executor.py")], timeout=60)
    assert r.returncode == 0, r.stderr
    assert "WorkerLostError" in r.stdout and "still usable: 49" in r.stdout


@pytest.mark.gomp_extension
def test_timeouts_example():
    import scripts
    r = scripts.run([sys.executable, scripts.example("timeouts.py")], timeout=60)
    assert r.returncode == 0, r.stderr
    assert "timed out" in r.stdout and "[0, 1, 4, 9, 16]" in r.stdout

"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier:
the stdlib's semantics, in one process and across processes. The tests
taking ``mp`` run on gomp and on the stdlib's spawn context."""
from __future__ import annotations

import os
import pickle
import sys
import threading
import time

import pytest

import scripts

import gomp
import _targets as T


# --- Lock ----------------------------------------------------------------------


def test_lock_basics(mp):
    lock = mp.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.01) is False
    assert lock.acquire(block=False) is False
    lock.release()
    with lock:
        assert "owner=MainProcess" in repr(lock)
    assert repr(lock) == "<Lock(owner=None)>"
    with pytest.raises(ValueError):
        lock.release()


def test_lock_released_by_another_thread(mp):
    # as the stdlib's, a Lock is not owned: any thread may release it
    lock = mp.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    assert lock.acquire(False)


def test_lock_between_threads_blocks_and_wakes(mp):
    lock = mp.Lock()
    lock.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=5)))
    t.start()
    time.sleep(0.05)
    assert not got
    lock.release()
    t.join()
    assert got == [True]


@pytest.mark.parametrize("timeout", [0.05, 0.2])
def test_lock_timeout_is_accurate(mp, timeout):
    lock = mp.Lock()
    lock.acquire()
    t0 = time.monotonic()
    assert lock.acquire(timeout=timeout) is False
    elapsed = time.monotonic() - t0
    assert timeout - 0.002 <= elapsed < timeout + 0.05


def test_negative_timeout_means_zero(mp):
    lock = mp.Lock()
    lock.acquire()
    t0 = time.monotonic()
    assert lock.acquire(True, -5) is False
    assert time.monotonic() - t0 < 0.1


def test_acquire_bad_arguments(mp):
    lock = mp.Lock()
    with pytest.raises(TypeError):
        lock.acquire(True, None, 3)
    with pytest.raises(TypeError):
        lock.acquire(wait=True)
    with pytest.raises(TypeError):
        lock.acquire(True, "soon")


@pytest.mark.timeout(30)
def test_lock_across_processes(mp):
    lock, started, stop = mp.Lock(), mp.Event(), mp.Event()
    p = mp.Process(target=T.hold_until, args=(lock, started, stop))
    p.start()
    assert started.wait(10)
    assert lock.acquire(timeout=0.05) is False
    assert "SomeOtherProcess" in repr(lock)
    stop.set()
    assert lock.acquire(timeout=10) is True
    p.join(10)
    assert p.exitcode == 0


@pytest.mark.timeout(30)
def test_lock_released_by_child(mp):
    lock = mp.Lock()
    lock.acquire()
    p = mp.Process(target=T.release, args=(lock,))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert lock.acquire(timeout=1)


@pytest.mark.timeout(60)
def test_lock_mutual_exclusion_across_processes(mp):
    lock = mp.Lock()
    v = mp.Value("i", 0, lock=False)
    ps = [mp.Process(target=T.bump_under, args=(lock, v, 3000)) for _ in range(3)]
    for p in ps:
        p.start()
    T.bump_under(lock, v, 3000)
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    assert v.value == 12000


# --- RLock -----------------------------------------------------------------------


def test_rlock_recursion_and_ownership(mp):
    r = mp.RLock()
    assert r.acquire() and r.acquire(timeout=0)
    assert repr(r) == "<RLock(MainProcess, 2)>"
    r.release()
    assert repr(r) == "<RLock(MainProcess, 1)>"
    out = []

    def other():
        out.append(r.acquire(timeout=0.05))
        try:
            r.release()
        except AssertionError as e:
            out.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert out == [False, "attempt to release recursive lock not owned by thread"]
    r.release()
    assert repr(r) == "<RLock(None, 0)>"
    with pytest.raises(AssertionError):
        r.release()


@pytest.mark.timeout(30)
def test_rlock_across_processes(mp):
    r, started, stop = mp.RLock(), mp.Event(), mp.Event()
    p = mp.Process(target=T.hold_until, args=(r, started, stop))
    p.start()
    assert started.wait(10)
    assert r.acquire(timeout=0.05) is False
    with pytest.raises(AssertionError):
        r.release()
    stop.set()
    assert r.acquire(timeout=10)
    p.join(10)


# --- Semaphores -------------------------------------------------------------------


def test_semaphore(mp):
    s = mp.Semaphore(2)
    assert s.get_value() == 2
    assert s.acquire() and s.acquire()
    assert s.acquire(False) is False
    assert repr(s) == "<Semaphore(value=0)>"
    s.release()
    s.release()
    s.release()  # unbounded
    assert s.get_value() == 3


@pytest.mark.gomp_extension
def test_negative_semaphore_value_is_a_value_error():
    # as threading.Semaphore's; the stdlib's SemLock raises OSError (EINVAL)
    with pytest.raises(ValueError):
        gomp.Semaphore(-1)


def test_bounded_semaphore(mp):
    s = mp.BoundedSemaphore(2)
    s.acquire()
    assert repr(s) == "<BoundedSemaphore(value=1, maxvalue=2)>"
    s.release()
    with pytest.raises(ValueError):
        s.release()
    assert s.get_value() == 2


def test_semaphore_zero_signals_between_threads(mp):
    s = mp.Semaphore(0)
    t = threading.Timer(0.05, s.release)
    t.start()
    t0 = time.monotonic()
    assert s.acquire(timeout=5)
    assert time.monotonic() - t0 >= 0.03
    t.join()


@pytest.mark.timeout(30)
def test_semaphore_across_processes(mp):
    s, done = mp.Semaphore(0), mp.Event()
    p = mp.Process(target=T.semaphore_take, args=(s, 3, done))
    p.start()
    for _ in range(3):
        time.sleep(0.01)
        s.release()
    assert done.wait(10)
    p.join(10)
    assert s.get_value() == 0


# --- Condition -------------------------------------------------------------------


@pytest.mark.parametrize("make_lock", [None, "Lock", "RLock"])
def test_condition_notify_between_threads(mp, make_lock):
    cond = mp.Condition(getattr(mp, make_lock)() if make_lock else None)
    woken = []

    def waiter():
        with cond:
            woken.append(cond.wait(5))

    ts = [threading.Thread(target=waiter) for _ in range(3)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 5
    while repr(cond).rsplit(", ", 1)[1] != "3)>" and time.monotonic() < deadline:
        time.sleep(0.01)
    with cond:
        cond.notify()
    time.sleep(0.1)
    assert woken == [True]  # at most n
    with cond:
        cond.notify_all()
    for t in ts:
        t.join(5)
    assert woken == [True, True, True]


def test_condition_wait_with_rlock_held_twice(mp):
    cond = mp.Condition(mp.RLock())
    with cond:
        with cond:
            t0 = time.monotonic()
            assert cond.wait(0.05) is False
            assert 0.045 <= time.monotonic() - t0 < 0.5
            # the recursion depth came back
            assert repr(cond._lock) == "<RLock(MainProcess, 2)>"


def test_condition_requires_lock(mp):
    cond = mp.Condition()
    with pytest.raises(AssertionError):
        cond.wait(0.01)
    with pytest.raises(AssertionError):
        cond.notify()


def test_condition_wait_for(mp):
    cond = mp.Condition()
    state = []
    t = threading.Timer(0.05, lambda: (cond.acquire(), state.append(1), cond.notify(),
                                       cond.release()))
    t.start()
    with cond:
        assert cond.wait_for(lambda: state, timeout=5) == [1]
        t0 = time.monotonic()
        assert cond.wait_for(lambda: len(state) > 1, timeout=0.05) is False
        assert time.monotonic() - t0 >= 0.045
    t.join()


def test_condition_over_semaphore(mp):
    cond = mp.Condition(mp.Semaphore(1))
    with cond:
        assert cond.wait(0.01) is False


@pytest.mark.timeout(30)
def test_condition_across_processes(mp):
    cond, ready, out = mp.Condition(), mp.Semaphore(0), mp.Value("i", 0)
    p = mp.Process(target=T.wait_cond, args=(cond, ready, out))
    p.start()
    assert ready.acquire(timeout=10)
    with cond:  # the child is in wait() once we get the lock
        cond.notify()
    p.join(10)
    assert out.value == 1


# --- Event -------------------------------------------------------------------------


def test_event(mp):
    e = mp.Event()
    assert not e.is_set()
    # the stdlib's Event shows its state in its repr from Python 3.11 on
    if mp is gomp or sys.version_info >= (3, 11):
        assert "unset" in repr(e)
    else:
        assert "Event" in repr(e)
    t0 = time.monotonic()
    assert e.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.045
    e.set()
    assert e.is_set() and e.wait() and e.wait(0)
    e.clear()
    assert not e.is_set()


@pytest.mark.timeout(30)
def test_event_set_by_child(mp):
    e = mp.Event()
    p = mp.Process(target=T.set_later, args=(e, 0.05))
    p.start()
    assert e.wait(10)
    p.join(10)


# --- Barrier -------------------------------------------------------------------------


def test_barrier_threads_and_action(mp):
    calls = []
    b = mp.Barrier(3, action=lambda: calls.append(1))
    assert b.parties == 3 and b.n_waiting == 0 and not b.broken
    results = []
    ts = [threading.Thread(target=lambda: results.append(b.wait(5))) for _ in range(2)]
    for t in ts:
        t.start()
    results.append(b.wait(5))
    for t in ts:
        t.join()
    assert sorted(results) == [0, 1, 2]
    assert calls == [1]


def test_barrier_timeout_breaks_it(mp):
    b = mp.Barrier(2)
    t0 = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.05)
    assert 0.045 <= time.monotonic() - t0 < 1
    assert b.broken
    b.reset()
    assert not b.broken


def test_barrier_abort(mp):
    b = mp.Barrier(2)
    b.abort()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait()


@pytest.mark.timeout(30)
def test_barrier_across_processes(mp):
    b = mp.Barrier(3)
    outs = [mp.Value("i", -9) for _ in range(2)]
    ps = [mp.Process(target=T.barrier_wait, args=(b, o)) for o in outs]
    for p in ps:
        p.start()
    mine = b.wait(10)
    for p in ps:
        p.join(10)
    assert sorted([mine] + [o.value for o in outs]) == [0, 1, 2]


@pytest.mark.timeout(30)
def test_barrier_abort_reaches_child(mp):
    b = mp.Barrier(2)
    out = mp.Value("i", -9)
    p = mp.Process(target=T.barrier_wait, args=(b, out))
    p.start()
    deadline = time.monotonic() + 10
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    b.abort()
    p.join(10)
    assert out.value == -1


@pytest.mark.timeout(60)
def test_barrier_many_rounds_across_processes(mp):
    # each round's waiters must all be woken before the next round's arrive
    # (a notify that a late waiter could steal hung this)
    b = mp.Barrier(3)
    counter = mp.Value("i", 0)
    ps = [mp.Process(target=T.barrier_rounds, args=(b, 200, counter)) for _ in range(2)]
    for p in ps:
        p.start()
    T.barrier_rounds(b, 200, counter)
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    assert counter.value == 600


@pytest.mark.timeout(60)
def test_barrier_reset_then_reused_across_processes(mp):
    b = mp.Barrier(2)
    out = mp.Value("i", 0)
    p = mp.Process(target=T.barrier_then_report, args=(b, out))
    p.start()
    deadline = time.monotonic() + 10
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    b.reset()  # the waiting child gets BrokenBarrierError
    p.join(30)
    assert out.value == -1 and not b.broken
    p = mp.Process(target=T.barrier_then_report, args=(b, out))
    p.start()
    b.wait(30)
    p.join(30)
    assert out.value == 1


def test_condition_notify_returns_once_the_woken_have_woken(mp):
    cond = mp.Condition()
    waiting = threading.Semaphore(0)

    def waiter():
        with cond:
            waiting.release()
            cond.wait(30)

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in threads:
        waiting.acquire()
    with cond:
        cond.notify(2)
        # the two units were taken before notify returned: a waiter arriving
        # now cannot take one meant for those already waiting
        assert cond._wait_semaphore.get_value() == 0
        assert cond._sleeping_count.get_value() - cond._woken_count.get_value() == 1
        cond.notify_all()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert "0" in repr(cond)


@pytest.mark.timeout(60)
def test_condition_wait_for_across_processes(mp):
    cond = mp.Condition()
    flag = mp.Value("i", 0, lock=False)
    outs = [mp.Value("i", 0) for _ in range(2)]
    ps = [mp.Process(target=T.wait_for_flag, args=(cond, flag, o)) for o in outs]
    for p in ps:
        p.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with cond:
            if cond._sleeping_count.get_value() - cond._woken_count.get_value() == 2:
                break
        time.sleep(0.01)
    with cond:
        flag.value = 1
        cond.notify_all()
    for p in ps:
        p.join(30)
    assert [o.value for o in outs] == [1, 1]


# --- pickling ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["Lock", "RLock", "Semaphore", "BoundedSemaphore",
                                  "Condition", "Event", "Barrier"])
def test_pickling_outside_process_start_raises(mp, make):
    obj = getattr(mp, make)(*([2] if make == "Barrier" else []))
    with pytest.raises(RuntimeError):
        pickle.dumps(obj)
    with pytest.raises(RuntimeError):
        mp.reducer.ForkingPickler.dumps(obj)


def test_same_as_stdlib_for_lock_errors(mp):
    lock = mp.Lock()
    with pytest.raises(ValueError) as e:
        lock.release()
    assert str(e.value) == "semaphore or lock released too many times"
    r = mp.RLock()
    with pytest.raises(AssertionError):
        r.release()


@pytest.mark.timeout(60)
def test_lock_example_prints_each_line_whole():
    import sys
    out = scripts.run([sys.executable, scripts.example("lock.py")], timeout=50)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == sorted("hello world %d" % i for i in range(10))


# --- records in shared arenas ---------------------------------------------------------


def test_many_objects_use_few_descriptors():
    before = len(os.listdir("/proc/self/fd"))
    objs = [gomp.Lock() for _ in range(3000)] + [gomp.Semaphore() for _ in range(300)]
    objs += [gomp.Value("i") for _ in range(1000)] + [gomp.Event() for _ in range(500)]
    assert len(os.listdir("/proc/self/fd")) - before < 40
    assert all(o.acquire(False) for o in objs[:3300])


def _sync_arenas():
    with open("/proc/self/maps") as f:
        return sum("memfd:gomp:sync" in line for line in f)


def test_freed_records_are_reused():
    gomp.Lock()
    before = _sync_arenas()
    for _ in range(5000):
        lock = gomp.Lock()
        del lock
    assert _sync_arenas() - before <= 1  # an arena has 1024 slots


def _hold_and_report(lock, held, stop, ok):
    lock.acquire()
    held.set()
    stop.wait(10)
    try:
        lock.release()
        ok.value = 1
    except ValueError:
        ok.value = 2


@pytest.mark.timeout(30)
def test_record_of_a_dropped_lock_is_not_reused_while_a_child_has_it():
    lock, held, stop, ok = gomp.Lock(), gomp.Event(), gomp.Event(), gomp.Value("i", 0)
    where = (lock._rec.seg.fd, lock._rec.off)
    p = gomp.Process(target=_hold_and_report, args=(lock, held, stop, ok))
    p.start()
    assert held.wait(10)
    del lock
    new = [gomp.Lock() for _ in range(200)]
    assert where not in [(x._rec.seg.fd, x._rec.off) for x in new]
    assert all(x.acquire(False) for x in new)
    stop.set()
    p.join(10)
    assert ok.value == 1
    assert all(x._get_value() == 0 for x in new)


def _touch(lock):
    with lock:
        pass


@pytest.mark.timeout(30)
def test_child_gives_its_reference_back_when_it_exits():
    lock = gomp.Lock()
    seg, refs = lock._rec.seg, lock._rec.off + 60
    p = gomp.Process(target=_touch, args=(lock,))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert seg.load(refs) == 1  # ours only


@pytest.mark.timeout(60)
def test_garbage_collection_during_allocation():
    # objects in reference cycles are freed by the collector, which may run
    # while a new record or block is being allocated
    import gc
    gc.collect()
    old = gc.get_threshold()
    gc.set_threshold(10)
    try:
        for _ in range(3000):
            a = [gomp.Lock(), gomp.Value("i")]
            a.append(a)
    finally:
        gc.set_threshold(*old)
        gc.collect()

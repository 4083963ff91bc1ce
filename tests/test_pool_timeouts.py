"""Per-task timeouts on gomp.Pool (timeout= of apply_async, map, imap...,
which the stdlib's pool lacks): a call that runs past its bound is killed
with its worker, fails with multiprocessing.TimeoutError, a fresh worker
starts and the other tasks go on."""
from __future__ import annotations

import math
import os
import time

import pytest

import gomp
from gomp.pool import TaskTimeoutError, WorkerLostError
import _pool_targets as T

pytestmark = [pytest.mark.timeout(60), pytest.mark.gomp_extension]


@pytest.fixture
def pool(gomp_pool):
    return gomp_pool


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether process pid has ended (and was reaped) within that long."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def wait_for_workers(p, n: int) -> set:
    deadline = time.monotonic() + 10
    while len(p._pool) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return {w.pid for w in p._pool}


@pytest.mark.parametrize("how", ["sleep", "c-sleep", "spin", "no-sigterm"])
def test_overrunning_task_is_killed_with_its_worker(pool, how):
    others = [pool.apply_async(T.sleep_then, (0.3, i)) for i in range(4)]
    t = time.monotonic()
    r = pool.apply_async(T.overrun, (how,), timeout=0.5)
    with pytest.raises(gomp.TimeoutError) as info:
        r.get(20)
    took = time.monotonic() - t
    e = info.value
    assert isinstance(e, TaskTimeoutError) and e.timeout == 0.5 and e.item is None
    assert "timeout of 0.5 s" in str(e) and str(e.pid) in str(e)
    # the bound counts from the start (the others held both workers for
    # 0.6 s); a worker ignoring SIGTERM takes the SIGKILL grace more
    assert 0.5 <= took < 5
    assert gone(e.pid)
    assert [o.get(20) for o in others] == [0, 1, 2, 3]
    assert e.pid not in wait_for_workers(pool, 2)
    assert pool.map(T.square, range(10)) == [x * x for x in range(10)]


def test_timeout_counts_from_the_start_not_from_the_queue():
    with gomp.Pool(1) as p:
        first = p.apply_async(T.sleep_then, (1.0, "first"))
        # queued behind a second of work, runs 0.3 s: within its 0.6 s
        second = p.apply_async(T.sleep_then, (0.3, "second"), timeout=0.6)
        assert second.get(20) == "second" and first.get(20) == "first"


def test_tasks_within_their_bound_are_untouched(pool):
    pids = set(w.pid for w in pool._pool)
    assert pool.apply(T.square, (4,), timeout=5) == 16
    assert pool.map(T.square, range(100), timeout=5) == [x * x for x in range(100)]
    assert pool.starmap(T.add, [(1, 2), (3, 4)], timeout=5) == [3, 7]
    assert list(pool.imap(T.square, range(20), timeout=5)) == [x * x for x in range(20)]
    assert sorted(pool.imap_unordered(T.square, range(20), 3, timeout=5)) == \
        [x * x for x in range(20)]
    assert pool.map(T.square, range(5), timeout=math.inf) == [0, 1, 4, 9, 16]
    assert {w.pid for w in pool._pool} == pids  # no worker was killed


def test_the_bound_is_per_call_within_a_chunk(pool):
    # four calls of 0.3 s in a chunk: 1.2 s, yet each within 0.6 s
    assert pool.map(T.sleep_then, [0.3] * 8, chunksize=4, timeout=0.6) == [None] * 8
    t = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        pool.map(T.overrun, ["sleep" if i == 5 else 0 for i in range(8)], chunksize=4,
                 timeout=0.6)
    assert time.monotonic() - t < 10
    assert info.value.item == 1  # the second call of the second chunk
    assert "call 1 of the chunk" in str(info.value)


def test_imap_fails_only_the_call_that_overran(pool):
    got = []
    for r in [pool.imap_unordered(T.overrun, ["spin", "x", "y", "z"], timeout=0.5),
              pool.imap(T.overrun, ["x", "spin", "y"], timeout=0.5)]:
        out = []
        while True:
            try:
                out.append(next(r))
            except StopIteration:
                break
            except TaskTimeoutError as e:
                out.append("timeout")
                assert e.item is None
        got.append(out)
    assert sorted(got[0]) == sorted(["timeout", "x", "y", "z"])
    assert got[1] == ["x", "timeout", "y"]


def test_starmap_async_and_callbacks(pool):
    errors = []
    r = pool.starmap_async(T.sleep_then, [(0, 1), (30, 2)], chunksize=1, timeout=0.5,
                           error_callback=errors.append)
    with pytest.raises(TaskTimeoutError):
        r.get(20)
    assert len(errors) == 1 and isinstance(errors[0], TaskTimeoutError)


def test_a_killed_chunk_fails_and_queued_work_moves_on():
    # the worker killed for a timeout also held a message it had not taken:
    # that one runs on another worker, as when a worker dies
    with gomp.Pool(2) as p:
        slow = p.apply_async(T.overrun, ("no-sigterm",), timeout=0.5)
        quick = [p.apply_async(T.pid_after, (0.05,)) for _ in range(20)]
        with pytest.raises(TaskTimeoutError):
            slow.get(20)
        assert len([q.get(20) for q in quick]) == 20


def test_get_and_next_timeouts_keep_their_stdlib_meaning(pool):
    # a wait bound: the task is not killed and its result comes later
    r = pool.apply_async(T.sleep_then, (0.5, "late"))
    with pytest.raises(gomp.TimeoutError) as info:
        r.get(timeout=0.05)
    assert not isinstance(info.value, TaskTimeoutError)
    assert r.get(20) == "late"
    it = pool.imap(T.sleep_then, [0.5])
    with pytest.raises(gomp.TimeoutError):
        it.next(timeout=0.05)
    assert it.next(timeout=20) is None


def test_a_worker_killed_from_outside_is_not_a_timeout(pool):
    r = pool.apply_async(T.die, ("kill",), timeout=30)
    with pytest.raises(WorkerLostError):
        r.get(20)


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (0, ValueError),
                                     (float("nan"), ValueError), ("1", TypeError),
                                     (True, TypeError), ([1], TypeError)])
def test_bad_timeouts_are_refused(pool, bad, exc):
    with pytest.raises(exc, match="timeout"):
        pool.apply_async(T.square, (1,), timeout=bad)
    with pytest.raises(exc, match="timeout"):
        pool.map(T.square, [1], timeout=bad)
    with pytest.raises(exc, match="timeout"):
        pool.imap(T.square, [1], timeout=bad)
    assert pool.apply(T.square, (3,)) == 9


def test_thread_pool_refuses_timeouts():
    with gomp.pool.ThreadPool(1) as p:
        with pytest.raises(ValueError, match="thread pool cannot stop"):
            p.apply_async(T.square, (1,), timeout=1)
        assert p.map(T.square, [1, 2]) == [1, 4]


def test_timed_out_worker_leaves_no_process_behind():
    p = gomp.Pool(2)
    try:
        r = p.apply_async(T.overrun, ("no-sigterm",), timeout=0.3)
        with pytest.raises(TaskTimeoutError) as info:
            r.get(20)
        assert gone(info.value.pid)
    finally:
        p.terminate()
        p.join()
    assert not [c for c in gomp.active_children() if c.pid == info.value.pid]


def test_a_timed_task_sent_to_an_idle_pool_is_watched():
    # the result thread had nothing to watch and waited without a timeout
    with gomp.Pool(1) as p:
        assert p.apply(T.square, (3,)) == 9
        time.sleep(0.2)
        t = time.monotonic()
        with pytest.raises(TaskTimeoutError):
            p.apply(T.overrun, ("sleep",), timeout=0.3)
        assert time.monotonic() - t < 5

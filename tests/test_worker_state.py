"""Pool(worker_state=True): each task gets its worker's state, what the
initializer returned (a dict when there is none), as the keyword argument
``worker_state``. gomp's alone: the stdlib's Pool has no such argument."""
from __future__ import annotations

import collections
import os
import sys

import pytest

import gomp
import _pool_targets as T
import scripts

pytestmark = [pytest.mark.timeout(60), pytest.mark.gomp_extension]


def assert_counted_in_turn(results, start=0):
    """Each worker's counter went start+1, start+2, ... across the tasks it
    ran: one state per worker, kept from task to task. The owners."""
    by_owner = collections.defaultdict(list)
    for owner, n, _x in results:
        by_owner[owner].append(n)
    for owner, ns in by_owner.items():
        assert sorted(ns) == list(range(start + 1, start + 1 + len(ns))), (owner, ns)
    return set(by_owner)


@pytest.mark.parametrize("ctx", ["spawn", "forkserver"])
def test_the_initializers_object_reaches_every_kind_of_task(ctx):
    with gomp.get_context(ctx).Pool(2, initializer=T.new_counter, initargs=(100,),
                                    worker_state=True) as p:
        results = [p.apply(T.count, (1,)), p.apply(T.count_kw, (2,), {"scale": 3}),
                   p.apply_async(T.count, (3,)).get(10)]
        results += p.map(T.count, range(30), chunksize=1)
        results += p.map(T.count, range(30))  # chunks of several tasks
        results += p.map_async(T.count, range(10)).get(10)
        results += list(p.imap(T.count, range(20)))
        results += list(p.imap(T.count, iter(range(20)), chunksize=3))
        results += list(p.imap_unordered(T.count, range(20)))
        results += p.starmap(T.count_pair, [(i, 1) for i in range(20)])
        results += p.starmap_async(T.count_pair, [(i, 2) for i in range(5)]).get(10)
        owners = assert_counted_in_turn(results, start=100)
        assert {pid for pid, _thread in owners} <= {w.pid for w in p._pool}
        assert len(results) == 3 + 30 + 30 + 10 + 20 + 20 + 20 + 20 + 5
        # the values went through as well
        assert [x for _o, _n, x in results[:3]] == [1, 6, 3]
        assert sorted(x for _o, _n, x in results[-5:]) == [2, 3, 4, 5, 6]


def test_a_new_worker_calls_the_initializer_again():
    with gomp.Pool(1, initializer=T.new_counter, maxtasksperchild=2, worker_state=True) as p:
        results = [p.apply(T.count, (i,)) for i in range(6)]
        assert [n for _o, n, _x in results] == [1, 2, 1, 2, 1, 2]
        owners = [owner for owner, _n, _x in results]
        assert len(set(owners)) == 3 and owners[0] == owners[1] != owners[2]
        results = p.map(T.count, range(7), chunksize=1)
        assert_counted_in_turn(results)
        assert max(n for _o, n, _x in results) <= 2


def test_without_an_initializer_the_state_is_a_dict_per_worker():
    with gomp.Pool(2, worker_state=True) as p:
        results = p.map(T.fill, range(40), chunksize=1)
        assert {kind for _pid, kind, _n in results} == {"dict"}
        by_pid = collections.defaultdict(list)
        for pid, _kind, n in results:
            by_pid[pid].append(n)
        for ns in by_pid.values():
            assert sorted(ns) == list(range(1, len(ns) + 1))
        # lambdas (sent by value) get it too: the worker's own dict, filled
        # if that worker ran some of the map (one may have run it all)
        pid, keys = p.apply(lambda worker_state: (os.getpid(), sorted(worker_state)))
        assert keys == (["seen"] if pid in by_pid else [])


def test_thread_pool_keeps_a_state_per_thread():
    from gomp.pool import ThreadPool
    with ThreadPool(3, initializer=T.new_counter, initargs=(10,), worker_state=True) as p:
        results = p.map(T.count, range(60), chunksize=1)
        results += list(p.imap_unordered(T.count, range(10)))
        owners = assert_counted_in_turn(results, start=10)
        assert 1 <= len(owners) <= 3


def test_tasks_get_no_state_unless_asked():
    # the initializer's return value is ignored, as in the stdlib
    with gomp.Pool(1, initializer=T.new_counter) as p:
        with pytest.raises(TypeError, match="worker_state"):
            p.apply(T.count, (1,))
        assert p.map(T.square, range(3)) == [0, 1, 4]


def test_worker_state_example():
    r = scripts.run([sys.executable, scripts.example("worker_state.py")], timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["gomp: multiprocessing in Go", "state: what a worker keeps",
                                     "tqdm: None",
                                     "tasks counted by the workers' own dicts: 100"]

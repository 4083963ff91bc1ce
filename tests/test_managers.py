"""gomp.Manager() and SyncManager: the stdlib's registry and semantics. The
tests taking ``mp`` (or ``manager``) run on gomp and on the stdlib's spawn
context, those marked gomp_extension on gomp alone."""
from __future__ import annotations

import array
import copy
import queue
import threading
import time

import pytest

import _managers_targets as T


@pytest.fixture
def manager(mp):
    # one per test: the shared fixture kills whatever children a test leaves
    m = mp.Manager()
    yield m
    m.shutdown()


def test_manager_is_started_syncmanager(manager, mp_managers):
    assert isinstance(manager, mp_managers.SyncManager)
    assert manager._process.is_alive()
    assert manager.address is not None


def test_dict(manager):
    d = manager.dict({"a": 1})
    d["b"] = 2
    d.update(c=3)
    assert d["a"] == 1 and d.get("z", 9) == 9
    assert len(d) == 3 and "b" in d and "z" not in d
    assert sorted(d.keys()) == ["a", "b", "c"]
    assert sorted(d.items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert sorted(d) == ["a", "b", "c"]  # __iter__ returns an iterator proxy
    assert d.pop("a") == 1
    assert d.setdefault("x", 5) == 5
    assert d.copy() == {"b": 2, "c": 3, "x": 5}
    del d["x"]
    assert str(d) == repr({"b": 2, "c": 3})
    assert copy.deepcopy(d) == {"b": 2, "c": 3}
    d.clear()
    assert len(d) == 0


def test_missing_key_raises_keyerror(manager):
    d = manager.dict()
    with pytest.raises(KeyError, match="nope"):
        d["nope"]
    assert len(d) == 0


@pytest.mark.gomp_extension
def test_missing_key_raises_keyerror_with_remote_traceback(manager, mp_managers):
    # the stdlib's server sends the exception alone, without its traceback
    d = manager.dict()
    with pytest.raises(KeyError) as info:
        d["nope"]
    cause = info.value.__cause__
    assert isinstance(cause, mp_managers.RemoteTraceback)
    assert "KeyError" in str(cause) and "Traceback" in str(cause)


def test_list(manager):
    lst = manager.list(range(5))
    lst.append(5)
    lst.extend([6, 7])
    lst += [8]
    assert lst[0] == 0 and lst[-1] == 8 and lst[2:4] == [2, 3]
    assert len(lst) == 9 and 3 in lst
    lst[0] = 100
    lst.insert(1, 50)
    assert lst.pop() == 8
    lst.remove(50)
    lst.reverse()
    lst.sort()
    assert lst[:] == [1, 2, 3, 4, 5, 6, 7, 100]
    assert lst.index(100) == 7 and lst.count(1) == 1
    assert lst + [0] == [1, 2, 3, 4, 5, 6, 7, 100, 0]
    lst *= 2
    assert len(lst) == 16
    with pytest.raises(IndexError):
        lst[100]


def test_namespace(manager):
    ns = manager.Namespace(a=1, b=2)
    ns.c = 3
    assert (ns.a, ns.b, ns.c) == (1, 2, 3)
    del ns.c
    with pytest.raises(AttributeError):
        ns.c
    assert repr(ns._getvalue()) == "Namespace(a=1, b=2)"


def test_value_and_array(manager):
    v = manager.Value("i", 7)
    assert v.value == 7 and v.get() == 7
    v.value = 8
    assert v.get() == 8
    a = manager.Array("d", [1.0, 2.0, 3.0])
    assert len(a) == 3 and a[1] == 2.0
    a[1] = 5.0
    assert a[:] == array.array("d", [1.0, 5.0, 3.0])


def test_queue(manager):
    q = manager.Queue()
    q.put(1)
    q.put_nowait(2)
    assert q.qsize() == 2 and not q.empty()
    assert q.get() == 1 and q.get_nowait() == 2
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    bounded = manager.Queue(1)
    bounded.put("x")
    assert bounded.full()
    with pytest.raises(queue.Full):
        bounded.put("y", timeout=0.05)


@pytest.mark.timeout(30)
def test_joinable_queue_with_child(manager, mp):
    q = manager.JoinableQueue()
    out = manager.list()
    p = mp.Process(target=T.consume_joinable, args=(q, out))
    p.start()
    for i in range(5):
        q.put(i)
    q.put(None)
    q.join()
    p.join(10)
    assert p.exitcode == 0
    assert sorted(out) == [0, 2, 4, 6, 8]


def test_locks(manager):
    lock = manager.Lock()
    assert lock.acquire()
    assert not lock.acquire(False)
    assert not lock.acquire(True, 0.05)
    lock.release()
    with lock:
        pass
    rlock = manager.RLock()
    assert rlock.acquire() and rlock.acquire()
    rlock.release()
    rlock.release()
    with pytest.raises(RuntimeError):
        rlock.release()
    sem = manager.Semaphore(2)
    assert sem.acquire() and sem.acquire() and not sem.acquire(timeout=0.05)
    sem.release()
    sem.release()
    bsem = manager.BoundedSemaphore(1)
    bsem.acquire()
    bsem.release()
    with pytest.raises(ValueError):
        bsem.release()


def test_lock_is_held_by_the_client_thread_until_released(manager):
    lock = manager.Lock()
    lock.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.1)))
    t.start()
    t.join()
    assert got == [False]
    lock.release()


@pytest.mark.timeout(30)
def test_condition_and_event(manager):
    cond = manager.Condition()
    ev = manager.Event()
    assert not ev.is_set()
    assert ev.wait(0.01) is False
    ready = []

    def waiter():
        with cond:
            ready.append(cond.wait_for(lambda: ev.is_set(), 10))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    ev.set()
    with cond:
        cond.notify_all()
    t.join(10)
    assert ready == [True]
    assert ev.is_set() and ev.wait(0)
    ev.clear()
    assert not ev.is_set()
    with cond:
        assert cond.wait(0.01) is False


@pytest.mark.timeout(30)
def test_barrier_across_processes(manager, mp):
    barrier = manager.Barrier(3)
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken
    results = manager.list()
    procs = [mp.Process(target=T.wait_barrier, args=(barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    results.append(barrier.wait(10))
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert sorted(results) == [0, 1, 2]
    barrier.abort()
    assert barrier.broken
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(1)


@pytest.mark.timeout(30)
def test_proxies_as_process_arguments(manager, mp):
    d = manager.dict()
    lst = manager.list()
    q = manager.Queue()
    ns = manager.Namespace(a=2, b=3)
    lock = manager.Lock()
    v = manager.Value("i", 0)
    procs = [
        mp.Process(target=T.fill_dict, args=(d, 10)),
        mp.Process(target=T.append_to_list, args=(lst, range(5))),
        mp.Process(target=T.put_items, args=(q, ["a", "b"])),
        mp.Process(target=T.set_namespace, args=(ns,)),
    ] + [mp.Process(target=T.incr_under_lock, args=(lock, v, 50)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
        assert p.exitcode == 0
    assert dict(d) == {i: i * i for i in range(10)}
    assert list(lst) == list(range(5))
    assert [q.get(timeout=5), q.get(timeout=5)] == ["a", "b"]
    assert ns.total == 5 and ns.child_pid == procs[3].pid
    assert v.value == 100


@pytest.mark.timeout(30)
def test_event_between_processes(manager, mp):
    ev_in, ev_out = manager.Event(), manager.Event()
    p = mp.Process(target=T.wait_event_then_set, args=(ev_in, ev_out))
    p.start()
    ev_in.set()
    assert ev_out.wait(10)
    p.join(10)


def test_nested_proxies(manager, mp_managers):
    outer = manager.list()
    inner = manager.dict()
    outer.append(inner)
    inner["k"] = "v"
    got = outer[0]
    assert isinstance(got, mp_managers.BaseProxy)
    assert got["k"] == "v"
    got["j"] = 1
    assert inner["j"] == 1
    del inner, got
    # the inner dict lives on inside the list
    assert outer[0]["k"] == "v"


def test_objects_are_released_with_their_proxies(manager):
    before = manager._number_of_objects()
    d = manager.dict()
    lst = manager.list()
    assert manager._number_of_objects() == before + 2
    del d
    assert manager._number_of_objects() == before + 1
    del lst
    assert manager._number_of_objects() == before


def test_unpicklable_argument_leaves_connection_usable(manager):
    d = manager.dict()
    with pytest.raises(Exception):
        d["x"] = threading.Lock()
    d["y"] = 1
    assert d["y"] == 1


def test_method_not_exposed(manager, mp_managers):
    d = manager.dict()
    d.update(ok=1)
    lst = manager.list()
    q = manager.Queue()
    q.put(1)
    with pytest.raises(mp_managers.RemoteError) as info:
        q._callmethod("__getattribute__", ("mutex",))  # not exposed
    assert "exposed" in str(info.value)
    assert d["ok"] == 1 and len(lst) == 0


def test_threads_share_a_proxy(manager):
    d = manager.dict()

    def work(k):
        for i in range(50):
            d[(k, i)] = i

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(d) == 200


def test_proxy_repr_and_token(manager, mp_managers):
    d = manager.dict()
    assert "DictProxy" in repr(d)
    assert d._token.typeid == "dict"
    assert isinstance(d._token, mp_managers.Token)
    assert "Token(typeid='dict'" in repr(d._token)


def test_context_manager_and_shutdown(mp, mp_managers):
    with mp.Manager() as m:
        d = m.dict()
        d[1] = 2
        proc = m._process
        assert proc.is_alive()
    proc.join(5)
    assert not proc.is_alive()
    assert m._state.value == mp_managers.State.SHUTDOWN
    with pytest.raises(Exception):
        d[1]
    with pytest.raises(mp.ProcessError):
        m.start()
    with pytest.raises(mp.ProcessError):
        with m:
            pass


@pytest.mark.gomp_extension
@pytest.mark.timeout(30)
def test_proxy_returned_by_a_method_in_child(manager, mp):
    # the stdlib's proxy unpickled in a child has no manager, so it cannot
    # make the proxy a method returns (AttributeError: no '_registry')
    d = manager.dict(a=1, b=2)
    out = manager.list()
    p = mp.Process(target=T.iterate_dict, args=(d, out))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert list(out) == ["a", "b"]


@pytest.mark.timeout(60)
def test_managed_pool(mp):
    import operator
    with mp.Manager() as m:
        pool = m.Pool(2)
        try:
            assert pool.map(operator.neg, range(5)) == [0, -1, -2, -3, -4]
            assert pool.apply_async(operator.mul, (6, 7)).get(30) == 42
        finally:
            pool.terminate()

"""gomp.dummy: the multiprocessing API over threads, as the stdlib's."""
from __future__ import annotations

import array
import queue
import threading

import pytest

import gomp.dummy as dummy
from gomp.dummy import connection

pytestmark = pytest.mark.timeout(30)


def test_names_match_the_stdlib():
    import multiprocessing.dummy as std
    assert sorted(dummy.__all__) == sorted(std.__all__)
    for name in std.__all__ + ["Namespace", "Value", "Array", "shutdown", "DummyProcess"]:
        assert hasattr(dummy, name), name
    assert dummy.Queue is queue.Queue and dummy.JoinableQueue is queue.Queue
    assert dummy.Lock is threading.Lock and dummy.current_process is threading.current_thread


def test_process_is_a_thread():
    out = []
    p = dummy.Process(target=out.append, args=(1,))
    assert p.exitcode is None
    p.start()
    assert p in dummy.active_children() or p.exitcode == 0
    p.join()
    assert out == [1] and p.exitcode == 0
    assert p not in dummy.active_children()


def test_start_from_another_thread_fails():
    p = dummy.Process(target=lambda: None)
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, p.start)))
    t.start()
    t.join()
    assert errors


def test_pool_is_a_thread_pool():
    from gomp.pool import ThreadPool
    seen = set()

    def f(x):
        seen.add(threading.get_ident())
        return x * 2

    with dummy.Pool(3) as p:
        assert isinstance(p, ThreadPool)
        assert p.map(f, range(20)) == [x * 2 for x in range(20)]
        assert p.apply_async(f, (5,)).get(5) == 10
        assert list(p.imap(f, range(3))) == [0, 2, 4]
    assert threading.get_ident() not in seen


def test_pipe_listener_client_manager_values():
    a, b = dummy.Pipe()
    a.send({"x": 1})
    assert b.poll(1) and b.recv() == {"x": 1}
    assert not a.poll()
    with connection.Listener() as listener:
        c = connection.Client(listener.address)
        s = listener.accept()
        c.send("hi")
        assert s.recv() == "hi"
        s.send_bytes(b"yo")
        assert c.recv_bytes() == b"yo"
    m = dummy.Manager()
    assert m.list is list and m.dict is dict
    ns = m.Namespace(a=1, _hidden=2)
    assert repr(ns) == "Namespace(a=1)"
    v = dummy.Value("i", 3)
    v.value += 1
    assert v.value == 4 and repr(v) == "<Value('i', 4)>"
    assert dummy.Array("i", [1, 2]) == array.array("i", [1, 2])
    dummy.freeze_support()
    dummy.shutdown()


def test_thread_pool_terminate_runs_nothing_more():
    import time
    from gomp.pool import ThreadPool
    ran = []

    def slow(x):
        time.sleep(0.2)
        ran.append(x)

    tp = ThreadPool(1)
    rs = [tp.apply_async(slow, (i,)) for i in range(5)]
    time.sleep(0.05)
    tp.terminate()
    tp.join()
    assert ran == [0]
    with pytest.raises(Exception):
        rs[-1].get(1)

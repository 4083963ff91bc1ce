"""Functions and classes that children of the manager tests use (importable
by name in a child)."""
from __future__ import annotations

import os
import time

from gomp.managers import BaseManager, BaseProxy, DictProxy


def fill_dict(d, n):
    for i in range(n):
        d[i] = i * i


def append_to_list(lst, items):
    for x in items:
        lst.append(x)


def put_items(q, items):
    for x in items:
        q.put(x)


def consume_joinable(q, out):
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        out.append(item * 2)
        q.task_done()


def incr_under_lock(lock, value, n):
    for _ in range(n):
        with lock:
            value.value = value.value + 1


def wait_barrier(barrier, results):
    results.append(barrier.wait(10))


def wait_event_then_set(ev_in, ev_out):
    if ev_in.wait(10):
        ev_out.set()


def block_on_queue(q, started):
    started.set()
    q.get()  # killed while waiting here


def set_namespace(ns):
    ns.child_pid = os.getpid()
    ns.total = ns.a + ns.b


class Counter:
    def __init__(self, start=0):
        self.n = start

    def incr(self, by=1):
        self.n += by
        return self.n

    def value(self):
        return self.n

    def fail(self, message):
        raise ValueError(message)

    def sibling(self):
        return Counter(self.n + 100)

    def give_unpicklable(self):
        return _Unpicklable()

    def give_lock(self):
        import threading
        return threading.Lock()

    def slow(self, seconds):
        time.sleep(seconds)
        return seconds

    def big(self):
        return b"x" * (32 << 20)

    def _private(self):
        return "private"


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this object on purpose")


class CounterProxy(BaseProxy):
    _exposed_ = ("incr", "value")

    def incr(self, by=1):
        return self._callmethod("incr", (by,))

    def value(self):
        return self._callmethod("value")


_shared = {}


def get_shared():
    return _shared


class MyManager(BaseManager):
    pass


class _Threads:
    def count(self):
        import threading
        return threading.active_count()


def threads():
    return _Threads()


MyManager.register("Counter", Counter)
MyManager.register("CounterP", Counter, proxytype=CounterProxy)
MyManager.register("CounterExposed", Counter, exposed=("incr", "_private"))
MyManager.register("shared", get_shared, proxytype=DictProxy)
MyManager.register("counters", Counter, method_to_typeid={"sibling": "CounterRef"})
MyManager.register("threads", threads)
# the type of what sibling() returns: no callable, the object is the result
MyManager.register("CounterRef", create_method=False)


def set_flag(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))


def use_counter_proxy(c, n):
    for _ in range(n):
        c.incr()


def call_received(conn, n):
    """What a pool worker does: take a pickled callable (a proxy's bound
    method) from a pipe and call it."""
    fn = conn.recv()
    for i in range(n):
        fn(i)
    conn.send("done")


def fetch_forever(counter, started):
    started.incr()
    while True:
        counter.big()


def idle_after_call(counter, started):
    counter.incr()
    started.incr()
    time.sleep(60)


def iterate_dict(d, out):
    # __iter__ returns an iterator proxy: its type is found without a manager
    out.extend(sorted(k for k in d))

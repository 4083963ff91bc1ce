"""Managers: proxy method round trips and proxy creation, gomp against the
stdlib's manager started with each start method."""
from __future__ import annotations

import multiprocessing
import time

import gomp
from run import Case

_managers = {}


def _manager(name):
    """One started manager per row, made on first use and kept for the run
    (shut down at exit)."""
    m = _managers.get(name)
    if m is None:
        ctx = gomp if name == "gomp" else multiprocessing.get_context(name.split()[1])
        m = _managers[name] = ctx.Manager()
    return m


def _per_call(fn, n):
    fn()  # the thread's connection is made outside the timing
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def _dict_set(name, n=2000):
    def run():
        d = _manager(name).dict()
        return _per_call(lambda: d.__setitem__("key", 1), n)
    return run


def _dict_get(name, n=2000):
    def run():
        d = _manager(name).dict({"key": 1})
        return _per_call(lambda: d["key"], n)
    return run


def _queue_put_get(name, n=1000):
    def run():
        q = _manager(name).Queue()

        def one():
            q.put(b"x" * 100)
            q.get()
        return _per_call(one, n)
    return run


def _create_proxy(name, n=200):
    def run():
        m = _manager(name)
        return _per_call(lambda: m.list(), n)
    return run


def cases():
    names = {n: n for n in ("gomp", "stdlib fork", "stdlib forkserver", "stdlib spawn")}
    return [
        Case("manager dict d[k] = v", "µs", {row: _dict_set(n) for row, n in names.items()},
             baseline="stdlib spawn", goal="gomp >= 2x stdlib spawn"),
        Case("manager dict d[k]", "µs", {row: _dict_get(n) for row, n in names.items()},
             baseline="stdlib spawn"),
        Case("manager Queue put+get", "µs",
             {row: _queue_put_get(n) for row, n in names.items()}, baseline="stdlib spawn"),
        Case("manager proxy create+release (m.list())", "µs",
             {row: _create_proxy(n) for row, n in names.items()}, baseline="stdlib spawn"),
    ]

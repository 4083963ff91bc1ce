"""Locks and shared values: gomp against the stdlib.

- uncontended Lock acquire()+release() in one process (no child: one
  stdlib row, whatever the start method);
- a Lock handed back and forth between two processes (two locks, each
  released by the process that did not take it: one round trip is two
  handoffs);
- 4 processes adding 1 to a Value under its get_lock(), 5000 times each.
"""
from __future__ import annotations

import multiprocessing
import time
import timeit

import gomp
from run import Case

import _sync_targets

STD = multiprocessing.get_context("spawn")
# the cases with children: the stdlib with each start method
CTXS = {"gomp": gomp, **{f"stdlib {m}": multiprocessing.get_context(m)
                         for m in ("fork", "forkserver", "spawn")}}
HANDOFF_ROUNDS = 5000
ADDS = 5000


def _uncontended(ctx, kind):
    n = 200_000
    if kind == "with":
        lock = ctx.Lock()
        t = timeit.timeit("with lock: pass", globals={"lock": lock}, number=n)
    else:
        lock = getattr(ctx, kind)()
        t = timeit.timeit("lock.acquire(); lock.release()", globals={"lock": lock}, number=n)
    return t / n * 1e9


def _handoff(ctx):
    a, b, ready = ctx.Lock(), ctx.Lock(), ctx.Event()
    a.acquire()
    b.acquire()
    p = ctx.Process(target=_sync_targets.handoff, args=(a, b, ready, HANDOFF_ROUNDS))
    p.start()
    ready.wait()
    t = time.perf_counter()
    for _ in range(HANDOFF_ROUNDS):
        a.release()
        b.acquire()
    elapsed = time.perf_counter() - t
    p.join()
    return elapsed / HANDOFF_ROUNDS * 1e6


def _value_adds(ctx):
    v, start, done = ctx.Value("i", 0), ctx.Event(), ctx.Semaphore(0)
    ps = [ctx.Process(target=_sync_targets.add_under_lock, args=(v, start, done, ADDS))
          for _ in range(4)]
    for p in ps:
        p.start()
    time.sleep(0.05)  # all four up and waiting
    t = time.perf_counter()
    start.set()
    for _ in ps:
        done.acquire()
    elapsed = time.perf_counter() - t
    for p in ps:
        p.join()
    assert v.value == 4 * ADDS
    return elapsed * 1000


def cases():
    return [
        Case("Lock acquire()+release(), uncontended", "ns",
             {"gomp": lambda: _uncontended(gomp, "Lock"),
              "stdlib": lambda: _uncontended(STD, "Lock")},
             baseline="stdlib", goal="gomp within 1.5x of stdlib (ratio >= 0.67)"),
        Case("RLock acquire()+release(), uncontended", "ns",
             {"gomp": lambda: _uncontended(gomp, "RLock"),
              "stdlib": lambda: _uncontended(STD, "RLock")},
             baseline="stdlib"),
        Case("with lock: pass, uncontended", "ns",
             {"gomp": lambda: _uncontended(gomp, "with"),
              "stdlib": lambda: _uncontended(STD, "with")},
             baseline="stdlib"),
        Case("Lock handed between two processes, per round trip", "µs",
             {k: (lambda c=c: _handoff(c)) for k, c in CTXS.items()},
             baseline="stdlib spawn", goal="gomp >= stdlib"),
        Case("4 processes x %d adds to a Value under get_lock()" % ADDS, "ms",
             {k: (lambda c=c: _value_adds(c)) for k, c in CTXS.items()},
             baseline="stdlib spawn", goal="gomp >= stdlib"),
    ]

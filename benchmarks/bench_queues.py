"""Queues: gomp.Queue against the stdlib's multiprocessing.Queue (children
started with each start method) and faster-fifo (pip install faster-fifo),
in the same run.

Producers in child processes start together at a set time (so process
start-up is not measured); consumers time until their last item. The
get()/get_many() rows measure the consumer alone, on a queue filled
beforehand in the same process.
"""
from __future__ import annotations

import multiprocessing
import time

import gomp
from run import Case

import _queues_targets as t

SMALL_N = 100_000
MANY_N = 25_000
BIG = 16 << 20
BIG_N = 12
DRAIN_N = 50_000
START_SLACK = 1.5  # s for the children to start before t0

try:
    import faster_fifo
except ImportError:  # a benchmark extra
    faster_fifo = None

_stdlib = multiprocessing.get_context("spawn")


def _ff_queue():
    q = faster_fifo.Queue(max_size_bytes=64 << 20)
    return q


def _impls():
    impls = {"gomp": (gomp, gomp.Queue)}
    for method in ("fork", "forkserver", "spawn"):
        ctx = multiprocessing.get_context(method)
        impls[f"stdlib {method}"] = (ctx, ctx.Queue)
    if faster_fifo is not None:
        impls["faster-fifo (spawn)"] = (_stdlib, _ff_queue)
    return impls


def _one_to_one(ctx, make) -> float:
    q = make()
    t0 = time.time() + START_SLACK
    p = ctx.Process(target=t.produce_small, args=(q, SMALL_N, t0))
    p.start()
    get = q.get
    for _ in range(SMALL_N):
        get()
    dt = time.time() - t0
    p.join()
    return SMALL_N / dt


def _four_by_four(ctx, make) -> float:
    q = make()
    done = ctx.Queue()
    t0 = time.time() + START_SLACK * 2
    procs = [ctx.Process(target=t.produce_small, args=(q, MANY_N, t0)) for _ in range(4)]
    procs += [ctx.Process(target=t.consume_small, args=(q, MANY_N, done)) for _ in range(4)]
    for p in procs:
        p.start()
    end = max(done.get() for _ in range(4))
    for p in procs:
        p.join()
    return 4 * MANY_N / (end - t0)


def _big(ctx, make) -> float:
    q = make()
    t0 = time.time() + START_SLACK
    p = ctx.Process(target=t.produce_big, args=(q, BIG_N, BIG, t0))
    p.start()
    for _ in range(BIG_N):
        item = q.get()
        assert len(item) == BIG
    dt = time.time() - t0
    p.join()
    return BIG_N * BIG / dt / 1e6


def _filled(make, n):
    q = make()
    items = [(i, t.SMALL) for i in range(n)]
    if hasattr(q, "put_many"):
        q.put_many(items)
    else:
        for x in items:
            q.put(x)
    return q


def _drain_get(make) -> float:
    q = _filled(make, DRAIN_N)
    get = q.get
    start = time.perf_counter()
    for _ in range(DRAIN_N):
        get()
    return DRAIN_N / (time.perf_counter() - start)


def _drain_get_many(make) -> float:
    q = _filled(make, DRAIN_N)
    got = 0
    start = time.perf_counter()
    while got < DRAIN_N:
        if isinstance(q, gomp.queues.Queue):
            got += len(q.get_many(DRAIN_N - got))
        else:
            got += len(q.get_many(max_messages_to_get=DRAIN_N - got))
    return DRAIN_N / (time.perf_counter() - start)


def cases():
    impls = _impls()
    skipped = {} if faster_fifo else {"faster-fifo (spawn)": "pip install faster-fifo"}

    def rows(fn, with_ctx=True, names=None):
        out = {}
        for name, (ctx, make) in impls.items():
            if names is not None and name not in names:
                continue
            out[name] = (lambda c=ctx, m=make: fn(c, m)) if with_ctx else (lambda m=make: fn(m))
        return out

    # no child there: the start method makes no difference
    drain_names = ["gomp", "faster-fifo (spawn)", "stdlib spawn"]
    return [
        Case("queue 1 producer / 1 consumer, small messages", "msg/s", rows(_one_to_one),
             baseline="stdlib spawn", higher_is_better=True, goal="gomp >= 10x stdlib",
             skipped=skipped),
        Case("queue 4 producers / 4 consumers, small messages", "msg/s", rows(_four_by_four),
             baseline="stdlib spawn", higher_is_better=True, goal="gomp >= 10x stdlib",
             skipped=skipped),
        Case("queue 16 MiB items, 1p/1c", "MB/s", rows(_big), baseline="stdlib spawn",
             higher_is_better=True, goal="gomp >= 3x stdlib", skipped=skipped),
        Case("queue get() one at a time (consumer only)", "msg/s",
             rows(_drain_get, with_ctx=False, names=drain_names),
             baseline="faster-fifo (spawn)" if faster_fifo else "stdlib spawn",
             higher_is_better=True, goal="gomp >= faster-fifo", skipped=skipped),
        Case("queue get_many (consumer only)", "msg/s",
             rows(_drain_get_many, with_ctx=False, names=["gomp", "faster-fifo (spawn)"]),
             baseline="faster-fifo (spawn)" if faster_fifo else "gomp",
             higher_is_better=True, goal="gomp >= faster-fifo", skipped=skipped),
    ]

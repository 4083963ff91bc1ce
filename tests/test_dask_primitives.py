"""Process, Queue, Lock, Semaphore, Event and Value on the dask context:
the documentation's producer/consumer and Lock examples, run across the
workers of a LocalCluster; what a cluster cannot offer says what to use."""
from __future__ import annotations

import queue
import time

import pytest

from _dask_cluster import cluster, ctx, reap_children, worker_pids  # noqa: F401  (fixtures)
import _dask_targets as D

pytestmark = pytest.mark.timeout(120)


def run_to_the_end(*procs):
    """Start every process, then wait for each: all must exit with 0."""
    for p in procs:
        p.start()
    assert [(p.join(60), p.exitcode)[1] for p in procs] == [0] * len(procs)


def test_producer_consumer_with_a_queue(ctx):
    q, out = ctx.Queue(), ctx.Queue()
    consumer = ctx.Process(target=D.consumer, args=(q, out))
    producer = ctx.Process(target=D.producer, args=(q, 50))
    consumer.start()
    producer.start()
    assert out.get(timeout=60) == list(range(50))
    for p in (producer, consumer):
        p.join(60)
        assert p.exitcode == 0 and not p.is_alive()
    assert producer.pid in worker_pids(ctx).values()


def test_lock_protected_printing(ctx):
    lock, out = ctx.Lock(), ctx.Queue()
    run_to_the_end(*[ctx.Process(target=D.locked_print, args=(lock, out, i)) for i in range(6)])
    spans = sorted((out.get(timeout=60) for _ in range(6)), key=lambda s: s[1])
    assert sorted(i for i, _, _ in spans) == list(range(6))
    # never two holders at once
    assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:]))


def test_value_under_its_lock(ctx):
    v = ctx.Value("i", 0)
    run_to_the_end(*[ctx.Process(target=D.add_under_lock, args=(v, 10)) for _ in range(3)])
    assert v.value == 30
    v.value = 2 ** 32 + 5  # converted as a C int is
    assert v.value == 5
    obj = ctx.Value(object, (1, "a"), lock=False)
    assert obj.value == (1, "a")  # a tuple stays a tuple
    with pytest.raises(AttributeError):
        obj.get_lock()


def test_process_exit_codes_join_and_terminate(ctx):
    ok = ctx.Process(target=D.interval, args=(0.1,), name="ok")
    assert ok.name == "ok" and ok.exitcode is None and ok.pid is None and not ok.is_alive()
    with pytest.raises(AssertionError):
        ok.join()
    ok.start()
    with pytest.raises(AssertionError):
        ok.start()
    ok.join(30)
    assert ok.exitcode == 0 and ok.pid in worker_pids(ctx).values()
    bad, code = ctx.Process(target=D.raises), ctx.Process(target=D.exit_with, args=(3,))
    bad.start()
    code.start()
    bad.join(30)
    code.join(30)
    assert (bad.exitcode, code.exitcode) == (1, 3)
    slow = ctx.Process(target=D.interval, args=(1.5,))
    slow.start()
    t = time.monotonic()
    slow.join(0.2)
    assert 0.15 < time.monotonic() - t < 1.2 and slow.is_alive() and slow.exitcode is None
    slow.terminate()
    slow.join(10)
    assert slow.exitcode < 0 and not slow.is_alive()


def test_queue_event_and_semaphore(ctx):
    q = ctx.Queue(maxsize=1)
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert time.monotonic() - t < 3
    with pytest.raises(queue.Empty):
        q.get_nowait()
    q.put({"k": (1, 2)})
    assert q.qsize() == 1 and q.full() and not q.empty()
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    assert q.get() == {"k": (1, 2)}

    ev, out = ctx.Event(), ctx.Queue()
    waiter = ctx.Process(target=D.wait_event, args=(ev, out))
    waiter.start()
    assert not ev.is_set() and ev.wait(0.1) is False
    ev.set()
    assert out.get(timeout=30) is True and ev.is_set()
    waiter.join(30)

    sem = ctx.Semaphore(2)
    assert sem.acquire() and sem.acquire(timeout=1)
    assert sem.acquire(False) is False and sem.get_value() == 0
    sem.release()
    assert sem.get_value() == 1
    sem.release()


@pytest.mark.parametrize("make, instead", [
    (lambda c: c.Pipe(), "Queue"),
    (lambda c: c.Array("i", 3), "Value"),
    (lambda c: c.RawArray("i", 3), "Value"),
    (lambda c: c.Manager(), "Queue"),
    (lambda c: c.SharedMemory(create=True, size=10), "task arguments"),
    (lambda c: c.Condition(), "Event"),
    (lambda c: c.Barrier(2), "Event"),
])
def test_what_a_cluster_cannot_offer_says_what_to_use(ctx, make, instead):
    with pytest.raises(NotImplementedError, match="dask") as info:
        make(ctx)
    assert instead in str(info.value)

"""Queue, SimpleQueue and JoinableQueue: the stdlib's semantics, and what
gomp adds (no loss at exit, errors in the caller, recovery from killed
processes, batches, interruptible waits). The tests taking ``mp`` run on
gomp and on the stdlib's spawn context."""
from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import scripts

import gomp
import gomp.queues
import _queue_targets as targets


def drain(q, n, timeout=20):
    got = []
    while len(got) < n:
        got += q.get_many(n - len(got), timeout=timeout)
    return got


def start(target, *args, mp=gomp):
    p = mp.Process(target=target, args=args)
    p.start()
    return p


# -- one process


def test_fifo_and_types(mp):
    q = mp.Queue()
    items = [1, "two", (3, [4]), None, b"b" * 10, bytearray(b"ba"), b"B" * 200_000,
             bytearray(b"A" * 100_000), {"k": 1.5}]
    for x in items:
        q.put(x)
    got = [q.get(timeout=5) for _ in items]
    assert got == items
    assert [type(x) for x in got] == [type(x) for x in items]


@pytest.mark.gomp_extension
def test_memoryview_travels():
    # the stdlib cannot pickle a memoryview
    q = gomp.Queue()
    q.put(memoryview(b"abc"))
    mv = q.get(timeout=5)
    assert isinstance(mv, memoryview) and mv.tobytes() == b"abc"


def test_small_core_values_keep_their_types(mp):
    # these take the marshal path: nothing may change on the way
    import math
    q = mp.Queue()
    vals = [0, -1, 2 ** 200, -2 ** 70, 1.5, -0.0, float("inf"), "\u00e9\ud800x", "", b"",
            b"\x00" * 4000, True, False, None, (1, "a", None, True), [1, 2.5, "x"],
            {"a": 1, 2: "b", None: b"z"}, (), [], {}, 3 + 4j, (True, 1, 1.0)]
    for v in vals:
        q.put(v)
    got = [q.get(timeout=5) for _ in vals]
    for v, g in zip(vals, got):
        assert type(g) is type(v) and g == v
        if isinstance(v, (tuple, list)):
            assert [type(x) for x in g] == [type(x) for x in v]
    assert math.copysign(1, got[5]) == -1
    q.put(float("nan"))
    assert math.isnan(q.get(timeout=5))


def test_numpy_out_of_band(mp):
    np = pytest.importorskip("numpy")
    q = mp.Queue()
    a = np.arange(300_000, dtype=np.int64).reshape(1000, 300)
    q.put(a)
    b = q.get(timeout=5)
    assert b.dtype == a.dtype and b.shape == a.shape and (a == b).all()
    assert b.flags.writeable
    ro = np.arange(10.0)
    ro.flags.writeable = False
    q.put(ro)
    assert (q.get(timeout=5) == ro).all()


def test_empty_and_full_timeouts(mp):
    q = mp.Queue(maxsize=2)
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert 0.15 < time.monotonic() - t < 2
    q.put(1)
    q.put(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    t = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.2)
    assert 0.15 < time.monotonic() - t < 2
    assert q.get() == 1
    q.put(3, timeout=1)
    assert [q.get(), q.get()] == [2, 3]
    assert q.empty() and q.qsize() == 0 and not q.full()


@pytest.mark.gomp_extension
def test_empty_is_exact_once_put_returns():
    # the stdlib's feeder thread writes the item later: empty() may say True
    q = gomp.Queue(maxsize=2)
    q.put(1)
    assert not q.empty()
    q.put(2)
    assert q.full() and q.qsize() == 2 and not q.empty()


@pytest.mark.gomp_extension
def test_unpicklable_raises_in_caller_and_queue_stays_usable():
    q = gomp.Queue()

    class Bad:
        def __reduce__(self):
            raise TypeError("cannot pickle Bad")

    q.put(1)
    with pytest.raises(TypeError, match="cannot pickle Bad"):
        q.put(Bad())
    with pytest.raises(TypeError):
        q.put_many([2, Bad()])  # nothing of the batch is queued
    q.put(lambda x: x * 3)  # by value, as gomp's pickler does
    assert q.get(timeout=5) == 1
    assert q.get(timeout=5)(2) == 6
    assert q.qsize() == 0


@pytest.mark.gomp_extension
def test_put_many_get_many():
    q = gomp.Queue()
    q.put_many(range(1000))
    q.put_many([])
    assert q.qsize() == 1000
    assert q.get_many(10) == list(range(10))
    rest = q.get_many(timeout=1)
    assert rest == list(range(10, 1000))
    with pytest.raises(queue.Empty):
        q.get_many(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_many(block=False)
    # more than the ring holds: the rest waits in the backlog, in order
    small = gomp.queues.JoinableQueue(capacity=1 << 16)
    small.put_many(range(30_000))
    small.put("last")
    small.put_many([("t", i) for i in range(100)])
    assert small.qsize() == 30_101
    assert drain(small, 30_101) == [*range(30_000), "last", *[("t", i) for i in range(100)]]
    for _ in range(30_101):
        small.task_done()
    small.join()


def test_put_never_blocks_on_unbounded_queue():
    q = gomp.queues.Queue(capacity=1 << 16)
    t = time.monotonic()
    for i in range(20_000):
        q.put(i)
    for _ in range(8):
        q.put(b"m" * (1 << 20))
    assert time.monotonic() - t < 10
    assert q.qsize() == 20_008
    assert not q.empty()
    assert drain(q, 20_000) == list(range(20_000))
    for _ in range(8):
        assert q.get(timeout=10) == b"m" * (1 << 20)


@pytest.mark.gomp_extension
def test_backlog_copies_writable_buffers():
    # the stdlib's feeder pickles the item later: it may see it changed
    q = gomp.queues.Queue(capacity=1 << 16)
    data = bytearray(b"a" * (1 << 20))  # too big for the ring: backlog
    q.put(data)
    data[:] = b"b" * len(data)
    assert q.get(timeout=10) == bytearray(b"a" * (1 << 20))


def test_close_semantics(mp):
    q = mp.Queue()
    q.put(1)
    with pytest.raises(AssertionError):
        q.join_thread()
    q.close()
    with pytest.raises(ValueError, match="is closed"):
        q.put(2)
    with pytest.raises(ValueError, match="is closed"):
        q.get()
    q.join_thread()
    q.close()  # twice is fine


def test_joinable_task_done_and_join(mp):
    q = mp.JoinableQueue()
    q.join()  # nothing to wait for
    q.put(1)
    q.put(2)
    assert q.get() == 1
    q.task_done()
    assert q.get() == 2
    q.task_done()
    q.join()
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


@pytest.mark.gomp_extension
def test_joinable_counts_batches():
    q = gomp.JoinableQueue()
    q.join()  # nothing to wait for
    q.put(1)
    q.put_many([2, 3])
    assert q.get() == 1
    q.task_done()
    assert q.get_many() == [2, 3]
    q.task_done()
    q.task_done()
    q.join()
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


def test_simple_queue(mp):
    q = mp.SimpleQueue()
    assert q.empty()
    q.put("a")
    assert not q.empty()
    assert q.get() == "a"
    q.close()


def test_pickling_outside_process_start_is_refused(mp):
    q = mp.Queue()
    with pytest.raises(RuntimeError, match="through inheritance"):
        pickle.dumps(q)


def test_context_and_generic_alias():
    ctx = gomp.get_context("spawn")
    assert isinstance(ctx.Queue(3), gomp.queues.Queue)
    assert gomp.queues.Queue[int] is not None


# -- between processes


@pytest.mark.timeout(60)
def test_many_producers_and_consumers():
    q = gomp.Queue()
    out = gomp.Queue()
    n = 5000
    procs = [start(targets.produce, q, t, n) for t in range(3)]
    procs.append(start(targets.produce_many, q, 3, n))
    procs += [start(targets.consume, q, out, n) for _ in range(4)]
    results = [out.get(timeout=50) for _ in range(4)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    items = [x for r in results for x in r]
    assert len(items) == 4 * n and len(set(items)) == 4 * n
    for r in results:  # each producer's items in order in every consumer
        last: dict = {}
        for tag, i in r:
            assert i > last.get(tag, -1)
            last[tag] = i


@pytest.mark.timeout(90)
def test_mixed_sizes_through_a_small_ring():
    q = gomp.queues.Queue(capacity=1 << 16)
    out = gomp.Queue()
    n = 300
    procs = [start(targets.produce_mixed, q, t, n) for t in range(3)]
    procs += [start(targets.consume_mixed, q, out, 300, batch) for batch in (0, 1, 0)]
    results = [out.get(timeout=80) for _ in range(3)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    items = [x for r in results for x in r]
    assert len(items) == 900 and len(set(items)) == 900
    for t, i, size in items:
        assert size == (0, 100, 5000, 40000, 200000)[i % 5]
    for r in results:
        last: dict = {}
        for t, i, _ in r:
            assert i > last.get(t, -1)
            last[t] = i


@pytest.mark.timeout(60)
def test_process_that_exits_delivers_everything():
    q = gomp.queues.Queue(capacity=1 << 16)
    p = start(targets.put_and_exit, q, 30_000, 5 << 20)
    p.join(1)  # exits only once its backlog is written... into a ring
    # that nobody reads yet: so it waits for us
    assert p.exitcode is None
    assert drain(q, 30_000) == list(range(30_000))
    assert q.get(timeout=10) == b"x" * (5 << 20)
    assert q.get(timeout=10) == "end"
    p.join(10)
    assert p.exitcode == 0


@pytest.mark.timeout(60)
def test_cancel_join_thread_lets_a_process_exit():
    q = gomp.queues.Queue(capacity=1 << 16)
    p = start(targets.put_cancel_and_exit, q, 1 << 20)
    p.join(20)
    assert p.exitcode == 0


@pytest.mark.timeout(60)
def test_item_of_100_mb(mp):
    q = mp.Queue()
    n = 100 << 20
    p = start(targets.put_big, q, n, mp=mp)
    data = q.get(timeout=50)
    assert len(data) == n and data[:1] == b"z" and data[-1:] == b"z"
    assert data.count(b"z") == n
    p.join(10)
    assert p.exitcode == 0


@pytest.mark.timeout(60)
def test_echo_through_children_and_simple_queue():
    a, b = gomp.Queue(), gomp.Queue()
    p = start(targets.echo, a, b)
    a.put_many(range(100))
    assert [b.get(timeout=10) for _ in range(100)] == list(range(100))
    a.put(None)
    p.join(10)
    assert p.exitcode == 0
    s1, s2 = gomp.SimpleQueue(), gomp.SimpleQueue()
    p = start(targets.simple_roundtrip, s1, s2)
    s1.put(41)
    assert s2.get() == 42
    p.join(10)


@pytest.mark.timeout(60)
def test_joinable_queue_workers(mp):
    q = mp.JoinableQueue()
    results = mp.Queue()
    workers = [start(targets.worker_tasks, q, results, mp=mp) for _ in range(2)]
    for i in range(200):
        q.put(i)
    q.join()
    assert sorted(results.get(timeout=5) for _ in range(200)) == [i * 2 for i in range(200)]
    for _ in workers:
        q.put(None)
    q.join()
    for w in workers:
        w.join(10)
        assert w.exitcode == 0


@pytest.mark.timeout(60)
def test_bounded_queue_between_processes(mp):
    q = mp.Queue(maxsize=3)
    p = start(targets.produce, q, "t", 500, mp=mp)
    got = []
    while len(got) < 500:
        assert q.qsize() <= 3
        got.append(q.get(timeout=20))
        if len(got) % 100 == 0:
            time.sleep(0.05)  # let the producer fill it up and block
    assert got == [("t", i) for i in range(500)]
    p.join(10)
    assert p.exitcode == 0


@pytest.mark.timeout(60)
def test_get_wakes_when_another_process_puts(mp):
    q = mp.Queue()
    p = start(targets.sleep_then_put, q, 0.3, "late", mp=mp)
    assert q.get(timeout=20) == "late"
    p.join(10)


@pytest.mark.timeout(60)
def test_short_timeouts_never_lose_a_streaming_message():
    q = gomp.queues.Queue(capacity=1 << 16)
    p = start(targets.put_big, q, 20 << 20)
    while True:
        try:
            data = q.get(timeout=0.001)
            break
        except queue.Empty:
            pass
    assert len(data) == 20 << 20 and data.count(b"z") == len(data)
    p.join(10)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["queues.py", "joinable_queue.py"])
def test_examples_run(name):
    out = scripts.run([sys.executable, scripts.example(name)], timeout=50)
    assert out.returncode == 0, out.stderr
    if name == "queues.py":
        assert out.stdout == "[42, None, 'hello']\n"
    else:
        assert "workers exited with [0, 0, 0, 0]" in out.stdout


# -- processes that die (the stdlib's queue may be left locked or corrupt)


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_consumer_killed_while_holding_the_lock():
    q = gomp.Queue()
    ready = gomp.Queue()
    p = start(targets.hold_get, q, ready)
    ready.get(timeout=20)
    time.sleep(0.2)  # it now sleeps in get() holding the consumer lock
    p.kill()
    p.join(10)
    q.put("after")
    assert q.get(timeout=5) == "after"


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_consumer_killed_mid_message():
    q = gomp.queues.Queue(capacity=1 << 16)
    ready = gomp.Queue()
    consumer = start(targets.get_one, q, ready)
    ready.get(timeout=20)
    producer = start(targets.put_big, q, 400 << 20)
    deadline = time.monotonic() + 20
    # wait until the consumer holds the lock and has taken frames, then
    # freeze the producer so that the message cannot complete
    while time.monotonic() < deadline:
        head, tail, puts, gets, plock, clock = q._ring.debug_state()
        if clock and head > 0:
            break
        time.sleep(0.001)
    os.kill(producer.pid, signal.SIGSTOP)
    head, tail, puts, gets, plock, clock = q._ring.debug_state()
    assert clock and head > 0 and gets == 0  # half-way through the message
    consumer.kill()
    consumer.join(10)
    producer.kill()
    producer.join(10)
    q.put("after")
    assert q.get(timeout=30) == "after"  # the rest of the message skipped
    assert q.qsize() == 0


@pytest.mark.gomp_extension
@pytest.mark.timeout(90)
def test_random_kills_leave_a_working_queue():
    import random
    rnd = random.Random(5)
    q = gomp.queues.Queue(capacity=1 << 16)
    procs = []
    for r in range(6):
        procs.append(start(targets.produce_forever, q, r))
        procs.append(start(targets.consume_forever, q))
        time.sleep(0.15)
        victim = rnd.choice([p for p in procs if p.is_alive()])
        victim.kill()
        victim.join(10)
    for p in procs:
        p.kill()
        p.join(10)
    with pytest.raises(queue.Empty):
        while True:
            q.get(timeout=1)
    assert q.qsize() == 0
    q.put("alive")
    assert q.get(timeout=5) == "alive"


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_lock_of_a_dead_process_is_taken_over():
    q = gomp.Queue()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    q._ring.debug_set_lock("p", dead.pid)
    q._ring.debug_set_lock("c", dead.pid | 0x80000000)
    q.put("through")  # the feeder takes the producer lock over
    assert q.get(timeout=5) == "through"
    q.put_many([1, 2])
    assert q.get_many(timeout=5) == [1, 2]


@pytest.fixture
def other_process():
    """A live process that holds no lock: its pid stands for a dead holder's
    pid given to a new process."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p.pid, scripts.start_time(p.pid)
    p.kill()
    p.wait()


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_lock_of_a_dead_process_whose_pid_was_reused_is_taken_over(other_process):
    pid, start = other_process
    q = gomp.Queue()
    q.put("first")
    # the holder recorded as that pid with that start time is alive: wait
    q._ring.debug_set_lock("c", pid, pid, start)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.5)
    # the same pid, started at another time: the holder died, its pid lives on
    q._ring.debug_set_lock("c", pid | 0x80000000, pid, start + 1)
    assert q.get(timeout=10) == "first"
    q._ring.debug_set_lock("p", pid, pid, start - 1)
    q.put("second")  # the feeder takes the producer lock over
    assert q.get(timeout=10) == "second"
    # a dead holder whose pid is now this very process's
    me = os.getpid()
    q._ring.debug_set_lock("c", me, me, scripts.start_time(me) + 1)
    q.put("third")
    assert q.get(timeout=10) == "third"


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_consumer_gives_up_a_message_its_writer_abandoned():
    # a put that times out half-way leaves part of a message in the ring and
    # lets the producer lock go: a reader must not wait for the rest
    q = gomp.queues.Queue(capacity=1 << 16)
    big = pickle.dumps(b"x" * (4 << 20))
    assert q._ring.put(0, (big,), True, 0.2) is False
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=1)
    assert time.monotonic() - t < 10
    q.put("after")
    assert q.get(timeout=10) == "after"


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_consumer_gives_up_a_message_whose_writer_pid_was_reused():
    q, out = gomp.queues.Queue(capacity=1 << 16), gomp.Queue()
    consumer = start(targets.get_into, q, out)
    producer = start(targets.put_big, q, 400 << 20)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the consumer is in the message
        head, tail, puts, gets, plock, clock = q._ring.debug_state()
        if clock and head > 0:
            break
        time.sleep(0.001)
    # stop the producer half-way and make its lock look like the lock of a
    # dead process whose pid was given to this stopped one
    os.kill(producer.pid, signal.SIGSTOP)
    try:
        head, tail, puts, gets, plock, clock = q._ring.debug_state()
        assert plock & 0x7FFFFFFF == producer.pid and gets == 0
        q._ring.debug_set_lock("p", plock, producer.pid, scripts.start_time(producer.pid) + 1)
        q.put("after")  # takes the producer lock over
        assert out.get(timeout=30) == "after"  # the cut message given up
    finally:
        producer.kill()
        producer.join(10)
        consumer.kill()
        consumer.join(10)


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_producer_killed_mid_message():
    q = gomp.queues.Queue(capacity=1 << 16)
    p = start(targets.put_big, q, 50 << 20)
    deadline = time.monotonic() + 20
    while q._ring.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # it streams, blocked on a full ring, holding the lock
    p.kill()
    p.join(10)
    q.put("after")
    assert q.get(timeout=10) == "after"  # the partial message is dropped
    q.put(b"q" * (1 << 20))
    assert q.get(timeout=10) == b"q" * (1 << 20)


# -- Ctrl-C


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call", ["q.get()", "q.get(timeout=60)", "jq.join()",
                                  "bq.put(2)", "q.get_many()"])
def test_ctrl_c_interrupts_blocked_calls(call):
    script = textwrap.dedent(f"""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp
        q = gomp.Queue(); jq = gomp.JoinableQueue(); jq.put(1)
        bq = gomp.Queue(1); bq.put(1)
        print("ready", flush=True)
        t = time.monotonic()
        try:
            {call}
        except KeyboardInterrupt:
            print("interrupted %.3f" % (time.monotonic() - t), flush=True)
            sys.exit(0)
        print("returned", flush=True)
    """)
    proc = scripts.start([sys.executable, "-c", script], stderr=None)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.readline()
        assert out.startswith("interrupted"), out
        assert time.monotonic() - t < 2
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()

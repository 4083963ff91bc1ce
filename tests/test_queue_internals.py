"""The stdlib queues' internals that code built on them uses, over gomp's
ring: _reader/_writer as connections (concurrent.futures waits on
_reader), the _on_queue_feeder_error hook, _terminate_broken, subclasses
with a feeder of their own (loky's), and close() as the stdlib's."""
from __future__ import annotations

import collections
import multiprocessing.connection as stdlib_connection
import pickle
import sys
import threading
import time

import pytest

import gomp
from gomp import queues
from gomp.connection import wait
import _queue_targets as t


@pytest.mark.parametrize("waiter", [wait, stdlib_connection.wait], ids=["gomp", "stdlib"])
@pytest.mark.timeout(60)
def test_reader_is_waitable_with_a_child_writing(waiter):
    q = gomp.SimpleQueue()
    r = q._reader
    assert waiter([r], 0.05) == []
    p = gomp.Process(target=t.put_items, args=(q, [1, "two", 3.0]))
    p.start()
    got = []
    while len(got) < 3:
        assert waiter([r, p.sentinel], 30), "the reader never became ready"
        if r.poll():
            got.append(r.recv())
    p.join(30)
    assert got == [1, "two", 3.0]
    # taking the last message leaves the descriptor quiet at once
    assert waiter([r], 0.05) == []
    r.close()
    assert r.closed
    with pytest.raises(OSError):
        r.fileno()


def test_reader_poll_and_recv_bytes():
    q = gomp.Queue()
    assert q._reader.poll(0.05) is False
    threading.Timer(0.1, q.put, ({"k": 1},)).start()
    assert q._reader.poll(10) is True
    assert pickle.loads(q._reader.recv_bytes()) == {"k": 1}


def test_writer_sends_objects_and_pickles():
    q = gomp.Queue()
    q._writer.send([1, 2])
    q._writer.send_bytes(pickle.dumps("pickled"))
    assert q.get(timeout=5) == [1, 2]
    assert q.get(timeout=5) == "pickled"
    assert q.qsize() == 0


def test_bounded_queue_slots_as_a_semaphore():
    q = gomp.Queue(2)
    assert q._sem.acquire(False) and q._sem.acquire(False)
    assert not q._sem.acquire(False) and not q._sem.acquire(True, 0.05)
    q._sem.release()
    q._sem.release()
    q.put(1)
    q.put(2)
    assert q.full()


class _Reporting(gomp.queues.Queue):
    def __init__(self):
        super().__init__()
        self.errors = []

    def _on_queue_feeder_error(self, e, obj):
        self.errors.append((type(e), obj))


def test_feeder_error_hook_of_a_subclass_gets_the_unpicklable():
    q = _Reporting()
    lock = threading.Lock()
    q.put(lock)  # does not raise: the subclass handles it, as concurrent.futures does
    q.put("after")
    assert q.get(timeout=5) == "after"
    assert len(q.errors) == 1 and q.errors[0][1] is lock
    # gomp's own queues raise in the caller
    own = gomp.Queue()
    with pytest.raises(TypeError):
        own.put(threading.Lock())


@pytest.mark.timeout(30)
def test_terminate_broken_does_not_wait_for_a_dead_reader():
    q = gomp.queues.Queue(capacity=65536)
    for _ in range(20):
        q.put(b"x" * 50000)  # more than the ring holds: the rest waits here
    started = time.monotonic()
    q._terminate_broken()
    assert time.monotonic() - started < 5
    assert q._reader.closed


class _OwnFeeder(gomp.queues.Queue):
    """The shape of loky's queue: the stdlib's fields pickled, a feeder
    thread of its own that writes pickles to _writer."""

    def __getstate__(self):
        gomp.context.assert_spawning(self)
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer,
                self._rlock, self._wlock, self._sem, self._opid)

    def __setstate__(self, state):
        (self._ignore_epipe, self._maxsize, self._reader, self._writer,
         self._rlock, self._wlock, self._sem, self._opid) = state
        self._reset()

    def _start_thread(self):
        self._buffer.clear()
        self._thread = threading.Thread(
            target=_OwnFeeder._feed,
            args=(self._buffer, self._notempty, self._send_bytes, self._wlock),
            daemon=True)
        self._thread.start()
        self._close = gomp.util.Finalize(self, _OwnFeeder._finalize_close,
                                         [self._buffer, self._notempty], exitpriority=10)
        self._jointhread = gomp.util.Finalize(self._thread, _OwnFeeder._finalize_join,
                                              [__import__("weakref").ref(self._thread)],
                                              exitpriority=-5)

    @staticmethod
    def _feed(buffer, notempty, send_bytes, writelock):
        while True:
            with notempty:
                if not buffer:
                    notempty.wait()
            while buffer:
                obj = buffer.popleft()
                if obj is queues._sentinel:
                    return
                with writelock:
                    send_bytes(pickle.dumps(obj))


@pytest.mark.timeout(60)
def test_subclass_with_its_own_feeder_across_processes():
    q = _OwnFeeder()
    assert q._classic and isinstance(q._buffer, collections.deque)
    p = gomp.Process(target=t.put_items, args=(q, list(range(5))))
    p.start()
    assert [q.get(timeout=30) for _ in range(5)] == list(range(5))
    p.join(30)
    assert p.exitcode == 0
    q.put("mine")
    assert q.get(timeout=5) == "mine"
    q.close()
    q.join_thread()


def test_simple_queue_close_closes_its_ends():
    q = gomp.SimpleQueue()
    q.close()
    assert q._reader.closed and q._writer.closed


def test_closed_queue_as_the_running_python():
    for q in (gomp.Queue(), gomp.JoinableQueue()):
        q.close()
        assert q.empty()  # never used: close() changes nothing yet
        with pytest.raises(ValueError, match="is closed"):
            q.put(1)
        with pytest.raises(ValueError, match="is closed"):
            q.get()
    q = gomp.Queue()
    q.put("used")
    q.close()
    q.join_thread()
    if sys.version_info >= (3, 13):
        with pytest.raises(OSError, match="is closed"):
            q.empty()
    else:
        assert not q.empty()

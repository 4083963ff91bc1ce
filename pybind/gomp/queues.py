"""Queues between processes: ``Queue``, ``SimpleQueue``, ``JoinableQueue``.

The stdlib's queues are a pipe, a lock and a semaphore, fed by a thread.
gomp's are a ring in shared memory made by the Go core (gomp/ring.go, which
documents its layout and commit protocol): ``put`` pickles the object in the
caller and, when the ring has room, copies it in at once; ``get`` copies it
out and unpickles it. Sleeping and waking are futex waits done by Go.

Semantics are the stdlib's, plus:

* ``put`` raises in the caller when the object cannot be pickled (the stdlib
  loses the item in its feeder thread) and the queue stays usable;
* ``put`` never blocks on an unbounded queue: what the ring has no room for
  waits in this process's backlog, which a feeder thread writes out, and a
  process that exits first delivers it (unless ``cancel_join_thread``);
* ``put_many`` and ``get_many`` move batches with one lock round;
* small messages made only of core types (numbers, str, bytes, None, and one
  level of tuple/list/dict of those) are encoded with marshal, several
  times cheaper than pickle, and decoded straight from shared memory;
* large ``bytes``, ``bytearray``, ``memoryview`` and pickle protocol 5
  buffers (numpy arrays) are copied once into the ring and once out, never
  pickled in-band;
* a process killed while holding a queue's lock, or half-way through
  writing or reading a message, does not wedge or corrupt the queue: its
  lock is taken over and its partial message dropped.
"""
from __future__ import annotations

import collections
import os
import pickle
import sys
import threading
import weakref
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, List, Optional

from . import _core
from . import _queue_ends
from . import context
# message kinds and limits, shared with the C side (gomp/ring.go): top-level
# bytes / bytearray at least _RAW_MIN long travel raw, unpickled
from ._layout import MSG_MAX_PARTS, MSG_RAW_MIN as _RAW_MIN
from ._layout import MSG_PICKLE as _PICKLED, MSG_RAW_BYTES as _RAW_BYTES
from ._layout import MSG_RAW_BYTEARRAY as _RAW_BYTEARRAY, MSG_RAW_MEMORYVIEW as _RAW_MEMORYVIEW
from . import util
from .reduction import ForkingPickler as _ForkingPickler  # noqa: F401  (the stdlib's names)
from .reduction import transport_dumps
from .util import Finalize, debug, info, is_exiting, register_after_fork  # noqa: F401
from queue import Empty, Full  # the stdlib's, as multiprocessing raises them

__all__ = ["Queue", "SimpleQueue", "JoinableQueue"]

# bytes of shared ring per queue (pages are only used once touched)
DEFAULT_CAPACITY = 4 << 20
# a pickle with more out-of-band buffers is made in-band
_MAX_BUFFERS = MSG_MAX_PARTS - 1

# what the stdlib's feeder thread stops on (code that overrides the feeder
# compares with it)
_sentinel = object()

# how long a process that exits waits at most for a ring watch (the
# descriptor concurrent.futures polls) to have signalled its last message:
# the watch's goroutine takes microseconds, unless the machine is loaded
_EXIT_SETTLE = 0.5

_ready = False
_c_encode: Any = None


def _go() -> Any:
    global _ready, _c_encode
    g = _core.go()
    if not _ready:
        g.queues_setup(pickle.loads, Empty, Full, pickle.dumps)
        _c_encode = g.queues_encode
        _ready = True
    return g


def _encode(obj: Any) -> "tuple[int, tuple]":
    """obj -> (kind, parts): the pickle and its out-of-band buffers, or the
    object itself for large bytes-likes. Raises if obj cannot be pickled."""
    t = type(obj)
    if t is memoryview:
        if not obj.c_contiguous:
            obj = memoryview(obj.tobytes())
        return _RAW_MEMORYVIEW, (b"", obj.cast("B") if obj.ndim != 1 or obj.format != "B"
                                 else obj)
    if (t is bytes or t is bytearray) and len(obj) >= _RAW_MIN:
        return (_RAW_BYTES if t is bytes else _RAW_BYTEARRAY), (b"", obj)
    buffers: list = []
    data = transport_dumps(obj, 5, buffer_callback=buffers.append)
    if not buffers:
        return _PICKLED, (data,)
    if len(buffers) > _MAX_BUFFERS:
        return _PICKLED, (transport_dumps(obj, 5),)
    try:
        return _PICKLED, (data, *[b.raw() for b in buffers])
    except BufferError:  # not contiguous: in-band after all
        return _PICKLED, (transport_dumps(obj, 5),)


def _detach(parts: tuple) -> tuple:
    """Copy the writable parts of a message that waits in the backlog, so
    that changing the object after put() does not change what is sent."""
    out = []
    for p in parts:
        if type(p) is bytearray or (type(p) is memoryview and not p.readonly):
            p = bytearray(p)
        out.append(p)
    return tuple(out)


class _Feed:
    """This process's backlog of a queue and the thread that writes it."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.backlog: "collections.deque" = collections.deque()
        self.closing = False
        self.thread: Optional[threading.Thread] = None


def _feeder(ring: Any, feed: _Feed, count: bool) -> None:
    # count: add to qsize when written (unbounded queues; a bounded queue's
    # slot was taken by put)
    cond, backlog = feed.cond, feed.backlog
    while True:
        with cond:
            while not backlog:
                if feed.closing:
                    return
                cond.wait()
            batch = list(backlog)
            backlog.clear()
        try:
            i = 0
            while i < len(batch):
                i += ring.try_put_many(batch[i:] if i else batch, count)
                if i < len(batch):
                    kind, parts = batch[i]
                    ring.put(kind, parts, count, None)
                    i += 1
        except Exception:
            if util.is_exiting():
                util.info("error in queue feeder thread at exit")
            else:
                import traceback
                traceback.print_exc()
        finally:
            with cond:
                ring.add_pending(-len(batch))
                cond.notify_all()


def _finalize_close(feed: _Feed) -> None:
    with feed.cond:
        feed.closing = True
        feed.cond.notify_all()


def _finalize_join(twr: Any) -> None:
    thread = twr()
    if thread is not None:
        util.debug("joining queue thread")
        thread.join()


# Attributes of the stdlib's queues that code built on them reaches into,
# made on first use (see __getattr__ and gomp._queue_ends).
_STDLIB_ENDS = {
    "_reader": _queue_ends.RingReader,
    "_writer": _queue_ends.RingWriter,
    "_sem": _queue_ends.SlotSemaphore,
}
_STDLIB_LOCKS = ("_rlock", "_wlock")

# A subclass that overrides these runs the stdlib's put protocol (loky's
# queue does): put() appends to _buffer and the subclass's feeder thread
# writes pickles to _writer, which lands them in the ring.
_FEEDER_HOOKS = ("_start_thread", "_feed")


class Queue:
    """Returns a process shared queue implemented using a shared-memory ring
    and a futex (see the module's docstring)."""

    _tasks = False
    _classic = False  # see _FEEDER_HOOKS
    _ignore_epipe = False
    _closed = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._classic = any(name in vars(k) for k in cls.__mro__
                           if k.__module__ != __name__ and k is not object
                           for name in _FEEDER_HOOKS)

    def __init__(self, maxsize: int = 0, *, ctx: Any = None,
                 capacity: Optional[int] = None) -> None:
        if maxsize <= 0:
            maxsize = 0
        self._maxsize = maxsize
        self._opid = os.getpid()
        self._ring = _go().ring_new(int(capacity or DEFAULT_CAPACITY), maxsize)
        self._reset()

    def __getattr__(self, name: str) -> Any:
        # only for what is not set: the stdlib's internals, made on first use
        d = self.__dict__
        if name in ("_ring", "_shared") and "_reader" in d:
            # unpickled by a subclass that restores the stdlib's fields only
            shared = d["_shared"] = d["_reader"]._shared
            d["_ring"] = shared.ring
            return d[name]
        if name == "_shared" and "_ring" in d:
            shared = d["_shared"] = _queue_ends.SharedRing(d["_ring"])
            return shared
        if name in _STDLIB_ENDS and "_ring" in d:
            end = d[name] = _STDLIB_ENDS[name](self._shared)
            return end
        if name in _STDLIB_LOCKS:
            from .synchronize import Lock
            lock = d[name] = Lock()
            return lock
        if name == "_opid":
            return os.getpid()
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    def _reset(self) -> None:
        self._closed = False
        self._joincancelled = False
        self._jointhread: Any = None
        self._close_fin: Any = None
        self._feed = _Feed()
        ring = self._ring
        ring.bind(self, Queue._slow_put, Queue._backlog_pickled, self._tasks)
        # at exit, once the backlog is written out (its Finalize's priority
        # is -5): see _EXIT_SETTLE
        util.Finalize(self, ring.exit_settle, (_EXIT_SETTLE,), exitpriority=-10)
        cls = type(self)
        if cls._classic:
            self._buffer: collections.deque = collections.deque()
            self._notempty = threading.Condition(threading.Lock())
            self._thread: Optional[threading.Thread] = None
            self._close: Any = None
            self._send_bytes = self._writer.send_bytes
            self._recv_bytes = self._reader.recv_bytes
            self._poll = self._reader.poll
            return
        # the common calls go straight to C (saves a Python frame each)
        if cls.put is Queue.put:
            self.put = ring.put_obj
        if cls.get is Queue.get:
            self.get = ring.get

    def __getstate__(self) -> Any:
        context.assert_spawning(self)
        return (self._maxsize, self._shared)

    def __setstate__(self, state: Any) -> None:
        self._maxsize, self._shared = state
        self._ring = self._shared.ring
        self._reset()

    def __repr__(self) -> str:
        return "<%s object at %#x>" % (type(self).__name__, id(self))

    # -- putting

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put obj into the queue. If the queue is bounded and full, block
        (for at most timeout seconds) and then raise queue.Full."""
        if self._classic:
            self._classic_put(obj, block, timeout)
        else:
            self._ring.put_obj(obj, block, timeout)

    def _classic_put(self, obj: Any, block: bool, timeout: Optional[float]) -> None:
        # the stdlib's protocol, for a subclass with its own feeder thread
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if self._maxsize and not self._sem.acquire(block, timeout):
            raise Full
        if self._tasks:
            self._ring.task_add()
        with self._notempty:
            if self._thread is None:
                self._start_thread()
            self._buffer.append(obj)
            self._notempty.notify()

    def _slow_put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        # what the C fast path leaves: bounded queues, a non-empty backlog,
        # raw bytes-likes, out-of-band buffers, pickling errors
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        try:
            kind, parts = _encode(obj)
        except Exception as e:
            if type(self)._on_queue_feeder_error is Queue._on_queue_feeder_error:
                raise  # gomp's own queues: the caller hears of it
            # a subclass that handles the stdlib feeder's errors gets them
            # (concurrent.futures fails the work item's future)
            self._on_queue_feeder_error(e, obj)
            return
        self._put_encoded(kind, parts, block, timeout)

    def _put_encoded(self, kind: int, parts: tuple, block: bool = True,
                     timeout: Optional[float] = None) -> None:
        """put() of a message already encoded as _encode() does, for gomp's
        callers that hold its bytes (the pool's task messages)."""
        ring = self._ring
        if self._maxsize:
            ring.reserve(block, timeout)
            if self._tasks:
                ring.task_add()
            if self._pending() or not ring.try_put(kind, parts, False):
                self._enqueue(((kind, parts),))
            return
        if self._tasks:
            ring.task_add()
        if self._pending() or not ring.try_put(kind, parts, True):
            self._enqueue(((kind, parts),))

    def _backlog_pickled(self, data: bytes, kind: int) -> None:
        self._enqueue(((kind, (data,)),))

    def _pending(self) -> int:
        return self._ring.add_pending(0)

    def put_nowait(self, obj: Any) -> None:
        """Equivalent to put(obj, False)."""
        return self.put(obj, False)

    def put_many(self, objs: Iterable[Any], block: bool = True,
                 timeout: Optional[float] = None) -> None:
        """Put every item of objs on the queue, in order, in one lock round
        rather than one per item (one per item on a bounded queue, which
        reserves a slot for each). All are pickled first, so an object
        that cannot be pickled raises before any is queued. block and
        timeout are put()'s; on a bounded queue this may raise queue.Full
        after some were put."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        objs = objs if type(objs) is list else list(objs)
        ring = self._ring
        done = ring.put_many_fast(objs)
        if done >= 0:  # all small core-type objects: the rest, if any, waits
            if done < len(objs):
                rest = objs[done:] if done else objs
                enc = _c_encode
                if self._tasks:
                    for _ in rest:
                        ring.task_add()
                self._enqueue([enc(o) for o in rest])
            return
        enc = _c_encode
        items = [enc(o) or _encode(o) for o in objs]
        if not items:
            return
        if self._maxsize:
            for k, p in items:
                ring.reserve(block, timeout)
                if self._tasks:
                    ring.task_add()
                if self._pending() or not ring.try_put(k, p, False):
                    self._enqueue(((k, p),))
            return
        if self._tasks:
            for _ in items:
                ring.task_add()
        done = 0 if self._pending() else ring.try_put_many(items, True)
        if done < len(items):
            self._enqueue(items[done:])

    def _enqueue(self, items: Iterable[tuple]) -> None:
        feed = self._feed
        with feed.cond:
            n = 0
            for kind, parts in items:
                feed.backlog.append((kind, _detach(parts)))
                n += 1
            self._ring.add_pending(n)
            if feed.thread is None:
                self._start_feeder()
            feed.cond.notify()

    def _start_feeder(self) -> None:
        feed = self._feed
        t = threading.Thread(target=_feeder, args=(self._ring, feed, not self._maxsize),
                             name="QueueFeederThread", daemon=True)
        feed.thread = t
        t.start()
        if not self._joincancelled:
            self._jointhread = util.Finalize(t, _finalize_join, [weakref.ref(t)],
                                             exitpriority=-5)
        self._close_fin = util.Finalize(self, _finalize_close, [feed], exitpriority=10)

    # -- getting

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return an item from the queue. If the queue is empty,
        block (for at most timeout seconds) and then raise queue.Empty."""
        return self._ring.get(block, timeout)

    def get_nowait(self) -> Any:
        """Equivalent to get(False)."""
        return self.get(False)

    def get_many(self, max_items: Optional[int] = None, block: bool = True,
                 timeout: Optional[float] = None) -> List[Any]:
        """Remove and return a list of up to max_items items (all that are
        there if None), in order, with one lock round. If the queue is
        empty, wait for the first item as get() does (for at most timeout
        seconds; not at all if block is false) and raise queue.Empty if none
        comes."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        return self._ring.get_many(max_items if max_items is not None else 0, block, timeout)

    # -- state

    def qsize(self) -> int:
        """Return the approximate size of the queue (items in shared memory,
        and those this process has put that wait in its backlog)."""
        if self._maxsize:
            return self._ring.qsize()
        return self._ring.qsize() + self._pending()

    def empty(self) -> bool:
        """Return True if the queue is empty, False otherwise."""
        reader = self.__dict__.get("_reader")
        if reader is not None and reader.closed:
            raise OSError("handle is closed")
        return not self._pending() and self._ring.empty()

    def full(self) -> bool:
        """Return True if the queue is full, False otherwise."""
        return self._ring.full()

    def close(self) -> None:
        """Indicate that no more data will be put on this queue by the
        current process. The feeder thread flushes what is buffered."""
        self._closed = True
        self._ring.set_closed(f"Queue {self!r} is closed")
        # the stdlib's feeder closes the pipe's ends once the queue was
        # used (the reader too from 3.13 on, so that empty() raises)
        if self._ring.wrote and not self._classic:  # (a classic feeder closes its own)
            self._writer.close()
            if sys.version_info >= (3, 13):
                self._reader.close()
        if self._classic:
            close, self._close = self._close, None
            if close is not None:
                close()
        close = self._close_fin
        if close is not None:
            self._close_fin = None
            close()
        else:
            _finalize_close(self._feed)

    def join_thread(self) -> None:
        """Join the feeder thread; only after close()."""
        assert self._closed, "Queue {0!r} not closed".format(self)
        if self._jointhread is not None:
            self._jointhread()

    def _terminate_broken(self) -> None:
        """Close a queue whose readers died: what waits in this process's
        backlog is dropped, and close() does not wait for it."""
        self._reader.close()
        feed = self._feed
        with feed.cond:
            dropped = len(feed.backlog)
            feed.backlog.clear()
            self._ring.add_pending(-dropped)
        self.cancel_join_thread()
        self.close()
        self.join_thread()

    # the stdlib's finalizers of its feeder thread, for subclasses that start
    # their own (loky's)
    @staticmethod
    def _finalize_close(buffer: Any, notempty: Any) -> None:
        with notempty:
            buffer.append(_sentinel)
            notempty.notify()

    @staticmethod
    def _finalize_join(twr: Any) -> None:
        _finalize_join(twr)

    def cancel_join_thread(self) -> None:
        """Do not wait at exit for buffered data to be written out."""
        self._joincancelled = True
        try:
            self._jointhread.cancel()
        except AttributeError:
            pass

    @staticmethod
    def _on_queue_feeder_error(e: Exception, obj: Any) -> None:
        """Called with the exception and the object when an object cannot
        be sent; gomp's own queues raise in put() instead. A subclass that
        overrides it (concurrent.futures) gets the error here, as from the
        stdlib's feeder thread, and put() does not raise."""
        import traceback
        traceback.print_exception(type(e), e, e.__traceback__)


class JoinableQueue(Queue):
    """A Queue with task_done() and join()."""

    _tasks = True

    def task_done(self) -> None:
        """Indicate that a formerly enqueued task is complete. Raises
        ValueError if called more times than there were items."""
        self._ring.task_done()

    def join(self) -> None:
        """Block until all items in the queue have been gotten and
        processed (task_done() called for each)."""
        self._ring.join_tasks(None)


class SimpleQueue(Queue):
    """A simplified Queue: put(), get(), empty(), close()."""

    def __init__(self, *, ctx: Any = None, capacity: Optional[int] = None) -> None:
        super().__init__(0, ctx=ctx, capacity=capacity)

    def __getstate__(self) -> Any:
        return Queue.__getstate__(self)

    def _reset(self) -> None:
        Queue._reset(self)
        cls = type(self)
        if cls.put is SimpleQueue.put:
            self.put = self._ring.put_obj
        if cls.get is SimpleQueue.get:
            self.get = self._ring.get

    def put(self, obj: Any) -> None:  # type: ignore[override]
        """Put an item into the queue."""
        self._ring.put_obj(obj)

    def get(self) -> Any:  # type: ignore[override]
        """Remove and return an item from the queue."""
        return self._ring.get(True, None)

    def close(self) -> None:
        """Close the queue: no more put() or get() here."""
        Queue.close(self)
        self._reader.close()
        self._writer.close()

    if sys.version_info >= (3, 9):
        import types as _types
        __class_getitem__ = classmethod(_types.GenericAlias)
        del _types


if sys.version_info >= (3, 9):
    import types as _types
    Queue.__class_getitem__ = classmethod(_types.GenericAlias)  # type: ignore[attr-defined]
    del _types

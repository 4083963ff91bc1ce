"""A queue's ring seen as the stdlib's queue internals: ``_reader``,
``_writer`` and ``_sem``.

The stdlib's queues are a pipe; code built on them reaches into it.
concurrent.futures waits on ``result_queue._reader`` with
``connection.wait`` and reads it with ``recv()``; loky and torch pickle and
replace ``_reader``/``_writer`` and write pickles with
``_writer.send_bytes``. These adapters give the same calls over gomp's ring:

* :class:`RingReader` takes messages (``recv``, ``recv_bytes``, ``poll``)
  and has a descriptor for ``select``/``wait``: an eventfd that the Go core
  keeps readable while the ring holds a message (gomp/ring_watch.go);
* :class:`RingWriter` puts objects, or pickles (``send_bytes``);
* :class:`SlotSemaphore` is a bounded queue's free slots as a semaphore.

Each pickles (to a process being started) as the ring itself.
"""
from __future__ import annotations

import os
import select
import threading
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

from . import context
from ._layout import MSG_PICKLE as _PICKLED  # a message kind (gomp/ring.go)

__all__ = ['SharedRing', 'RingReader', 'RingWriter', 'SlotSemaphore']


class SharedRing:
    """A queue's ring as this process knows it, held by the queue and its
    ends alike: pickled within one message (a process's start-up data) it
    travels once, as one descriptor, however many of them refer to it."""

    __slots__ = ("ring", "__weakref__")

    def __init__(self, ring: Any) -> None:
        self.ring = ring

    def __reduce__(self) -> Any:
        context.assert_spawning(self)
        popen = context.get_spawning_popen()
        return _map_ring, (popen.DupFd(popen.duplicate_for_child(self.ring.fileno())),)


def _map_ring(fd: Any) -> SharedRing:
    from . import queues
    return SharedRing(queues._go().ring_map(fd.detach()))


class _End:
    """What both ends share: the ring and the Connection flags."""

    readable = False
    writable = False

    def __init__(self, shared: SharedRing) -> None:
        self._shared = shared
        self._ring = shared.ring
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise OSError("handle is closed")

    def __reduce__(self) -> Any:
        return type(self), (self._shared,)


class RingReader(_End):
    """The read end of a queue, as a Connection."""

    readable = True

    def __init__(self, shared: SharedRing) -> None:
        super().__init__(shared)
        self._efd = -1
        self._watch: Any = None
        self._lock = threading.Lock()

    def fileno(self) -> int:
        """A descriptor that select/poll/wait report readable while the
        queue holds a message."""
        self._check()
        with self._lock:
            if self._efd < 0:
                from . import queues
                self._efd, self._watch = queues._go().ring_watch(self._ring)
            elif not self._ring.empty():
                # readable now, not once the watcher gets to it: wait()
                # asks for the descriptor on each call, and a message that
                # is already here must be reported together with a worker's
                # exit that followed it (concurrent.futures takes a lone
                # sentinel for a crash)
                os.write(self._efd, (1).to_bytes(8, "little"))
            return self._efd

    def _ready(self) -> bool:
        return not self._ring.empty()

    def _settle(self) -> None:
        # after taking the last message: the descriptor must not stay
        # readable on an empty ring (the watcher would clear it, a moment
        # later)
        efd = self._efd
        if efd < 0 or not self._ring.empty():
            return
        try:
            os.read(efd, 8)
        except (BlockingIOError, OSError):
            pass
        if not self._ring.empty():
            os.write(efd, (1).to_bytes(8, "little"))

    def recv(self) -> Any:
        """Remove and return the next object, waiting for one."""
        self._check()
        obj = self._ring.get(True, None)
        self._settle()
        return obj

    def recv_bytes(self, maxlength: Optional[int] = None) -> bytes:
        """The next object, pickled (what the stdlib's reader returns)."""
        from .reduction import ForkingPickler
        data = bytes(ForkingPickler.dumps(self.recv()))
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return data

    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        """Whether a message waits, waiting up to timeout seconds (None:
        for ever) for one."""
        self._check()
        if self._ready() or timeout is not None and timeout <= 0:
            return self._ready()
        from .connection import _wait_fd
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if _wait_fd(self.fileno(), select.POLLIN, left) and self._ready():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return self._ready()

    def close(self) -> None:
        """Stop using this end (the queue itself stays open)."""
        with self._lock:
            self._closed = True
            watch, self._watch = self._watch, None
            efd, self._efd = self._efd, -1
        if watch is not None:
            from . import queues
            queues._go().ring_unwatch(watch)
        if efd >= 0:
            os.close(efd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class RingWriter(_End):
    """The write end of a queue, as a Connection."""

    writable = True

    def _count(self) -> bool:
        # an unbounded queue counts what is written; a bounded one counted
        # its slot when it was taken
        return self._ring.maxsize == 0

    def send(self, obj: Any) -> None:
        """Put obj (pickled here)."""
        self._check()
        from . import queues
        kind, parts = queues._encode(obj)
        self._ring.put(kind, parts, self._count(), None)

    def send_bytes(self, buf: Any, offset: int = 0, size: Optional[int] = None) -> None:
        """Put a message that is a pickle (as the stdlib's writer sends)."""
        self._check()
        m = memoryview(buf).cast("B")
        end = len(m) if size is None else offset + size
        if offset < 0 or end > len(m) or end < offset:
            raise ValueError("buffer length < offset + size")
        self._ring.put(_PICKLED, (bytes(m[offset:end]),), self._count(), None)

    def close(self) -> None:
        self._closed = True

    def fileno(self) -> int:
        self._check()
        return self._ring.fileno()


class SlotSemaphore:
    """A bounded queue's free slots, as the stdlib's BoundedSemaphore."""

    def __init__(self, shared: SharedRing) -> None:
        self._shared = shared
        self._ring = shared.ring

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        from queue import Full
        try:
            self._ring.reserve(block, timeout)
        except Full:
            return False
        return True

    def release(self) -> None:
        if self._ring.maxsize:
            self._ring.unreserve(1)

    def get_value(self) -> int:
        if not self._ring.maxsize:
            return 0x7FFFFFFF
        return max(self._ring.maxsize - self._ring.qsize(), 0)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: Any) -> None:
        self.release()

    def __reduce__(self) -> Any:
        return SlotSemaphore, (self._shared,)

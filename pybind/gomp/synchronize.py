"""Locks, semaphores, conditions, events and barriers shared between
processes (the stdlib's ``multiprocessing.synchronize``).

Each object is a record in a shared arena (see :mod:`gomp.heap`). Lock,
RLock and Semaphore are the C type ``SemLock``: taking or releasing one
nobody contends for is one atomic operation, with no system call and no
call into Go; a waiter polls briefly, then sleeps on a futex in the Go
core in short slices, so that Ctrl-C interrupts it at once.

Beyond the stdlib: a lock word holds the pid of its owner (with the
owner's start time beside it, against pid reuse), and a semaphore counts
the units each process holds. A waiter that sleeps a slice (20 ms) checks
the owner; if it died, the lock is taken over (and a semaphore's units
given back) with a RuntimeWarning naming the dead pid, instead of every
other process deadlocking.
"""
from __future__ import annotations

import sys
import threading
import time
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

from . import context
from . import process
from . import _core
from . import _layout
from .heap import new_record

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier"]

_, _SemLock = _core.ext().sync_types()

# kinds of SemLock records
LOCK, RLOCK, SEMAPHORE = _layout.RECORD_LOCK, _layout.RECORD_RLOCK, _layout.RECORD_SEMAPHORE
RECURSIVE_MUTEX = RLOCK  # the stdlib's name of the kind
SEM_VALUE_MAX = 0x7FFFFFFF


def sem_unlink(name: str) -> None:
    """Unlink a named semaphore (gomp's have no name; the stdlib's may)."""
    import _multiprocessing
    _multiprocessing.sem_unlink(name)

_LOCK_RECORD, _SEM_RECORD = _layout.LOCK_RECORD_SIZE, _layout.SEM_RECORD_SIZE


def _rebuild_semlock(cls: type, rec: Any, kind: int) -> Any:
    obj = _SemLock.__new__(cls, rec.seg, rec.off, kind)
    obj._rec = rec
    return obj


class _RandomNames:
    """SemLock._rand: tempfile's name sequence, made when first read."""

    def __get__(self, obj: Any, owner: Any) -> Any:
        import tempfile
        seq = tempfile._RandomNameSequence()  # type: ignore[attr-defined]
        owner._rand = seq
        return seq


class SemLock(_SemLock):
    """Base of Lock, RLock, Semaphore and BoundedSemaphore: the C record
    with the stdlib's pickling rules (only to a process being started)."""

    def __new__(cls, kind: int, value: int, maxvalue: int, *, ctx: Any = None) -> "SemLock":
        if kind == SEMAPHORE and value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        rec = new_record(_SEM_RECORD if kind == SEMAPHORE else _LOCK_RECORD)
        bound = 0 if maxvalue >= SEM_VALUE_MAX else maxvalue
        obj = super().__new__(cls, rec.seg, rec.off, kind, value, bound, True)
        obj._rec = rec
        return obj

    def __reduce__(self) -> Any:
        context.assert_spawning(self)
        return _rebuild_semlock, (type(self), self._rec, self.kind)

    # The stdlib's SemLock wraps a C object in _semlock and code built on
    # it calls that (its Queue.full() is self._sem._semlock._is_zero()):
    # here the C object is the SemLock itself. It has no name.
    @property
    def _semlock(self) -> "SemLock":
        return self

    handle = None
    name = None
    SEM_VALUE_MAX = SEM_VALUE_MAX

    def _after_fork(self) -> None:
        pass

    # the stdlib names its semaphores with these (loky replaces _make_name);
    # made on first use, since tempfile costs milliseconds to import
    _rand = _RandomNames()

    @staticmethod
    def _make_name() -> str:
        return "%s-%s" % (process.current_process()._config.get("semprefix", "/mp"),
                          next(SemLock._rand))

    def _owner_name(self) -> str:
        name = process.current_process().name
        if threading.current_thread().name != "MainThread":
            name += "|" + threading.current_thread().name
        return name


class Semaphore(SemLock):
    """A semaphore shared between processes."""

    def __new__(cls, value: int = 1, *, ctx: Any = None) -> "Semaphore":
        return super().__new__(cls, SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self) -> int:
        """The number of units available."""
        return self._get_value()

    def __repr__(self) -> str:
        try:
            value = self._get_value()
        except Exception:
            value = "unknown"
        return "<%s(value=%s)>" % (type(self).__name__, value)


class BoundedSemaphore(Semaphore):
    """A semaphore whose release past its initial value raises ValueError."""

    def __new__(cls, value: int = 1, *, ctx: Any = None) -> "BoundedSemaphore":
        return SemLock.__new__(cls, SEMAPHORE, value, value, ctx=ctx)

    def __repr__(self) -> str:
        try:
            value = self._get_value()
        except Exception:
            value = "unknown"
        return "<%s(value=%s, maxvalue=%s)>" % (type(self).__name__, value, self.maxvalue)


class Lock(SemLock):
    """A non-recursive lock shared between processes. As the stdlib's, any
    process or thread may release it."""

    def __new__(cls, *, ctx: Any = None) -> "Lock":
        return super().__new__(cls, LOCK, 1, 1, ctx=ctx)

    def __repr__(self) -> str:
        try:
            if self._is_mine():
                name = self._owner_name()
            elif self._get_value() == 1:
                name = "None"
            else:
                name = "SomeOtherProcess"
        except Exception:
            name = "unknown"
        return "<%s(owner=%s)>" % (type(self).__name__, name)


class RLock(SemLock):
    """A recursive lock shared between processes: the thread that holds it
    may take it again, and only that thread may release it."""

    def __new__(cls, *, ctx: Any = None) -> "RLock":
        return super().__new__(cls, RLOCK, 1, 1, ctx=ctx)

    def __repr__(self) -> str:
        try:
            if self._is_mine():
                name, count = self._owner_name(), self._count()
            elif self._get_value() == 1:
                name, count = "None", 0
            elif self._count() > 0:
                name, count = "SomeOtherThread", "nonzero"
            else:
                name, count = "SomeOtherProcess", "nonzero"
        except Exception:
            name, count = "unknown", "unknown"
        return "<%s(%s, %s)>" % (type(self).__name__, name, count)


# Condition: three semaphores beside the lock, as the stdlib's (and with the
# same names, which tools read). A waiter counts itself in _sleeping_count,
# waits for a unit of _wait_semaphore and then, notified or not, posts one to
# _woken_count. notify(n), which holds the lock, hands out at most n units and
# waits for that many posts before it returns: no waiter can start (it needs
# the lock) and steal a unit meant for one that was already waiting. Posts of
# waiters that timed out since the last notify are subtracted first.


class Condition:
    """A condition variable shared between processes."""

    def __init__(self, lock: Any = None, *, ctx: Any = None) -> None:
        if lock is None:
            lock = (ctx or context._default_context).RLock()
        self._lock = lock
        self._sleeping_count = Semaphore(0)
        self._woken_count = Semaphore(0)
        self._wait_semaphore = Semaphore(0)
        self._make_methods()

    def __getstate__(self) -> Any:
        context.assert_spawning(self)
        return (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore)

    def __setstate__(self, state: Any) -> None:
        (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore) = state
        self._make_methods()

    def _make_methods(self) -> None:
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> None:
        return self._lock.__exit__(*args)

    def __repr__(self) -> str:
        try:
            waiters = self._sleeping_count.get_value() - self._woken_count.get_value()
        except Exception:
            waiters = "unknown"
        return "<%s(%s, %s)>" % (type(self).__name__, self._lock, waiters)

    def _owned(self) -> bool:
        is_mine = getattr(self._lock, "_is_mine", None)
        return is_mine() if is_mine is not None else True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Release the lock, wait until notified or until timeout seconds
        pass, take the lock again; False if it timed out."""
        assert self._owned(), "must acquire() condition before using wait()"
        self._sleeping_count.release()
        count = self._lock._count() if getattr(self._lock, "kind", None) == RLOCK else 1
        for _ in range(count):
            self._lock.release()
        try:
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            self._woken_count.release()
            for _ in range(count):
                self._lock.acquire()

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Wait until predicate() is true or timeout seconds pass; return
        the last value of predicate()."""
        result = predicate()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up at most n processes or threads waiting on the condition."""
        assert self._owned(), "lock is not owned"
        # waiters that timed out since the last notify posted without a unit
        while self._woken_count.acquire(False):
            self._sleeping_count.acquire(False)
        woken = 0
        while woken < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()
            woken += 1
        if woken:
            for _ in range(woken):
                self._woken_count.acquire()
            # a waiter that timed out as it was handed a unit left it here
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self) -> None:
        """Wake up all the processes or threads waiting on the condition."""
        self.notify(sys.maxsize)

    notifyAll = notify_all


# Event: FLAG is 0 or 1; SETS counts set() calls, and waiters sleep on it,
# so a wait() that a set() ended returns True even if clear() came first.
_FLAG, _SETS = 0, 4


class Event:
    """An event flag shared between processes."""

    def __init__(self, *, ctx: Any = None) -> None:
        self._rec = new_record(8)

    def __getstate__(self) -> Any:
        context.assert_spawning(self)
        return self._rec

    def __setstate__(self, state: Any) -> None:
        self._rec = state

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._rec.seg.load(self._rec.off + _FLAG) == 1

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        seg, off = self._rec.seg, self._rec.off
        seg.store(off + _FLAG, 1)
        seg.add(off + _SETS, 1)
        seg.wake(off + _SETS)

    def clear(self) -> None:
        """Reset the flag."""
        self._rec.seg.store(self._rec.off + _FLAG, 0)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the flag is set or timeout seconds pass; return the
        flag (True when a set() ended the wait)."""
        seg, off = self._rec.seg, self._rec.off
        if seg.load(off + _FLAG):
            return True
        sets = seg.load(off + _SETS)
        if seg.load(off + _FLAG):
            return True
        if seg.wait(off + _SETS, sets, timeout):
            return True
        return seg.load(off + _FLAG) == 1

    def __repr__(self) -> str:
        set_status = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {set_status}>"


class Barrier(threading.Barrier):
    """A barrier shared between processes: threading.Barrier's algorithm
    over a shared Condition, with its state and count in a segment."""

    def __init__(self, parties: int, action: Optional[Callable] = None,
                 timeout: Optional[float] = None, *, ctx: Any = None) -> None:
        self._rec = new_record(8)
        threading.Barrier.__init__(self, parties, action, timeout)
        self._cond = Condition(Lock(ctx=ctx), ctx=ctx)

    def __getstate__(self) -> Any:
        return (self._parties, self._action, self._timeout, self._cond, self._rec)

    def __setstate__(self, state: Any) -> None:
        self._parties, self._action, self._timeout, self._cond, self._rec = state

    @staticmethod
    def _signed(v: int) -> int:
        return v - (1 << 32) if v >= 1 << 31 else v

    @property
    def _state(self) -> int:
        return self._signed(self._rec.seg.load(self._rec.off))

    @_state.setter
    def _state(self, value: int) -> None:
        self._rec.seg.store(self._rec.off, value & 0xFFFFFFFF)

    @property
    def _count(self) -> int:
        return self._rec.seg.load(self._rec.off + 4)

    @_count.setter
    def _count(self, value: int) -> None:
        self._rec.seg.store(self._rec.off + 4, value)

    def __repr__(self) -> str:
        if self.broken:
            return f"<{type(self).__qualname__} at {id(self):#x}: broken>"
        return (f"<{type(self).__qualname__} at {id(self):#x}:"
                f" waiters={self.n_waiting}/{self.parties}>")

"""The multiprocessing API over threads (the stdlib's
``multiprocessing.dummy``): the same names, backed by :mod:`threading`
and :mod:`queue`, with :class:`gomp.pool.ThreadPool` as ``Pool``."""
from __future__ import annotations

import array
import sys
import threading
import weakref
from queue import Queue
from threading import (Barrier, BoundedSemaphore, Condition, Event, Lock, RLock,
                       Semaphore)
from typing import Any, Callable, Iterable, Mapping, Optional

from .connection import Pipe

__all__ = ["Process", "current_process", "active_children", "freeze_support", "Lock",
           "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "Queue", "Manager", "Pipe", "Pool", "JoinableQueue"]


class DummyProcess(threading.Thread):
    """A thread with the Process API (exitcode, the parent's children)."""

    def __init__(self, group: None = None, target: Optional[Callable[..., Any]] = None,
                 name: Optional[str] = None, args: Iterable[Any] = (),
                 kwargs: Mapping[str, Any] = {}) -> None:
        threading.Thread.__init__(self, group, target, name, args, kwargs)
        self._pid = None
        self._children: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._start_called = False
        self._parent = current_process()

    def start(self) -> None:
        """Start the thread; only from the thread that created it."""
        if self._parent is not current_process():
            raise RuntimeError("Parent is {0!r} but current_process is {1!r}".format(
                self._parent, current_process()))
        self._start_called = True
        if hasattr(self._parent, "_children"):
            self._parent._children[self] = None
        threading.Thread.start(self)

    @property
    def exitcode(self) -> Optional[int]:
        """0 once the thread has finished, None before."""
        if self._start_called and not self.is_alive():
            return 0
        return None


Process = DummyProcess
current_process = threading.current_thread
current_process()._children = weakref.WeakKeyDictionary()  # type: ignore[attr-defined]


def active_children() -> list:
    """The threads started by this one that are still alive."""
    children = current_process()._children  # type: ignore[attr-defined]
    for p in list(children):
        if not p.is_alive():
            children.pop(p, None)
    return list(children)


def freeze_support() -> None:
    """Does nothing (as in the stdlib for threads)."""


class Namespace:
    """A plain object whose attributes are given as keyword arguments."""

    def __init__(self, /, **kwds: Any) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        items = sorted("%s=%r" % (k, v) for k, v in self.__dict__.items()
                       if not k.startswith("_"))
        return "%s(%s)" % (type(self).__name__, ", ".join(items))


dict = dict
list = list


def Array(typecode: str, sequence: Iterable[Any], lock: Any = True) -> array.array:
    """An array.array (threads share memory already)."""
    return array.array(typecode, sequence)


class Value:
    """A value with a ``value`` attribute (threads share memory already)."""

    def __init__(self, typecode: Any, value: Any, lock: Any = True) -> None:
        self._typecode = typecode
        self._value = value

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "<%s(%r, %r)>" % (type(self).__name__, self._typecode, self._value)


def Manager() -> Any:
    """This module, which has the manager's methods as functions."""
    return sys.modules[__name__]


def shutdown() -> None:
    """Does nothing."""


def Pool(processes: Optional[int] = None, initializer: Optional[Callable] = None,
         initargs: Iterable[Any] = ()) -> Any:
    """A pool of worker threads (gomp.pool.ThreadPool)."""
    from ..pool import ThreadPool
    return ThreadPool(processes, initializer, initargs)


JoinableQueue = Queue

"""Contexts and start methods: the stdlib's ``multiprocessing.context``.

gomp starts every child by exec semantics (the Go runtime does not survive
fork). Two start methods exist:

``spawn`` (the default)
    Each child imports the parent's ``__main__`` as ``__mp_main__`` and gets
    its objects pickled, exactly as the stdlib's spawn. Children are forked
    from a zygote: a Python process that never loaded Go and has already
    imported the stdlib and third-party modules the parent uses, so a start
    costs a fork instead of an interpreter start-up.
``forkserver``
    The same zygote, which additionally imports ``__main__`` once (and the
    modules given to :func:`set_forkserver_preload`): the stdlib's
    forkserver semantics.
"""
from __future__ import annotations

import os
import sys
import threading
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Optional, Sequence

from . import process
from . import reduction

__all__ = ()


class ProcessError(Exception):
    pass


class BufferTooShort(ProcessError):
    pass


class TimeoutError(ProcessError):
    pass


class AuthenticationError(ProcessError):
    pass


class BaseContext:
    """The API of the ``multiprocessing`` module, bound to a start method."""

    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    def cpu_count(self) -> int:
        """Returns the number of CPUs in the system."""
        num = os.cpu_count()
        if num is None:
            raise NotImplementedError("cannot determine number of cpus")
        return num

    def Manager(self) -> Any:
        """Returns a manager associated with a running server process."""
        from .managers import SyncManager
        m = SyncManager(ctx=self.get_context())
        m.start()
        return m

    def Pipe(self, duplex: bool = True) -> Any:
        """Returns two connection objects connected by a pipe."""
        from .connection import Pipe
        return Pipe(duplex)

    def Lock(self) -> Any:
        """Returns a non-recursive lock object."""
        from .synchronize import Lock
        return Lock(ctx=self.get_context())

    def RLock(self) -> Any:
        """Returns a recursive lock object."""
        from .synchronize import RLock
        return RLock(ctx=self.get_context())

    def Condition(self, lock: Any = None) -> Any:
        """Returns a condition object."""
        from .synchronize import Condition
        return Condition(lock, ctx=self.get_context())

    def Semaphore(self, value: int = 1) -> Any:
        """Returns a semaphore object."""
        from .synchronize import Semaphore
        return Semaphore(value, ctx=self.get_context())

    def BoundedSemaphore(self, value: int = 1) -> Any:
        """Returns a bounded semaphore object."""
        from .synchronize import BoundedSemaphore
        return BoundedSemaphore(value, ctx=self.get_context())

    def Event(self) -> Any:
        """Returns an event object."""
        from .synchronize import Event
        return Event(ctx=self.get_context())

    def Barrier(self, parties: int, action: Optional[Callable] = None,
                timeout: Optional[float] = None) -> Any:
        """Returns a barrier object."""
        from .synchronize import Barrier
        return Barrier(parties, action, timeout, ctx=self.get_context())

    def Queue(self, maxsize: int = 0) -> Any:
        """Returns a queue object."""
        from .queues import Queue
        return Queue(maxsize, ctx=self.get_context())

    def JoinableQueue(self, maxsize: int = 0) -> Any:
        """Returns a queue object."""
        from .queues import JoinableQueue
        return JoinableQueue(maxsize, ctx=self.get_context())

    def SimpleQueue(self) -> Any:
        """Returns a queue object."""
        from .queues import SimpleQueue
        return SimpleQueue(ctx=self.get_context())

    def Pool(self, processes: Optional[int] = None, initializer: Optional[Callable] = None,
             initargs: Iterable[Any] = (), maxtasksperchild: Optional[int] = None, *,
             worker_state: bool = False) -> Any:
        """Returns a process pool object. ``worker_state=True`` (gomp's):
        each task gets its worker's state, what the initializer returned,
        as the keyword argument ``worker_state`` (see gomp.pool.Pool)."""
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild,
                    context=self.get_context(), worker_state=worker_state)

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        """Returns a shared object."""
        from .sharedctypes import RawValue
        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        """Returns a shared array."""
        from .sharedctypes import RawArray
        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        """Returns a synchronized shared object."""
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock, ctx=self.get_context())

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        """Returns a synchronized shared array."""
        from .sharedctypes import Array
        return Array(typecode_or_type, size_or_initializer, lock=lock,
                     ctx=self.get_context())

    def freeze_support(self) -> None:
        """Check whether this is a fake forked process in a frozen executable.
        If so then run code specified by commandline and exit."""
        if getattr(sys, "frozen", False):
            from .spawn import freeze_support
            freeze_support()

    def get_logger(self) -> Any:
        """Return package logger -- if it does not already exist then
        it is created."""
        from .util import get_logger
        return get_logger()

    def log_to_stderr(self, level: Optional[int] = None) -> Any:
        """Turn on logging and add a handler which prints to stderr."""
        from .util import log_to_stderr
        return log_to_stderr(level)

    def allow_connection_pickling(self) -> None:
        """Install support for sending connections and sockets between
        processes (always on in gomp)."""
        from . import connection  # noqa: F401  (registers its reducers)

    def set_executable(self, executable: str) -> None:
        """Sets the path to a python.exe or pythonw.exe binary used to run
        child processes instead of sys.executable when using the 'spawn'
        start method."""
        from .spawn import set_executable
        set_executable(executable)

    def set_forkserver_preload(self, module_names: Sequence[str]) -> None:
        """Set list of module names to try to load in forkserver process.
        This is really just a hint."""
        from .zygote import set_preload
        set_preload(module_names)

    def get_context(self, method: Optional[str] = None, **options: Any) -> "BaseContext":
        """Returns a context object for the start method ``method``:
        'spawn' or 'forkserver' ('fork' raises ValueError, as where it is
        not offered), or this context when None.

        ``"dask"`` (gomp's) returns a new ``gomp.dask.DaskContext``, the
        multiprocessing API on a Dask cluster, made with ``options``
        (``address``, ``timeout``, and options for the local cluster it
        starts when given no address); it needs the ``dask`` extra. Other
        methods take no options."""
        if method == "dask":
            # the API on a Dask cluster (gomp.dask; needs the 'dask' extra):
            # a new context, with its own connection, per call
            from .dask import DaskContext
            return DaskContext(**options)
        if options:
            raise TypeError("only the 'dask' context takes options, not %r" % (method,))
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except KeyError:
            raise ValueError("cannot find context for %r" % method) from None
        ctx._check_available()
        return ctx

    def get_start_method(self, allow_none: bool = False) -> Optional[str]:
        return self._name

    def set_start_method(self, method: Optional[str], force: bool = False) -> None:
        raise ValueError("cannot set start method of concrete context")

    @property
    def reducer(self) -> Any:
        """Controls how objects will be reduced to a form that can be
        shared with other processes."""
        return globals().get("reduction")

    @reducer.setter
    def reducer(self, reduction: Any) -> None:
        globals()["reduction"] = reduction

    def _check_available(self) -> None:
        pass


class Process(process.BaseProcess):
    """A process started with the current default start method."""

    _start_method = None

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        return _default_context.get_context().Process._Popen(process_obj)

    @staticmethod
    def _after_fork() -> None:
        return _default_context.get_context().Process._after_fork()


class DefaultContext(BaseContext):
    Process = Process

    def __init__(self, context: BaseContext) -> None:
        self._default_context = context
        self._actual_context: Optional[BaseContext] = None

    def get_context(self, method: Optional[str] = None, **options: Any) -> BaseContext:
        if method is None and not options:
            if self._actual_context is None:
                self._actual_context = self._default_context
            return self._actual_context
        return super().get_context(method, **options)

    def set_start_method(self, method: Optional[str], force: bool = False) -> None:
        if self._actual_context is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            self._actual_context = None
            return
        self._actual_context = self.get_context(method)

    def get_start_method(self, allow_none: bool = False) -> Optional[str]:
        if self._actual_context is None:
            if allow_none:
                return None
            self._actual_context = self._default_context
        return self._actual_context._name

    def get_all_start_methods(self) -> "list[str]":
        """Returns a list of the supported start methods, default first.

        'fork' is not among them: the Go runtime does not survive fork()."""
        return ["spawn", "forkserver"]


class SpawnProcess(process.BaseProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        from .popen import Popen
        return Popen(process_obj, "spawn")

    @staticmethod
    def _after_fork() -> None:
        pass


class ForkServerProcess(process.BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        from .popen import Popen
        return Popen(process_obj, "forkserver")

    @staticmethod
    def _after_fork() -> None:
        pass


class ForkProcess(process.BaseProcess):
    """The stdlib's fork start method, which gomp does not offer (the Go
    runtime does not survive fork()): the class exists for code that names
    it; starting one raises ValueError."""

    _start_method = "fork"

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        ForkContext._check_available()
        raise AssertionError("unreachable")

    @staticmethod
    def _after_fork() -> None:
        pass


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = "forkserver"
    Process = ForkServerProcess


class ForkContext(BaseContext):
    """The fork start method: not available in gomp (see ForkProcess);
    get_context("fork") raises ValueError, as on platforms without fork."""

    _name = "fork"
    Process = ForkProcess

    @staticmethod
    def _check_available() -> None:
        raise ValueError("cannot find context for 'fork': gomp has no fork start method "
                         "(the Go runtime does not survive fork()); use 'spawn' or "
                         "'forkserver'")


# what get_context(name) finds (libraries add their own, as loky does);
# 'fork' is listed so that asking for it explains why it is missing
_concrete_contexts = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}
_default_context = DefaultContext(_concrete_contexts["spawn"])


def _force_start_method(method: str) -> None:
    _default_context._actual_context = _concrete_contexts[method]


# the Popen object of the process being started, while it is pickled
_tls = threading.local()


def get_spawning_popen() -> Any:
    return getattr(_tls, "spawning_popen", None)


def set_spawning_popen(popen: Any) -> None:
    _tls.spawning_popen = popen


def assert_spawning(obj: Any) -> None:
    if get_spawning_popen() is None:
        raise RuntimeError(
            "%s objects should only be shared between processes"
            " through inheritance" % type(obj).__name__)

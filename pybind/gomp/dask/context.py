"""The ``dask`` context: the multiprocessing API bound to a Dask cluster.

A context owns its connection: with no address it starts a
``distributed.LocalCluster`` of processes and shuts it down with the
context; with an address it connects a ``distributed.Client`` and closes it
with the context; a ``Client`` given to it stays the caller's. The context
closes at ``close()``, at the end of a ``with`` block, or at exit.
"""
from __future__ import annotations

import os
import threading
import uuid
import weakref
from typing import Any, Callable, Iterable, Optional, Union

import dask
import distributed

from ..context import BaseContext

__all__ = ["DaskContext", "ADDRESS_ENV", "CONNECT_TIMEOUT"]

# where a context connects when it is given no address
ADDRESS_ENV = "GOMP_DASK_ADDRESS"
# seconds to wait for a scheduler (or a local cluster) to answer
CONNECT_TIMEOUT = 10.0
# how often the cluster this context starts reruns a task whose worker died
# before failing it: once (Dask's distributed.scheduler.allowed-failures)
LOCAL_ALLOWED_FAILURES = 1


def _unavailable(what: str, instead: str) -> NotImplementedError:
    return NotImplementedError("%s is not available on the 'dask' context: the processes "
                               "are Dask workers, possibly on other machines; %s"
                               % (what, instead))


class DaskContext(BaseContext):
    """The API of the ``multiprocessing`` module, run on a Dask cluster.

    ``address`` is None (then ``$GOMP_DASK_ADDRESS``, else a new
    ``LocalCluster`` of processes, made with ``cluster_options``), a
    scheduler address such as ``"tcp://host:8786"``, or a
    ``distributed.Client``. A scheduler that does not answer within
    ``timeout`` seconds raises ``ConnectionError``.

    Made by ``gomp.get_context("dask", address=None, timeout=10.0,
    **cluster_options)``. Closed by ``close()``, at the end of a ``with``
    block, or at exit."""

    _name = "dask"

    def __init__(self, address: Union[None, str, "distributed.Client"] = None, *,
                 timeout: float = CONNECT_TIMEOUT, **cluster_options: Any) -> None:
        if address is None:
            address = os.environ.get(ADDRESS_ENV) or None
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds, not %r" % (timeout,))
        if cluster_options and address is not None:
            raise TypeError("cluster options (%s) apply only to the local cluster started "
                            "when no address is given" % ", ".join(sorted(cluster_options)))
        self._cluster: Any = None
        self._owns_client = True
        if isinstance(address, distributed.Client):
            self._client = address
            self._owns_client = False
        elif address is None:
            self._cluster, self._client = _start_local_cluster(timeout, cluster_options)
        elif isinstance(address, str):
            self._client = _connect(address, timeout)
        else:
            raise TypeError("address must be None, a scheduler address such as "
                            "'tcp://host:8786' or a distributed.Client, not %s"
                            % type(address).__name__)
        self._closed = False
        # also run at exit, before distributed's own exit hooks (registered earlier)
        self._finalizer = weakref.finalize(self, _close, self._client if self._owns_client
                                           else None, self._cluster)

    # -- the connection ------------------------------------------------------

    @property
    def client(self) -> "distributed.Client":
        """The ``distributed.Client`` this context runs its tasks with."""
        if self._closed:
            raise ValueError("the dask context is closed")
        return self._client

    @property
    def address(self) -> str:
        """The scheduler's address."""
        return self._client.scheduler.address

    def close(self) -> None:
        """Close the connection (and the cluster this context started)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> "DaskContext":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._client.scheduler.address
        return "<%s %s>" % (type(self).__name__, state)

    def __reduce__(self) -> Any:
        raise NotImplementedError("a dask context cannot be pickled: give tasks the "
                                  "objects it makes (Queue, Lock, ...) instead")

    def _new_name(self, kind: str) -> str:
        return "gomp-%s-%s" % (kind, uuid.uuid4().hex)

    # -- the API ---------------------------------------------------------------

    def cpu_count(self) -> int:
        """Returns the number of worker threads in the cluster (each runs one
        task at a time, as a pool process does)."""
        return sum(self.client.nthreads().values()) or 1

    def Process(self, group: None = None, target: Optional[Callable] = None,
                name: Optional[str] = None, args: Iterable[Any] = (),
                kwargs: Optional[dict] = None, *, daemon: Optional[bool] = None) -> Any:
        """Returns a process object whose target runs as a task on a worker."""
        from .process import Process
        return Process(group, target, name, args, kwargs or {}, daemon=daemon, context=self)

    def Pool(self, processes: Optional[int] = None, initializer: Optional[Callable] = None,
             initargs: Iterable[Any] = (), maxtasksperchild: Optional[int] = None) -> Any:
        """Returns a process pool object whose tasks run on the cluster."""
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild, context=self)

    def Queue(self, maxsize: int = 0) -> Any:
        """Returns a queue object (a ``distributed.Queue``)."""
        from .queues import Queue
        return Queue(maxsize, client=self.client, name=self._new_name("queue"))

    SimpleQueue = Queue

    def Lock(self) -> Any:
        """Returns a non-recursive lock object (a ``distributed.Lock``)."""
        from .synchronize import Lock
        return Lock(client=self.client, name=self._new_name("lock"))

    def Semaphore(self, value: int = 1) -> Any:
        """Returns a semaphore object (a ``distributed.Semaphore``)."""
        from .synchronize import Semaphore
        return Semaphore(value, client=self.client, name=self._new_name("semaphore"))

    BoundedSemaphore = Semaphore

    def Event(self) -> Any:
        """Returns an event object (a ``distributed.Event``)."""
        from .synchronize import Event
        return Event(client=self.client, name=self._new_name("event"))

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        """Returns a synchronized shared object (a ``distributed.Variable``;
        with a ``distributed.Lock`` unless ``lock`` is False)."""
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock, client=self.client,
                     name=self._new_name("value"))

    # -- what a cluster cannot offer --------------------------------------------

    def Pipe(self, duplex: bool = True) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (two ``Queue()`` objects)."""
        raise _unavailable("Pipe()", "use two ctx.Queue() objects (one per direction)")

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (a sequence in ``Value()``)."""
        raise _unavailable("Array()", "keep the sequence in ctx.Value() (any picklable value, "
                           "a list or a numpy array) and guard updates with its get_lock()")

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (a sequence in ``Value(..., lock=False)``)."""
        raise _unavailable("RawArray()", "keep the sequence in ctx.Value(..., lock=False)")

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (``Value(..., lock=False)``)."""
        raise _unavailable("RawValue()", "use ctx.Value(..., lock=False)")

    def JoinableQueue(self, maxsize: int = 0) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (``Queue()``, and ``Process.join()`` or an
        ``Event()``)."""
        raise _unavailable("JoinableQueue()", "use ctx.Queue() and wait for the consumers "
                           "with Process.join() or a ctx.Event()")

    def RLock(self) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (``Lock()``, which is not re-entrant)."""
        raise _unavailable("RLock()", "use ctx.Lock() (not re-entrant)")

    def Condition(self, lock: Any = None) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (``Event()`` or ``Queue()``)."""
        raise _unavailable("Condition()", "signal with ctx.Event() or hand items over "
                           "with ctx.Queue()")

    def Barrier(self, parties: int, action: Optional[Callable] = None,
                timeout: Optional[float] = None) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (a ``Queue()`` and an ``Event()``)."""
        raise _unavailable("Barrier()", "have each party put on a ctx.Queue() and one "
                           "set a ctx.Event() when all have arrived")

    def Manager(self) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (the context's ``Queue()``, ``Lock()``, ``Event()`` and
        ``Value()`` are already shared)."""
        raise _unavailable("Manager()", "the scheduler already serves shared objects: use "
                           "ctx.Queue(), ctx.Lock(), ctx.Event() and ctx.Value()")

    def SharedMemory(self, name: Optional[str] = None, create: bool = False,
                     size: int = 0) -> Any:
        """Not available on a cluster: raises NotImplementedError saying what
        to use instead (task arguments and results, or ``Value()``)."""
        raise _unavailable("shared memory", "pass data as task arguments and results "
                           "(Dask moves them between machines), or keep it in ctx.Value()")


def _connect(address: str, timeout: float) -> "distributed.Client":
    try:
        return distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ConnectionError("no Dask scheduler answered at %s within %g s (%s)"
                              % (address, timeout, e)) from e
    except ValueError as e:
        raise ValueError("not a Dask scheduler address: %r (%s)" % (address, e)) from e


def _start_local_cluster(timeout: float, options: dict) -> "tuple[Any, Any]":
    options = dict(options)
    options.setdefault("processes", True)
    options.setdefault("dashboard_address", None)
    with dask.config.set({"distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES}):
        cluster = distributed.LocalCluster(**options)
    try:
        client = distributed.Client(cluster, timeout=timeout)
    except BaseException:
        cluster.close()
        raise
    return cluster, client


_close_lock = threading.Lock()


def _close(client: Any, cluster: Any) -> None:
    """Close what a context owns; errors of a connection already gone are
    no business of the program's exit."""
    with _close_lock:
        for obj in (client, cluster):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass


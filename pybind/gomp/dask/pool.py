"""A process pool whose tasks run on a Dask cluster: the stdlib's
``multiprocessing.pool.Pool`` API over ``distributed.Client``.

Each call of ``apply_async`` and each chunk of ``map``, ``starmap`` and
``imap`` is one Dask task, so Dask's scheduler places it (data locality,
work stealing) and reruns it if its worker dies. ``processes`` bounds the
tasks the pool has in flight at once; the rest wait here, in order, and
leave as earlier ones finish. With ``processes=None`` every task goes to
the scheduler at once and the cluster's worker threads bound what runs.

As gomp's local pool:

* an exception raised by a task is re-raised by ``get()`` with the remote
  traceback, as text, as its ``__cause__`` (:class:`gomp.pool.RemoteTraceback`);
* a task whose worker dies is run once more elsewhere (Dask's
  ``distributed.scheduler.allowed-failures``, which the cluster the
  context starts sets to 1); if that worker dies too, the task fails with
  :class:`WorkerLostError` (a :class:`gomp.pool.WorkerLostError`);
* lambdas, closures and functions of ``__main__`` travel by value;
* ``terminate()`` (and leaving a ``with`` block) cancels what is left and
  fails its results with :class:`gomp.ProcessError`.

The initializer runs once in each worker process, before the first task of
this pool that the process runs. ``maxtasksperchild`` is checked and kept
but does not restart workers: Dask workers are shared by every client of the
cluster, and their nanny restarts a worker that passes its memory limit,
which is what ``maxtasksperchild`` is mostly used for.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
import traceback
import uuid
from functools import partial
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import distributed
from dask.utils import funcname

from .. import pool as _pool
from ..context import ProcessError, TimeoutError
from ..pool import RemoteTraceback, WorkerLostError as _WorkerLostError

__all__ = ["Pool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator",
           "IMapUnorderedIterator", "WorkerLostError"]

RUN = "RUN"
CLOSE = "CLOSE"
TERMINATE = "TERMINATE"

# imap keeps at most this many chunks per pool process in flight, so that
# it never reads far ahead of the cluster in its iterable
_IMAP_WINDOW = 2
# how often blocked feeders look whether their pool was terminated (seconds)
_POLL = 0.1
# the thread that fetches apply_async's results ends after this long idle
_FETCHER_IDLE = 2.0
# a client.gather costs about 1.5 ms (1 ms of the client's CPU) whatever its
# size: while other tasks still run, the fetcher lets results gather for up
# to this long (seconds), or until it has this many, before fetching them
_FETCH_WINDOW = 0.002
_FETCH_BATCH = 64


class WorkerLostError(_WorkerLostError):
    """The Dask worker that ran a task died, on each of the attempts Dask
    made; ``pid`` and ``address`` say which worker ran it last."""

    def __init__(self, pid: Optional[int], address: Optional[str] = None,
                 attempts: Optional[int] = None) -> None:
        super().__init__(pid, None)
        self.address = address
        self.attempts = attempts

    def __str__(self) -> str:
        tries = "" if self.attempts is None else ", on each of its %d attempts" % self.attempts
        return "Dask worker %s (pid %s) died while running this task%s" % (
            self.address, self.pid, tries)

    def __reduce__(self) -> Any:
        return type(self), (self.pid, self.address, self.attempts)


# -- what runs on the workers --------------------------------------------------

class _Initializer:
    """A pool's initializer, run once per worker process before that
    process runs the pool's first task there."""

    __slots__ = ("token", "func", "args")

    def __init__(self, token: str, func: Callable, args: tuple) -> None:
        self.token, self.func, self.args = token, func, args

    def __reduce__(self) -> Any:
        return _Initializer, (self.token, self.func, self.args)


_initialized: set = set()
_init_lock = threading.Lock()


def _initialize(init: _Initializer) -> None:
    if init.token in _initialized:
        return
    with _init_lock:
        if init.token not in _initialized:
            init.func(*init.args)
            _initialized.add(init.token)


def _call(init: Optional[_Initializer], func: Callable, args: tuple, kwds: dict) -> Any:
    if init is not None:
        _initialize(init)
    return func(*args, **kwds)


def _call_chunk(init: Optional[_Initializer], func: Callable, star: bool, chunk: list) -> list:
    if init is not None:
        _initialize(init)
    if star:
        return list(itertools.starmap(func, chunk))
    return list(map(func, chunk))


# -- errors, as the local pool reports them -----------------------------------

def _no_task_timeout(timeout: Optional[float]) -> None:
    if _pool._check_task_timeout(timeout) is not None:
        raise ValueError("per-task timeouts are not offered on a cluster: a task's "
                         "thread cannot be stopped in its Dask worker")


def _error(future: Any) -> BaseException:
    """The exception a finished-with-error (or cancelled) task raises here."""
    if future.status == "cancelled":
        return ProcessError("the task was cancelled: its pool was terminated")
    exc = future.exception()
    if isinstance(exc, distributed.KilledWorker):
        worker = exc.last_worker
        lost = WorkerLostError(getattr(worker, "pid", None), getattr(worker, "address", None),
                               exc.args[2] + 1 if len(exc.args) > 2 else None)
        lost.__cause__ = exc
        return lost
    if not isinstance(exc.__cause__, RemoteTraceback):
        text = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
        exc.__cause__ = RemoteTraceback('\n"""\n%s"""' % text)
    return exc


def _outcome(future: Any) -> "tuple[bool, Any]":
    """(True, result) or (False, exception), fetching the result."""
    if future.status == "finished":
        try:
            return True, future.result()
        except Exception as e:  # the result could not be fetched or loaded
            return False, e
    return False, _error(future)


# -- results --------------------------------------------------------------------

class ApplyResult:
    """The result of ``Pool.apply_async()``."""

    def __init__(self, pool: "Pool", callback: Optional[Callable],
                 error_callback: Optional[Callable]) -> None:
        self._pool = pool
        self._event = threading.Event()
        self._callback = callback
        self._error_callback = error_callback
        self._future: Any = None
        self._outcome: Optional[tuple] = None

    def ready(self) -> bool:
        """Return whether the call has completed."""
        return self._event.is_set()

    def successful(self) -> bool:
        """Return whether the call completed without raising an exception.
        Raises ValueError if the result is not ready."""
        if not self._event.is_set():
            raise ValueError("{0!r} not ready".format(self))
        if self._outcome is not None:
            return self._outcome[0]
        return self._future.status == "finished"

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait until the result is available or until timeout seconds pass."""
        self._event.wait(timeout)

    def get(self, timeout: Optional[float] = None) -> Any:
        """Return the result when it arrives. If timeout is not None and the
        result does not arrive within timeout seconds then
        multiprocessing.TimeoutError is raised. If the remote call raised an
        exception then that exception will be reraised by get()."""
        if not self._event.wait(timeout):
            raise TimeoutError
        success, value = self._fetch()
        if success:
            return value
        raise value

    def _fetch(self) -> tuple:
        if self._outcome is None:
            self._outcome = _outcome(self._future)
            self._future = None  # the cluster may let the result go
        return self._outcome

    # called by the pool
    def _submitted(self, i: int, future: Any) -> None:
        self._future = future

    def _failed(self, i: int, exc: BaseException) -> None:
        self._outcome = (False, exc)
        self._finish()

    def _done(self, i: int, future: Any) -> None:
        self._finish()

    def _deliver(self, outcome: tuple) -> None:
        """The outcome, fetched by the pool with others at once."""
        self._outcome = outcome
        self._future = None
        self._finish()

    def _finish(self) -> None:
        try:
            if self._callback is not None or self._error_callback is not None:
                success, value = self._fetch()
                callback = self._callback if success else self._error_callback
                if callback is not None:
                    callback(value)
        finally:
            self._event.set()
            self._pool = None


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of ``Pool.map_async()`` and ``Pool.starmap_async()``: one
    future per chunk, ready once every chunk is back."""

    def __init__(self, pool: "Pool", chunks: int, callback: Optional[Callable],
                 error_callback: Optional[Callable]) -> None:
        super().__init__(pool, callback, error_callback)
        self._futures: List[Any] = [None] * chunks
        self._errors: Dict[int, BaseException] = {}
        self._left = chunks
        self._count_lock = threading.Lock()
        if chunks == 0:
            self._outcome = (True, [])
            self._event.set()

    def successful(self) -> bool:
        if not self._event.is_set():
            raise ValueError("{0!r} not ready".format(self))
        if self._outcome is not None:
            return self._outcome[0]
        return not self._errors and all(f.status == "finished" for f in self._futures)

    def _fetch(self) -> tuple:
        if self._outcome is None:
            futures = self._futures
            bad = [i for i, f in enumerate(futures) if i in self._errors
                   or f.status != "finished"]
            if bad:
                i = bad[0]
                self._outcome = (False, self._errors.get(i) or _error(futures[i]))
            else:
                try:
                    chunks = futures[0].client.gather(futures)
                    self._outcome = (True, list(itertools.chain.from_iterable(chunks)))
                except Exception as e:
                    self._outcome = (False, e)
            self._futures = []
        return self._outcome

    def _submitted(self, i: int, future: Any) -> None:
        self._futures[i] = future

    def _failed(self, i: int, exc: BaseException) -> None:
        self._errors[i] = exc
        self._done(i, None)

    def _done(self, i: int, future: Any) -> None:
        with self._count_lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish()


class IMapIterator:
    """The iterator returned by ``Pool.imap()``: chunks are submitted as the
    iterable yields them, and their results come back in order."""

    _ordered = True

    def __init__(self, pool: "Pool") -> None:
        self._pool: Optional[Pool] = pool
        self._cond = threading.Condition(threading.Lock())
        self._futures: Dict[int, Any] = {}
        self._ready: "collections.deque[int]" = collections.deque()  # done, unordered
        self._done_set: set = set()
        self._errors: Dict[int, BaseException] = {}
        self._next = 0          # chunks handed out so far
        self._length: Optional[int] = None   # chunks in all, once known
        self._items: "collections.deque" = collections.deque()
        self._window = threading.Semaphore(max(1, pool._processes * _IMAP_WINDOW))

    def __iter__(self) -> "IMapIterator":
        return self

    def next(self, timeout: Optional[float] = None) -> Any:
        """Return the next result, waiting at most timeout seconds for it
        (multiprocessing.TimeoutError when it does not come)."""
        if self._items:
            return self._item()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                i = self._take()
                if i is not None:
                    break
                if self._next == self._length:
                    self._pool = None
                    raise StopIteration
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(left)
            self._next += 1
            future = self._futures.pop(i, None)
            error = self._errors.pop(i, None)
        if error is None:
            success, values = _outcome(future)
            if not success:
                error = values
        if error is not None:
            raise error
        self._items.extend(values)
        return self._item() if self._items else self.next(timeout)

    __next__ = next

    def _item(self) -> Any:
        return self._items.popleft()

    def _take(self) -> Optional[int]:
        """The chunk to hand out next, if it is done (lock held)."""
        if self._ordered:
            if self._next in self._done_set:
                self._done_set.discard(self._next)
                return self._next
            return None
        return self._ready.popleft() if self._ready else None

    # called by the pool and the feeder
    def _submitted(self, i: int, future: Any) -> None:
        with self._cond:
            self._futures[i] = future

    def _failed(self, i: int, exc: BaseException) -> None:
        with self._cond:
            self._errors[i] = exc
        self._done(i, None)

    def _done(self, i: int, future: Any) -> None:
        self._window.release()
        with self._cond:
            if self._ordered:
                self._done_set.add(i)
            else:
                self._ready.append(i)
            self._cond.notify()

    def _set_length(self, length: int) -> None:
        with self._cond:
            self._length = length
            self._cond.notify_all()


class IMapUnorderedIterator(IMapIterator):
    """The iterator returned by ``Pool.imap_unordered()``: chunks come back
    as they finish."""

    _ordered = False


# -- the pool -------------------------------------------------------------------

class _Task:
    """One Dask task of the pool: what to submit and which result it fills."""

    __slots__ = ("func", "args", "key", "sink", "index")

    def __init__(self, func: Callable, args: tuple, key: str, sink: Any, index: int) -> None:
        self.func, self.args, self.key, self.sink, self.index = func, args, key, sink, index


def _no_progress(progress: Any) -> None:
    if progress is not None and progress is not False:
        raise NotImplementedError("progress bars are drawn by gomp's local pools; "
                                  "the dask context's Pool has none")


class Pool:
    """Class which supports an async version of applying functions to
    arguments, on the workers of a Dask cluster."""

    def __init__(self, processes: Optional[int] = None, initializer: Optional[Callable] = None,
                 initargs: Iterable[Any] = (), maxtasksperchild: Optional[int] = None,
                 context: Any = None) -> None:
        if context is None:
            raise ValueError("a dask Pool is made by a dask context: "
                             "gomp.get_context('dask').Pool()")
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int)
                                             or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._ctx = context
        self._client = context.client
        self._limit = processes
        self._processes = processes if processes is not None else context.cpu_count()
        self._maxtasksperchild = maxtasksperchild
        self._init = (None if initializer is None else
                      _Initializer(uuid.uuid4().hex, initializer, tuple(initargs)))
        self._state = RUN
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._free = processes          # slots left (None: no bound)
        self._waiting: "collections.deque[_Task]" = collections.deque()
        self._outstanding: set = set()  # futures in flight (the pool keeps them alive)
        self._feeders = 0               # imap threads still reading their iterable
        self._to_fetch: list = []       # (result, future) of finished apply_async tasks
        self._fetch_cond = threading.Condition(self._lock)
        self._token = uuid.uuid4().hex  # apply_async's keys (_key)
        self._calls = itertools.count()
        self._fetching = False          # a thread fetches them

    # -- submitting ---------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _submit(self, tasks: List[_Task]) -> None:
        """Send what the bound lets through now; queue the rest."""
        with self._lock:
            if self._free is None:
                now = tasks
            else:
                n = min(self._free, len(tasks)) if not self._waiting else 0
                self._free -= n
                now = tasks[:n]
                self._waiting.extend(tasks[n:])
        if now:
            self._launch(now)

    def _launch(self, tasks: List[_Task]) -> None:
        client = self._client
        try:
            # several tasks come from one map call, so they share their function
            if len(tasks) == 1:
                t = tasks[0]
                futures = [client.submit(t.func, *t.args, key=t.key, pure=False)]
            else:
                # one message to the scheduler for all
                t = tasks[0]
                futures = client.map(t.func, [x.args[-1] for x in tasks],
                                     key=[x.key for x in tasks], pure=False)
        except Exception as e:
            # not sent: an argument that cannot be pickled, a closed client, ...
            for t in tasks:
                self._settle()
                t.sink._failed(t.index, e)
            self._forget(None)
            return
        with self._lock:
            self._outstanding.update(futures)
        for t, f in zip(tasks, futures):
            t.sink._submitted(t.index, f)
            f.add_done_callback(partial(self._on_done, t.sink, t.index))

    def _on_done(self, sink: Any, index: int, future: Any) -> None:
        # in Dask's callback thread: the next waiting task goes first, then the
        # result is delivered (callbacks run), then join() may see it gone
        self._settle()
        if type(sink) is ApplyResult:
            self._fetch_later(sink, future)
            return
        try:
            sink._done(index, future)
        finally:
            self._forget(future)

    def _fetch_later(self, sink: ApplyResult, future: Any) -> None:
        """apply_async's results are fetched by one thread, all that finished
        since its last fetch in one client.gather (a round trip per batch,
        not per result)."""
        with self._lock:
            self._to_fetch.append((sink, future))
            if self._fetching:
                self._fetch_cond.notify()
                return
            self._fetching = True
        threading.Thread(target=self._fetch_loop, name="gomp-dask-results",
                         daemon=True).start()

    def _fetch_loop(self) -> None:
        while True:
            with self._lock:
                if not self._to_fetch:
                    self._fetch_cond.wait(_FETCHER_IDLE)
                if not self._to_fetch:
                    self._fetching = False
                    return
                deadline = time.monotonic() + _FETCH_WINDOW
                while (len(self._to_fetch) < _FETCH_BATCH
                       and len(self._outstanding) > len(self._to_fetch)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._fetch_cond.wait(left)
                batch, self._to_fetch = self._to_fetch, []
            finished = [f for _, f in batch if f.status == "finished"]
            values: Dict[Any, Any] = {}
            if finished:
                try:
                    values = dict(zip(finished, self._client.gather(finished)))
                except Exception:
                    pass  # one could not be fetched or loaded: each on its own
            for sink, future in batch:
                try:
                    if future in values:
                        sink._deliver((True, values[future]))
                    else:
                        sink._deliver(_outcome(future))
                except Exception:
                    traceback.print_exc()
                finally:
                    self._forget(future)

    def _settle(self) -> None:
        """A task left the cluster (or never reached it): its slot goes to the
        next waiting task."""
        if self._free is None:
            return
        with self._lock:
            if self._waiting and self._state != TERMINATE:
                nxt = self._waiting.popleft()
            else:
                self._free += 1
                return
        self._launch([nxt])

    def _forget(self, future: Any) -> None:
        with self._lock:
            self._outstanding.discard(future)
            if not self._outstanding and not self._waiting and not self._feeders:
                self._idle.notify_all()

    def _key(self, func: Callable) -> str:
        # unique on a shared scheduler: the pool's token and a count (a uuid4
        # per call costs more than the rest of the key's making)
        return "%s-%s-%d" % (funcname(func), self._token, next(self._calls))

    # -- the API -------------------------------------------------------------------

    # the stdlib's wrappers are gomp's local pool's own: they call
    # apply_async, _map_async and _imap, which this class defines (their
    # progress= is the local pool's alone)
    apply = _pool.Pool.apply
    map = _pool.Pool.map
    map_async = _pool.Pool.map_async
    starmap = _pool.Pool.starmap
    starmap_async = _pool.Pool.starmap_async
    imap = _pool.Pool.imap
    imap_unordered = _pool.Pool.imap_unordered

    def apply_async(self, func: Callable, args: Iterable[Any] = (), kwds: dict = {},
                    callback: Optional[Callable] = None,
                    error_callback: Optional[Callable] = None, *,
                    timeout: Optional[float] = None) -> ApplyResult:
        """Asynchronous version of `apply()` method."""
        self._check_running()
        _no_task_timeout(timeout)
        result = ApplyResult(self, callback, error_callback)
        self._submit([_Task(_call, (self._init, func, tuple(args), dict(kwds)),
                            self._key(func), result, 0)])
        return result

    def _map_async(self, func: Callable, iterable: Iterable[Any], kind: int,
                   chunksize: Optional[int] = None, callback: Optional[Callable] = None,
                   error_callback: Optional[Callable] = None, progress: Any = None, *,
                   timeout: Optional[float] = None) -> MapResult:
        self._check_running()
        _no_task_timeout(timeout)
        _no_progress(progress)
        star = kind == _pool._STARMAP
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            if extra:
                chunksize += 1
        elif chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        chunks = ([list(items[i:i + chunksize]) for i in range(0, len(items), chunksize)]
                  if items else [])
        result = MapResult(self, len(chunks), callback, error_callback)
        if chunks:
            run = partial(_call_chunk, self._init, func, star)
            base = "%s-%s" % (funcname(func), uuid.uuid4().hex)
            self._submit([_Task(run, (c,), "%s-%d" % (base, i), result, i)
                          for i, c in enumerate(chunks)])
        return result

    def _imap(self, cls: type, func: Callable, iterable: Iterable[Any],
              chunksize: int, progress: Any = None, *,
              timeout: Optional[float] = None) -> Iterator[Any]:
        self._check_running()
        _no_task_timeout(timeout)
        _no_progress(progress)
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        # the local pool's wrappers name its own iterator classes
        result = (IMapUnorderedIterator if issubclass(cls, (IMapUnorderedIterator,
                  _pool.IMapUnorderedIterator)) else IMapIterator)(self)
        with self._lock:
            self._feeders += 1
        threading.Thread(target=self._feed, args=(result, func, iter(iterable), chunksize),
                         name="gomp-dask-imap-feeder", daemon=True).start()
        return result

    def _feed(self, result: IMapIterator, func: Callable, it: Iterator[Any],
              chunksize: int) -> None:
        """Read the iterable a chunk at a time, submitting each chunk as it is
        read, with at most the window's chunks in flight."""
        run = partial(_call_chunk, self._init, func, False)
        base = "%s-%s" % (funcname(func), uuid.uuid4().hex)
        n = 0
        try:
            while True:
                try:
                    chunk = list(itertools.islice(it, chunksize))
                except Exception as e:
                    result._failed(n, e)
                    n += 1
                    break
                if not chunk:
                    break
                while not result._window.acquire(timeout=_POLL):
                    if self._state == TERMINATE:
                        return
                if self._state == TERMINATE:
                    return
                self._submit([_Task(run, (chunk,), "%s-%d" % (base, n), result, n)])
                n += 1
        finally:
            result._set_length(n)
            with self._lock:
                self._feeders -= 1
                if not self._outstanding and not self._waiting and not self._feeders:
                    self._idle.notify_all()

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting tasks; those submitted still run."""
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self) -> None:
        """Cancel the tasks not finished yet, failing their results with
        ProcessError, and stop accepting tasks."""
        with self._lock:
            self._state = TERMINATE
            waiting, self._waiting = list(self._waiting), collections.deque()
            outstanding = list(self._outstanding)
        err = ProcessError("the task was cancelled: its pool was terminated")
        for t in waiting:
            t.sink._failed(t.index, err)
        self._forget(None)
        if outstanding:
            try:
                self._client.cancel(outstanding)
            except Exception:
                pass

    def join(self) -> None:
        """Wait for the submitted tasks to finish; close() or terminate()
        must have been called."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        with self._idle:
            while self._outstanding or self._waiting or self._feeders:
                self._idle.wait()

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.terminate()

    def __reduce__(self) -> Any:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self) -> str:
        return "<%s.%s state=%s pool_size=%d address=%s>" % (
            type(self).__module__, type(self).__qualname__, self._state, self._processes,
            self._client.scheduler.address)

"""``concurrent.futures`` on gomp's Pool engine.

``ProcessPoolExecutor`` has the stdlib's constructor and methods
(``submit``, ``map`` with ``chunksize`` and ``timeout``, ``shutdown`` with
``cancel_futures``) and runs its calls on a ``gomp.pool.Pool``, so:

* a worker that dies fails only the futures it held, with
  ``WorkerLostError`` (a ``BrokenProcessPool``, so existing ``except``
  clauses still match); it is replaced and the executor goes
  on. The stdlib's executor is broken for good by one dead worker;
* a call may be given a time bound, counted from its start: past it, the
  call's worker is killed (SIGTERM, then SIGKILL) and replaced, and the
  future fails with ``TaskTimeoutError``, a
  ``concurrent.futures.TimeoutError``. The bound is ``task_timeout=`` of
  the executor (every call) or of ``map``, or the first argument of
  ``ProcessPoolExecutor.submit_with_timeout()``: ``submit``'s keyword
  arguments all go to the function, and ``map``'s ``timeout`` keeps its
  stdlib meaning (a deadline for the whole iteration, which kills nothing);
* a round trip costs a fraction of the stdlib's (no manager thread, no
  call queue, results on a shared-memory ring).

``get_reusable_executor()`` keeps one warm executor per process.
"""
from __future__ import annotations

import concurrent.futures as _cf
from concurrent.futures.process import BrokenProcessPool
import itertools
import operator
import os
import threading
import time
import weakref

from . import context
from . import pool as _pool

# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, List, Optional

__all__ = ["ProcessPoolExecutor", "WorkerLostError", "TaskTimeoutError", "BrokenProcessPool",
           "get_reusable_executor"]

_APPLY, _STARMAP = _pool._APPLY, _pool._STARMAP
# a future's states in which it waits for nothing more
_DONE = frozenset(("FINISHED", "CANCELLED", "CANCELLED_AND_NOTIFIED"))


class WorkerLostError(_pool.WorkerLostError, BrokenProcessPool):
    """The worker running this future's call ended (killed, crashed or
    exited). Only the futures that worker held fail; the executor replaces
    it and stays usable. A ``BrokenProcessPool`` (and a
    ``gomp.pool.WorkerLostError``), so existing ``except`` clauses match;
    ``pid`` and ``exitcode`` say which worker and how it ended."""


class TaskTimeoutError(_pool.TaskTimeoutError, _cf.TimeoutError):
    """The call ran longer than its ``task_timeout``: its worker was killed
    and replaced. A ``concurrent.futures.TimeoutError`` (and a
    ``gomp.pool.TaskTimeoutError``, a ``multiprocessing.TimeoutError``);
    ``timeout`` is the bound in seconds, ``pid`` the worker's, ``item`` the
    call's index in its chunk (None for a single call)."""

    def __new__(cls, *args: Any) -> "TaskTimeoutError":
        # not OSError's (builtins.TimeoutError's) reading of the arguments
        # as errno, strerror and filename
        return _cf.TimeoutError.__new__(cls)

    def __init__(self, timeout: float, pid: Optional[int], item: Optional[int] = None) -> None:
        super().__init__(timeout, pid, item)
        self.args = (timeout, pid, item)


def _as_future_error(value: BaseException, broken: Any) -> BaseException:
    """A failure of the pool engine as the executor reports it."""
    t = type(value)
    if t is _pool.WorkerLostError:
        return WorkerLostError(value.pid, value.exitcode)  # type: ignore[attr-defined]
    if t is _pool.TaskTimeoutError:
        return TaskTimeoutError(value.timeout, value.pid, value.item)  # type: ignore
    if value is broken:
        return BrokenProcessPool(str(value))
    return value


class _Call:
    """The pool's record of one submitted call (or chunk of calls): the
    pool's result thread hands it the outcome, which it gives its future."""

    __slots__ = ("_job", "_future", "_pool", "_task_timeout")

    def __init__(self, pool: Any, future: "_Future", timeout: Optional[float]) -> None:
        self._job = next(_pool.job_counter)
        self._future = future
        self._pool = pool
        self._task_timeout = timeout
        pool._cache[self._job] = self

    def _set(self, i: int, obj: tuple) -> None:
        ok, value = obj
        self._pool._cache.pop(self._job, None)
        future = self._future
        try:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(_as_future_error(value, self._pool._broken))
        except _cf.InvalidStateError:
            pass  # cancelled meanwhile: nobody waits for it


def _withdraw(pool: Any, jobs: "set[int]") -> "set[int]":
    """Take the tasks of these jobs that no worker was sent yet out of the
    pool; the jobs taken."""
    with pool._lock:
        pending = pool._pending
        gone = {t[0] for t in pending if t[0] in jobs}
        if gone:
            kept = [t for t in pending if t[0] not in gone]
            pending.clear()
            pending.extend(kept)
            for job in gone:
                pool._cache.pop(job, None)
    if gone and pool._state == _pool.CLOSE and not pool._cache:
        pool._finish()  # that was all the closed pool waited for
    return gone


class _Future(_cf.Future):
    """A future whose call may still be taken back while no worker has it:
    until then ``cancel()`` succeeds, as with the stdlib's queued calls."""

    _job: int = -1
    _pool: Any = None

    def _sent(self) -> bool:
        """Whether a worker was given the call (marks it running then)."""
        with self._condition:
            if self._state != "PENDING":
                return self._state == "RUNNING"
        with self._pool._lock:
            if any(t[0] == self._job for t in self._pool._pending):
                return False
        self.set_running_or_notify_cancel()
        return True

    def cancel(self) -> bool:
        """Cancel the future if possible.

        Returns True if the future was cancelled, False otherwise. A future
        cannot be cancelled if it is running or has already completed."""
        with self._condition:
            if self._state != "PENDING":
                return super().cancel()
        if self._pool is not None and _withdraw(self._pool, {self._job}):
            return super().cancel()
        self._sent()
        return super().cancel()  # running now: False; done meanwhile: False

    def running(self) -> bool:
        """Return True if the future is currently executing."""
        return self._pool is not None and self._sent()

    def _done(self) -> bool:
        return self._state in _DONE

    def _await(self, timeout: Optional[float]) -> Optional[float]:
        """Wait for the outcome by reading the pool's results in this thread
        when no other thread does (see Pool._await); the timeout left."""
        pool = self._pool
        if pool is None or self._state in _DONE:
            return timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        pool._await(self._done, deadline)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def result(self, timeout: Optional[float] = None) -> Any:
        """Return the result of the call that the future represents.

        Args:
            timeout: The number of seconds to wait for the result if the future
                isn't done. If None, then there is no limit on the wait time.

        Returns:
            The result of the call that the future represents.

        Raises:
            CancelledError: If the future was cancelled.
            TimeoutError: If the future didn't finish executing before the given
                timeout.
            Exception: If the call raised then that exception will be raised.
        """
        return super().result(self._await(timeout))

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """Return the exception raised by the call that the future represents.

        Args:
            timeout: The number of seconds to wait for the exception if the
                future isn't done. If None, then there is no limit on the wait
                time.

        Returns:
            The exception raised by the call that the future represents or None
            if the call completed without raising.

        Raises:
            CancelledError: If the future was cancelled.
            TimeoutError: If the future didn't finish executing before the given
                timeout.
        """
        return super().exception(self._await(timeout))


def _gomp_context(mp_context: Any) -> Any:
    """The gomp context the executor's workers start with."""
    if mp_context is None:
        return context._default_context.get_context()
    method = getattr(mp_context, "get_start_method", None)
    if method is None:
        raise TypeError("mp_context must be a multiprocessing context, not %r"
                        % type(mp_context).__name__)
    name = method()
    if name not in ("spawn", "forkserver"):
        raise ValueError("gomp's ProcessPoolExecutor starts its workers with gomp's 'spawn' "
                         "or 'forkserver' start method, not %r" % (name,))
    if isinstance(mp_context, context.BaseContext):
        return mp_context
    return context._default_context.get_context(name)


def _cpu_count() -> int:
    # 3.13: the CPUs this process may use (PYTHON_CPU_COUNT, affinity)
    return getattr(os, "process_cpu_count", os.cpu_count)() or 1


class ProcessPoolExecutor(_cf.Executor):
    """An executor that runs calls in a pool of at most max_workers
    processes (``concurrent.futures.ProcessPoolExecutor``'s API), on gomp's
    Pool engine.

    Args:
        max_workers: The maximum number of processes that can be used to
            execute the given calls. If None or not given then as many
            worker processes will be created as the machine has processors.
        mp_context: A multiprocessing context to launch the workers: gomp's
            (or the stdlib's, by start method name) 'spawn' or 'forkserver';
            by default gomp's default context.
        initializer: A callable used to initialize worker processes.
        initargs: A tuple of arguments to pass to the initializer.
        max_tasks_per_child: The maximum number of tasks a worker process
            can complete before it will exit and be replaced with a fresh
            worker process (on every Python version gomp supports).
        task_timeout: Not in the stdlib. The seconds each call may run,
            counted from its start (None: no bound). A call that runs longer
            is killed with its worker, which is replaced, and its future
            fails with TaskTimeoutError. ``map(task_timeout=)`` and
            ``submit_with_timeout()`` set it per call.
    """

    def __init__(self, max_workers: Optional[int] = None, mp_context: Any = None,
                 initializer: Optional[Callable[..., object]] = None, initargs: tuple = (), *,
                 max_tasks_per_child: Optional[int] = None,
                 task_timeout: Optional[float] = None) -> None:
        if max_workers is None:
            max_workers = _cpu_count()
        else:
            max_workers = operator.index(max_workers)
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
        if max_tasks_per_child is not None:
            if isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._task_timeout = _pool._check_task_timeout(task_timeout)
        self._max_workers = max_workers
        self._mp_context = _gomp_context(mp_context)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks_per_child = max_tasks_per_child
        self._shutdown_lock = threading.Lock()
        self._shutdown_thread = False
        self._pool: Any = None  # what shutdown() looks at exists before anything can fail
        self._pool = _pool.Pool(max_workers, initializer, self._initargs, max_tasks_per_child,
                                context=self._mp_context)
        # dropped without shutdown(): the workers end once their calls are done
        weakref.finalize(self, _release, self._pool).atexit = False

    def _check_open(self) -> Any:
        """The pool, if calls may still be submitted (lock held)."""
        if self._shutdown_thread:
            raise RuntimeError("cannot schedule new futures after shutdown")
        pool = self._pool
        if pool._broken is not None and not any(not w.dead for w in pool._workers.values()):
            raise BrokenProcessPool(str(pool._broken))
        return pool

    def _timeout(self, task_timeout: Optional[float]) -> Optional[float]:
        if task_timeout is None:
            return self._task_timeout
        return _pool._check_task_timeout(task_timeout)

    def _submit(self, fn: Callable, kind: int, argss: list, kwargs: dict,
                timeout: Optional[float]) -> "List[_Future]":
        """Submit one call per element of argss (one chunk each, for
        starmap): their futures."""
        # Ctrl-C waits until the calls are the pool's: one that landed
        # between would leave a call that never runs, and shutdown() waiting
        with _pool._interrupts_held(), self._shutdown_lock:
            pool = self._check_open()
            kind = pool._timed_kind(kind, timeout)
            futures = []
            tasks = []
            for args in argss:
                f = _Future()
                call = _Call(pool, f, timeout)
                f._job, f._pool = call._job, pool
                futures.append(f)
                tasks.append((call._job, 0, kind, fn, args, kwargs))
            pool._submit(None, tasks)
        return futures

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> _cf.Future:
        """Submits a callable to be executed with the given arguments.

        Schedules the callable to be executed as fn(*args, **kwargs) and
        returns a Future instance representing the execution of the callable.
        The executor's task_timeout, if any, bounds the call.

        Returns:
            A Future representing the given call.
        """
        return self._submit(fn, _APPLY, [args], kwargs, self._task_timeout)[0]

    def submit_with_timeout(self, task_timeout: Optional[float], fn: Callable[..., Any], /,
                            *args: Any, **kwargs: Any) -> _cf.Future:
        """Submits a callable, bounded in time, to be executed with the given
        arguments: submit(fn, *args, **kwargs) with a task_timeout of its own.

        Not in the stdlib. The bound is the first argument because submit()
        passes every keyword argument to fn.

        Args:
            task_timeout: The seconds the call may run, counted from its
                start. None: the executor's task_timeout; math.inf: no
                bound. A call that runs longer is killed with its worker,
                which is replaced, and the future fails with
                TaskTimeoutError (a concurrent.futures.TimeoutError).
            fn: The callable, called as fn(*args, **kwargs).

        Returns:
            A Future representing the given call.
        """
        return self._submit(fn, _APPLY, [args], kwargs, self._timeout(task_timeout))[0]

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],  # type: ignore[override]
            timeout: Optional[float] = None, chunksize: int = 1,
            task_timeout: Optional[float] = None, progress: Any = None) -> Iterator[Any]:
        """Returns an iterator equivalent to map(fn, iter).

        Args:
            fn: A callable that will take as many arguments as there are
                passed iterables.
            timeout: The maximum number of seconds to wait. If None, then there
                is no limit on the wait time.
            chunksize: If greater than one, the iterables will be chopped into
                chunks of size chunksize and submitted to the process pool.
                If set to one, the items in the list will be sent one at a time.
            task_timeout: Not in the stdlib: the seconds each call may run
                from its start (each call of a chunk, not the chunk); None:
                the executor's task_timeout. A call that runs longer is
                killed with its worker and its result raises
                TaskTimeoutError (a chunk's, with chunksize > 1).
            progress: Not in the stdlib: True (or a dict of tqdm options)
                shows a bar of the results taken, drawn by this process
                (the ``progress`` extra: gomp-multiprocessing[progress]).

        Returns:
            An iterator equivalent to: map(func, *iterables) but the calls may
            be evaluated out-of-order.

        Raises:
            TimeoutError: If the entire result iterator could not be generated
                before the given timeout.
            Exception: If fn(*args) raises for any values.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        deadline = None if timeout is None else timeout + time.monotonic()
        limit = self._timeout(task_timeout)
        items = list(zip(*iterables))
        from . import _progress
        # made before any call is submitted: a missing extra fails the map whole
        bar = _progress.make(progress, len(items))
        try:
            if chunksize == 1:
                futures = self._submit(fn, _APPLY, items, {}, limit)
            else:
                chunks = [items[i:i + chunksize] for i in range(0, len(items), chunksize)]
                futures = self._submit(fn, _STARMAP, chunks, None,  # type: ignore[arg-type]
                                       limit)
        except BaseException:
            if bar is not None:
                bar.close()
            raise
        results = _results(futures, deadline, chunksize > 1)
        return results if bar is None else _progress.counted(results, bar)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Clean-up the resources associated with the Executor.

        It is safe to call this method several times. Otherwise, no other
        methods can be called after this one.

        Args:
            wait: If True then shutdown will not return until all running
                futures have finished executing and the resources used by the
                executor have been reclaimed.
            cancel_futures: If True then shutdown will cancel all pending
                futures. Futures that are completed or running will not be
                cancelled.
        """
        with self._shutdown_lock:
            self._shutdown_thread = True
            pool = self._pool
        if pool is None:
            return
        if cancel_futures:
            _cancel(pool, [c._future for c in list(pool._cache.values()) if type(c) is _Call])
        pool.close()
        if wait:
            pool.join()
        else:
            threading.Thread(target=pool.join, name="gomp-executor-shutdown",
                             daemon=True).start()


def _release(pool: Any) -> None:
    """An executor was dropped without shutdown(): its pool ends its
    workers once the calls it has are done."""
    try:
        pool.close()
    except Exception:
        pass


def _cancel(pool: Any, futures: "Iterable[_Future]") -> None:
    """Cancel those of futures no worker was sent (at once)."""
    pending = {f._job: f for f in futures if not f.done()}
    for job in _withdraw(pool, set(pending)):
        _cf.Future.cancel(pending[job])


def _results(futures: "List[_Future]", deadline: Optional[float],
             chunked: bool) -> Iterator[Any]:
    """map()'s results in order; the calls still queued are cancelled when
    the iteration stops early (an error, a timeout, the iterator dropped)."""
    futures.reverse()  # pop() from the end: the first result first
    try:
        while futures:
            f = futures[-1]
            if deadline is None:
                value = f.result()
            else:
                value = f.result(deadline - time.monotonic())
            futures.pop()
            del f  # a result the caller dropped is not kept here
            if chunked:
                yield from value
            else:
                yield value
    finally:
        if futures:
            _cancel(futures[0]._pool, futures)


# ------------------------------------------------------------ reusable executor

_reusable_lock = threading.Lock()
_reusable: Optional[ProcessPoolExecutor] = None
_reusable_key: Any = None


def get_reusable_executor(max_workers: Optional[int] = None, *, mp_context: Any = None,
                          initializer: Optional[Callable[..., object]] = None,
                          initargs: tuple = (), max_tasks_per_child: Optional[int] = None,
                          task_timeout: Optional[float] = None) -> ProcessPoolExecutor:
    """Returns this process's reusable executor, as loky's function of that
    name keeps one: the same warm ProcessPoolExecutor on every call made
    with the same arguments. A new one replaces it when it was shut down or
    when the arguments differ (the old one then finishes its calls and is
    shut down first).

    Args:
        max_workers: As for ProcessPoolExecutor; None: as many as the
            machine has processors.
        mp_context: As for ProcessPoolExecutor.
        initializer: As for ProcessPoolExecutor.
        initargs: As for ProcessPoolExecutor.
        max_tasks_per_child: As for ProcessPoolExecutor.
        task_timeout: As for ProcessPoolExecutor.

    Returns:
        A running ProcessPoolExecutor, shared by every caller in this
        process that asks for the same arguments.
    """
    global _reusable, _reusable_key
    ctx = _gomp_context(mp_context)
    key = (_cpu_count() if max_workers is None else operator.index(max_workers),
           ctx.get_start_method(), initializer, tuple(initargs), max_tasks_per_child,
           _pool._check_task_timeout(task_timeout))
    with _reusable_lock:
        ex = _reusable
        if ex is not None and not ex._shutdown_thread and _reusable_key == key:
            return ex
        if ex is not None:
            ex.shutdown(wait=True)
        _reusable = None
        ex = ProcessPoolExecutor(key[0], ctx, initializer, initargs,
                                 max_tasks_per_child=max_tasks_per_child,
                                 task_timeout=task_timeout)
        _reusable, _reusable_key = ex, key
        return ex

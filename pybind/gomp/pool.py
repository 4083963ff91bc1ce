"""Process pools: the stdlib's ``multiprocessing.pool`` API.

Transport. Each worker has its own task queue and all share one result
queue; both are the queues area's shared-memory rings (one copy into shared
memory and one out; no pipe, lock or feeder thread on the way when there is
room). A record on the result queue starts with the sending worker's id, so
even results that cannot be loaded in the parent fail the right tasks.

Scheduling, in the parent. The parent chooses which worker gets which task:
the least loaded one, which holds at most two messages (the one it runs and
the next, so it never waits for the parent between two). Tasks that arrive
while every worker is busy wait in the parent and leave together: a message
is a run of calls of one function, as many as take about half a millisecond
by what that function has taken so far, and a single call while that is not
known, so a long task never holds back short ones in its own message. A
message queued behind one that runs longer than 2 ms is taken back out of
its ring and given to an idle worker. All of this is done in the threads
that submit tasks and in the result handler; nothing on the per-task path
calls into Go.

Supervision, in Go. The Go core (gomp/pool.go) watches every worker's exit
sentinel in an epoll set, and the moment a worker ends the pool learns of it
through the result stream, after the last result that worker sent. The
tasks that worker had taken fail with :class:`WorkerLostError` (``map``
raises it, ``get()`` raises it, ``error_callback`` receives it), the tasks
still queued for it go to other workers, and a replacement starts; the
stdlib's pool hangs instead. Workers that keep dying before they start (a
failing initializer) make the pool fail its tasks instead of respawning
them forever.

Other differences from the stdlib, where it is undefined or hangs:

* lambdas, closures and functions of an interactive ``__main__`` can be
  used as tasks (they travel by value);
* ``terminate()`` (and leaving a ``with`` block) kills the workers at once
  and fails the results still outstanding instead of leaving ``get()``
  waiting forever;
* workers ignore SIGINT: Ctrl-C interrupts the parent, which terminates
  them when it leaves the ``with`` block.

Results are pickled as the stdlib pickles them (by reference), so a result
that cannot be (a lambda of a module's, a lock) fails its task with
:class:`MaybeEncodingError`; only functions and classes of the parent's
``__main__`` travel back by value where they must, as they came.

The stdlib's internals that tests and libraries reach into exist with its
meaning: ``Pool._pool`` (the worker Process objects), ``_processes``,
``_state``, ``_cache``, ``_repopulate_pool()``, and the module's ``worker``
loop for callers that run it over queues of their own.
"""
from __future__ import annotations

import collections
import functools
import io
import itertools
import os
import pickle
# the C half of the stdlib's queue module: a script named queue.py next to
# the user's program hides the stdlib's queue, not this
from queue import Empty as _Empty, SimpleQueue as _SimpleQueue
import signal
import struct
import threading
import time
import types
import weakref


def _traceback() -> types.ModuleType:
    # imported where an error is reported: it costs milliseconds at start-up
    import traceback
    return traceback


# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator, List, Optional
    from ._progress import ProgressArg

from . import context
from . import reduction
from . import util
from ._layout import MSG_RAW_MEMORYVIEW as _RAW_MEMORYVIEW
from ._gomp import pool_pack as _pool_pack, pool_unpack as _pool_unpack, \
    pool_unpack_into as _pool_unpack_into, defer_interrupts as _defer_interrupts, \
    release_interrupts as _release_interrupts
from .connection import wait
from .context import ProcessError, TimeoutError

__all__ = ["Pool", "ThreadPool", "TaskTimeoutError"]

INIT = "INIT"
RUN = "RUN"
CLOSE = "CLOSE"
TERMINATE = "TERMINATE"

job_counter = itertools.count()

# the default context's, as the stdlib's pool module has it
get_context = context._default_context.get_context

# kinds of task: func(*args, **kwds); list(map(func, chunk)); starmap
_APPLY, _MAP, _STARMAP = 0, 1, 2
# added to a kind: the task has a timeout, and its worker reports when it
# starts each call (see _run_timed); such a task travels alone
_TIMED = 4
_NO_KWDS: dict = {}  # shared by imap's tasks; only ever unpacked

# records on the result queue that do not come from a worker
_DIED, _STOP, _WAKE = -1, -2, -3

# messages a worker holds: the one it runs and the next, so that it never
# waits for the parent between two
_INFLIGHT = 2
# tasks that wait are sent together, about this much work per message
_MESSAGE_WORK = 0.0005
# and at most this many (a function measured as free would fill thousands)
_MAX_BATCH = 256
# the least a call is taken to cost (seconds), so that none divides by zero
_MIN_COST = 1e-7
# A function's cost estimate: a slower call raises it at most _EST_RISE-fold
# per sample; a faster one lowers it _EST_FALL of the way.
_EST_RISE = 4
_EST_FALL = 0.3
_EST_KEEP = 1 - _EST_FALL  # 0.7 exactly
# functions whose cost is remembered; past that the estimates start over (a
# program that makes a function per call would grow them for ever)
_MAX_ESTIMATES = 4096
# a message queued behind one that has run this long (seconds; messages are
# sized to take well under it) is taken back and given to an idle worker
_STEAL_PATIENCE = 0.002
# while messages wait behind running ones, the result thread looks this
# often (seconds) for one to take back
_STEAL_CHECK = 0.02
# the result thread's pause after an unexpected error, so that a lasting
# one does not spin a CPU (seconds)
_HANDLER_ERROR_PAUSE = 0.01
# imap: a container's tasks are submitted in groups of this many, or of what
# came in this long (seconds), whichever is first; an iterator's one by one
_SUBMIT_GROUP = 64
_SUBMIT_WAIT = 0.0005
# workers that end before they start: this many more than the pool's size
# in a row and the pool fails its tasks instead of starting more
_START_FAILURES_SPARE = 2
# a dead worker's queue is drained for at most this long (seconds), waiting
# at most _DRAIN_WAIT at a time, to unblock this process's feeder thread
_DRAIN_TIMEOUT = 1.0
_DRAIN_WAIT = 0.05
# terminate(): workers get this long (seconds) to end on SIGTERM, then are
# killed; a thread or a killed worker gets _JOIN_TIMEOUT to be joined
_TERM_GRACE = 1.0
_JOIN_TIMEOUT = 5.0
# per-task timeouts: a worker whose task ran past its timeout gets SIGTERM,
# and SIGKILL this long (seconds) after if it has not ended; while a timed
# task waits to start, the result thread looks this often (seconds) whether
# it has started
_KILL_GRACE = 0.2
_TIMEOUT_POLL = 0.01
# An executor's caller that waits for a result reads the result stream
# itself (see Pool._await): the result thread steps aside, looking this
# often (seconds) whether callers still read, and takes the stream back once
# none has for as long; while one caller waits long, it looks less often, at
# most _DIRECT_REST_MAX apart. A caller that asked the result thread to let
# go looks at its own result at least _HANDOFF_SLICE apart meanwhile.
_DIRECT_LINGER = 0.001
_DIRECT_REST_MAX = 0.05
_HANDOFF_SLICE = 0.005


def mapstar(args: Any) -> list:
    return list(map(*args))


def starmapstar(args: Any) -> list:
    return list(itertools.starmap(args[0], args[1]))


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as text; set as
    the ``__cause__`` of the exception re-raised in the parent."""

    def __init__(self, tb: str) -> None:
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class ExceptionWithTraceback:
    """An exception with its traceback, pickled so that the receiver gets
    the exception with a RemoteTraceback as its cause."""

    def __init__(self, exc: BaseException, tb: Any) -> None:
        text = "".join(_traceback().format_exception(type(exc), exc, tb))
        self.exc = exc
        self.tb = '\n"""\n%s"""' % text

    def __reduce__(self) -> Any:
        return rebuild_exc, (self.exc, self.tb)


def rebuild_exc(exc: BaseException, tb: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(tb)
    return exc


class MaybeEncodingError(Exception):
    """Wraps possible unpickleable errors, so they can be
    safely sent through the socket."""

    def __init__(self, exc: Any, value: Any) -> None:
        self.exc = repr(exc)
        self.value = repr(value)
        super().__init__(self.exc, self.value)

    def __str__(self) -> str:
        return "Error sending result: '%s'. Reason: '%s'" % (self.value, self.exc)

    def __repr__(self) -> str:
        return "<%s: %s>" % (self.__class__.__name__, self)


class WorkerLostError(ProcessError):
    """A pool worker ended (killed, crashed or exited) while it held the
    task; ``pid`` and ``exitcode`` say which worker and how it ended."""

    def __init__(self, pid: Optional[int], exitcode: Optional[int]) -> None:
        self.pid = pid
        self.exitcode = exitcode
        super().__init__(pid, exitcode)

    def __str__(self) -> str:
        how = "exit code %s" % self.exitcode
        if isinstance(self.exitcode, int) and self.exitcode < 0:
            try:
                how += " (%s)" % signal.Signals(-self.exitcode).name
            except ValueError:
                pass
        return "pool worker (pid %s) ended with %s while running this task" % (self.pid, how)

    def __reduce__(self) -> Any:
        return type(self), (self.pid, self.exitcode)


class TaskTimeoutError(TimeoutError):
    """A task ran longer than its timeout (``timeout=`` of ``apply_async``,
    ``map``, ``imap``...): its worker was killed and replaced. A
    ``multiprocessing.TimeoutError``; ``timeout`` is the bound in
    seconds, ``pid`` the worker's, ``item`` the call's index in its chunk
    (None for ``apply``)."""

    def __init__(self, timeout: float, pid: Optional[int], item: Optional[int] = None) -> None:
        self.timeout = timeout
        self.pid = pid
        self.item = item
        super().__init__(timeout, pid, item)

    def __str__(self) -> str:
        what = "the task" if self.item is None else "call %d of the chunk" % self.item
        return "%s ran longer than its timeout of %g s: its worker (pid %s) was killed" % (
            what, self.timeout, self.pid)

    def __reduce__(self) -> Any:
        return type(self), (self.timeout, self.pid, self.item)


def _check_task_timeout(timeout: Any) -> Optional[float]:
    """timeout as a positive float, or None (also for an infinite one)."""
    if timeout is None:
        return None
    import numbers
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError("timeout must be a number of seconds or None, not %r"
                        % type(timeout).__name__)
    value = float(timeout)
    if not value > 0:
        raise ValueError("timeout must be a positive number of seconds, not %r" % (timeout,))
    return None if value == float("inf") else value


def worker(inqueue: Any, outqueue: Any, initializer: Optional[Callable] = None,
           initargs: Iterable[Any] = (), maxtasks: Optional[int] = None,
           wrap_exception: bool = False) -> None:
    """The stdlib's pool worker loop, for code that runs it over queues of
    its own (torch's pool does): take ``(job, i, func, args, kwds)`` tasks
    from inqueue until None, EOF or maxtasks tasks, and put
    ``(job, i, (success, value))`` on outqueue. gomp's own pools do not use
    it (their workers take messages of several tasks from rings)."""
    if maxtasks is not None and not (isinstance(maxtasks, int) and maxtasks >= 1):
        raise AssertionError("Maxtasks {!r} is not valid".format(maxtasks))
    put = outqueue.put
    get = inqueue.get
    if hasattr(inqueue, "_writer"):
        # the ends this process does not use, as the stdlib's worker does
        inqueue._writer.close()
        outqueue._reader.close()
    if initializer is not None:
        initializer(*initargs)
    completed = 0
    while maxtasks is None or completed < maxtasks:
        try:
            task = get()
        except (EOFError, OSError):
            util.debug("worker got EOFError or OSError -- exiting")
            break
        if task is None:
            util.debug("worker got sentinel -- exiting")
            break
        job, i, func, args, kwds = task
        try:
            result = (True, func(*args, **kwds))
        except Exception as e:
            if wrap_exception and func is not _helper_reraises_exception:
                e = ExceptionWithTraceback(e, e.__traceback__)  # type: ignore[assignment]
            result = (False, e)
        try:
            put((job, i, result))
        except Exception as e:
            wrapped = MaybeEncodingError(e, result[1])
            util.debug("Possible encoding error while sending result: %s" % wrapped)
            put((job, i, (False, wrapped)))
        # nothing of this task stays alive while the next one is awaited
        task = job = result = func = args = kwds = None
        completed += 1
    util.debug("worker exiting after %d tasks" % completed)


def _helper_reraises_exception(ex: BaseException) -> None:
    """Raise ex: a picklable task that fails with the exception an
    iterable raised (the stdlib sends it to report such an error)."""
    raise ex


class _PoolCache(dict):
    """A pool's outstanding results by job number. As the stdlib's, it puts
    None on ``notifier`` (when there is one) each time ``del`` empties it;
    gomp's pools need no notice and have none."""

    def __init__(self, /, *args: Any, notifier: Any = None, **kwds: Any) -> None:
        self.notifier = notifier
        super().__init__(*args, **kwds)

    def __delitem__(self, item: Any) -> None:
        super().__delitem__(item)
        if not self and self.notifier is not None:
            self.notifier.put(None)


# ---------------------------------------------------------------- pickling

_HIGHEST = pickle.HIGHEST_PROTOCOL


def _dumps(obj: Any) -> bytes:
    """Pickle obj for a worker (see reduction.transport_dumps)."""
    return reduction.transport_dumps(obj, _HIGHEST)


_ResultPickler: Any = None
# where results may hold functions and classes the by-value pickler
# handles: the parent's main module, and the builtin types it names by
# reference in its own way (CodeType, NoneType...)
_PICKLED_AS_TASKS = ("__main__", "__mp_main__", "builtins")


def _dumps_result(obj: Any) -> bytes:
    """Pickle a worker's result as the stdlib would (by reference, with the
    reducers registered for connections, locks and the like), except that
    functions and classes of the parent's __main__ go by value where they
    must, as they came: what else cannot be found by reference fails."""
    global _ResultPickler
    if reduction.plain_pickle_ok():
        try:
            return pickle.dumps(obj, _HIGHEST)
        except Exception:
            pass
    if _ResultPickler is None:
        base = type(reduction.ForkingPickler(io.BytesIO(), _HIGHEST))

        class _ResultPickler(base):  # type: ignore[no-redef,valid-type,misc]
            def reducer_override(self, obj: Any) -> Any:
                if ((type(obj) is types.FunctionType or isinstance(obj, type))
                        and getattr(obj, "__module__", None) not in _PICKLED_AS_TASKS):
                    return NotImplemented  # by reference, or fail
                return super().reducer_override(obj)
    buf = io.BytesIO()
    _ResultPickler(buf, _HIGHEST).dump(obj)
    return buf.getvalue()


# ------------------------------------------------------------ worker side

# a worker's clock: [start, job, i, call], doubles in a heap block (a
# memoryview: sharedctypes would cost each worker the import of ctypes, 4 ms
# of its start): when its timed task's current call started
# (time.monotonic(); 0.0 between calls), which task, which call of its
# chunk. The parent reads it to kill a call that runs too long.
_clock: Any = None
_CLOCK_SIZE = 4 * 8


def _clock_view(block: Any) -> Any:
    return block.create_memoryview().cast("d")


def _run_timed(job: int, i: int, kind: int, func: Callable, args: Any, kwds: Any) -> Any:
    """Run a timed task, recording each call's start in the clock."""
    clock, now = _clock, time.monotonic
    clock[1], clock[2] = float(job), float(i)
    try:
        if kind == _APPLY:
            clock[3] = 0.0
            clock[0] = now()
            return func(*args, **kwds)
        out = []
        for k, x in enumerate(args):
            clock[0] = 0.0  # the reader must not pair this start with the last call
            clock[3] = float(k)
            clock[0] = now()
            out.append(func(*x) if kind == _STARMAP else func(x))
        return out
    finally:
        clock[0] = 0.0


# a worker of a pool without worker_state=True: its tasks get no state
_NO_STATE = object()


def _worker_state(initializer: Optional[Callable], initargs: tuple, worker_state: bool) -> Any:
    """Run the initializer in a starting worker; the state the worker's
    tasks get as their ``worker_state`` keyword: the initializer's return
    value, a new dict without an initializer, or _NO_STATE (no keyword)
    unless the pool has worker_state=True."""
    value = initializer(*initargs) if initializer is not None else {}
    return value if worker_state else _NO_STATE


def _run(tasks: Iterable[tuple], wrap: bool, state: Any = _NO_STATE) -> list:
    """Run a message's tasks; [(job, i, success, value), ...]. A state
    other than _NO_STATE is passed to each call as ``worker_state=``."""
    out: Optional[list] = []
    try:
        for job, i, kind, func, args, kwds in tasks:
            try:
                if state is not _NO_STATE:
                    func = functools.partial(func, worker_state=state)
                if kind == _APPLY:
                    value = func(*args, **kwds)
                elif kind == _MAP:
                    value = list(map(func, args))
                elif kind == _STARMAP:
                    value = list(itertools.starmap(func, args))
                else:
                    value = _run_timed(job, i, kind - _TIMED, func, args, kwds)
                out.append((job, i, True, value))  # type: ignore[union-attr]
            except Exception as e:
                if wrap:
                    e = ExceptionWithTraceback(e, e.__traceback__)  # type: ignore[assignment]
                out.append((job, i, False, e))  # type: ignore[union-attr]
            func = args = kwds = value = None
        return out  # type: ignore[return-value]
    finally:
        # an exception's traceback keeps this frame (the frames it went
        # through refer to their callers): it must not keep every task and
        # result of the message alive with it
        tasks = out = None  # type: ignore[assignment]


# ------------------------------------------------------------ chunks

# A chunk of map() of at least this many core-type items (ints, floats,
# str, bytes, tuples of those) travels as one blob of the C codec
# (_gomp_pool.c) inside the message's pickle, both ways: pickle's per-item
# dispatch was most of what a worker spent on a chunk besides the calls,
# and most of what the parent's result thread spent.
_PACK_MIN = 32


class _Packed:
    """A chunk of results as a blob; the parent unpacks it in place, into
    the list that map() returns."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> Any:
        return _Packed, (self.data,)


class _PackedArgs(_Packed):
    """A chunk of arguments as a blob: a list again as the worker loads
    its message."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return _pool_unpack, (self.data,)


def _pack_args(tasks: list) -> list:
    """tasks, with the argument chunks of map tasks packed where they can
    (None, the workers' signal to stop, as it is)."""
    if tasks is None:
        return tasks
    out = tasks
    for k, t in enumerate(tasks):
        args = t[4]
        if t[2] % _TIMED != _APPLY and type(args) in (list, tuple) and len(args) >= _PACK_MIN:
            data = _pool_pack(args)
            if data is not None:
                if out is tasks:
                    out = list(tasks)
                out[k] = (t[0], t[1], t[2], t[3], _PackedArgs(data), t[5])
    return out


def _pack_results(results: list) -> None:
    """Pack the lists among a message's results where they can be."""
    for k, (job, i, ok, value) in enumerate(results):
        if ok and type(value) is list and len(value) >= _PACK_MIN:
            data = _pool_pack(value)
            if data is not None:
                results[k] = (job, i, ok, _Packed(data))


# a record on the result queue: this header, then a pickle. The header
# says which worker it is from even when the pickle cannot be loaded.
_HEADER = struct.Struct("<id")


def _record(wid: int, elapsed: float, body: bytes = b"") -> memoryview:
    return memoryview(_HEADER.pack(wid, elapsed) + body)


def _encode_results(results: list) -> bytes:
    """Pickle a message's results; one that cannot be pickled becomes a
    MaybeEncodingError, as in the stdlib, and fails its task only."""
    dumps = _dumps_result
    _pack_results(results)
    try:
        return dumps(results)
    except Exception:
        fixed = []
        for job, i, ok, value in results:
            try:
                dumps(value)
            except Exception as e:
                ok, value = False, MaybeEncodingError(e, value)
            fixed.append((job, i, ok, value))
        return dumps(fixed)


def _worker(wid: int, inqueue: Any, outqueue: Any, initializer: Optional[Callable],
            initargs: tuple, maxtasks: Optional[int], clock: Any = None,
            worker_state: bool = False) -> None:
    """The loop of a pool worker process."""
    global _clock
    _clock = None if clock is None else _clock_view(clock)
    # the parent handles Ctrl-C and ends its workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = _worker_state(initializer, initargs, worker_state)
    get, put, loads, clock = inqueue.get, outqueue.put, pickle.loads, time.perf_counter
    put(_record(wid, 0.0))  # started: an empty record
    completed = 0
    while maxtasks is None or completed < maxtasks:
        data = get()
        tasks = loads(data)
        del data
        if tasks is None:
            break
        t0 = clock()
        completed += len(tasks)
        results = _run(tasks, True, state)
        tasks = None
        body = _encode_results(results)
        put(_record(wid, clock() - t0, body))
        body = None
        results = None
    util.debug("worker exiting after %d tasks" % completed)


# ------------------------------------------------------------ parent side

_FunctionType = types.FunctionType


def _cost_key(func: Any) -> Any:
    """What the pool keeps a function's cost under: its code, not the
    function, so that the pool keeps no closure, partial or bound method
    (nor what they hold) alive once their tasks are done."""
    t = type(func)
    if t is _FunctionType:
        return func.__code__
    if t is types.MethodType:
        return _cost_key(func.__func__)
    if t is functools.partial:
        return _cost_key(func.func)
    if t is types.BuiltinFunctionType:  # and builtin methods, bound
        owner = func.__self__
        if owner is None or type(owner) is types.ModuleType:
            return func
        return (type(owner), func.__name__)
    if isinstance(func, type):
        return func
    return t  # a callable object: by its class


class _Worker:
    """The parent's view of one worker: its queue and what it holds."""

    __slots__ = ("wid", "process", "queue", "inflight", "sent", "dead", "pid", "last",
                 "started", "clock", "clock_block", "kill_at", "timed_out")

    def __init__(self, wid: int) -> None:
        self.wid = wid
        self.process: Any = None
        self.queue: Any = None
        # messages sent and not answered, oldest first: (tasks, cost cell)
        self.inflight: "collections.deque" = collections.deque()
        self.sent = 0
        self.dead = False
        self.pid: Optional[int] = None
        self.last = 0.0  # when it last started a message (about)
        self.started = False  # it ran the initializer and waits for tasks
        self.clock: Any = None  # where it says when its timed call started
        self.clock_block: Any = None  # the heap block under clock, kept while it lives
        self.kill_at: Optional[float] = None  # killed for a timeout: SIGKILL then
        # the timed-out task's (job, i) and its error
        self.timed_out: Optional[tuple] = None


_waitlock = threading.Lock()


class ApplyResult:
    """The result of ``Pool.apply_async()``."""

    _task_timeout: Optional[float] = None  # each call's bound (timeout=)

    def __init__(self, pool: "Pool", callback: Optional[Callable],
                 error_callback: Optional[Callable]) -> None:
        self._pool: Any = pool
        self._ready = False
        self._waiters: Optional[list] = None
        self._job = next(job_counter)
        self._cache = pool._cache
        self._callback = callback
        self._error_callback = error_callback
        self._cache[self._job] = self

    def ready(self) -> bool:
        """Return whether the call has completed."""
        return self._ready

    def successful(self) -> bool:
        """Return whether the call completed without raising an exception.
        Raises ValueError if the result is not ready."""
        if not self._ready:
            raise ValueError("{0!r} not ready".format(self))
        return self._success

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait until the result is available or until timeout seconds pass."""
        if self._ready:
            return
        with _waitlock:
            if self._ready:
                return
            lock = threading.Lock()
            lock.acquire()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(lock)
        if timeout is None:
            lock.acquire()
        elif timeout > 0:
            lock.acquire(True, timeout)

    def get(self, timeout: Optional[float] = None) -> Any:
        """Return the result when it arrives. If timeout is not None and the
        result does not arrive within timeout seconds then
        multiprocessing.TimeoutError is raised. If the remote call raised an
        exception then that exception will be reraised by get()."""
        self.wait(timeout)
        if not self._ready:
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _notify(self) -> None:
        with _waitlock:
            self._ready = True
            waiters, self._waiters = self._waiters, None
        if waiters:
            for lock in waiters:
                lock.release()

    def _set(self, i: int, obj: tuple) -> None:
        self._success, self._value = obj
        self._complete()

    def _complete(self) -> None:
        """Run the outcome's callback, then make the result ready: also when
        the callback raises (the stdlib's result thread dies there, and
        every get() waits for ever)."""
        callback = self._callback if self._success else self._error_callback
        try:
            if callback:
                callback(self._value)
        finally:
            self._done_setting()

    def _done_setting(self) -> None:
        self._notify()
        self._cache.pop(self._job, None)
        self._pool = None

    __class_getitem__ = classmethod(types.GenericAlias)


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of ``Pool.map_async()`` and ``Pool.starmap_async()``."""

    def __init__(self, pool: "Pool", chunksize: int, length: int,
                 callback: Optional[Callable], error_callback: Optional[Callable]) -> None:
        ApplyResult.__init__(self, pool, callback, error_callback=error_callback)
        self._success = True
        self._value: Any = [None] * length
        self._chunksize = chunksize
        if chunksize <= 0:
            self._number_left = 0
            self._done_setting()
        else:
            self._number_left = length // chunksize + bool(length % chunksize)

    def _set(self, i: int, success_result: tuple) -> None:
        self._number_left -= 1
        success, result = success_result
        if success and self._success:
            if type(result) is _Packed:
                try:
                    _pool_unpack_into(result.data, self._value, i * self._chunksize)
                except Exception as e:
                    success, result = False, e
            else:
                self._value[i * self._chunksize:(i + 1) * self._chunksize] = result
        if not success and self._success:
            # only the first exception is kept
            self._success = False
            self._value = result
        if self._number_left == 0:
            # ready only once every chunk has come back
            self._complete()


class IMapIterator:
    """The iterator returned by ``Pool.imap()``."""

    _task_timeout: Optional[float] = None  # each call's bound (timeout=)

    def __init__(self, pool: "Pool") -> None:
        self._pool: Any = pool
        self._cond = threading.Condition(threading.Lock())
        self._job = next(job_counter)
        self._cache = pool._cache
        self._items: "collections.deque" = collections.deque()
        self._index = 0
        self._length: Optional[int] = None
        self._unsorted: dict = {}
        self._cache[self._job] = self

    def __iter__(self) -> "IMapIterator":
        return self

    def next(self, timeout: Optional[float] = None) -> Any:
        """Return the next result, waiting at most timeout seconds for it
        (multiprocessing.TimeoutError when it does not come)."""
        with self._cond:
            try:
                item = self._items.popleft()
            except IndexError:
                if self._index == self._length:
                    self._pool = None
                    raise StopIteration from None
                self._cond.wait(timeout)
                try:
                    item = self._items.popleft()
                except IndexError:
                    if self._index == self._length:
                        self._pool = None
                        raise StopIteration from None
                    raise TimeoutError from None
        success, value = item
        if success:
            return value
        raise value

    __next__ = next

    def _set(self, i: int, obj: tuple) -> None:
        with self._cond:
            if self._index == i:
                self._items.append(obj)
                self._index += 1
                while self._index in self._unsorted:
                    self._items.append(self._unsorted.pop(self._index))
                    self._index += 1
                self._cond.notify()
            else:
                self._unsorted[i] = obj
            if self._index == self._length:
                self._cache.pop(self._job, None)
                self._pool = None

    def _set_many(self, items: list) -> None:
        """_set() for several results, waking the reader once."""
        with self._cond:
            n = len(self._items)
            for i, obj in items:
                if self._index == i:
                    self._items.append(obj)
                    self._index += 1
                    while self._index in self._unsorted:
                        self._items.append(self._unsorted.pop(self._index))
                        self._index += 1
                else:
                    self._unsorted[i] = obj
            if len(self._items) > n:
                self._cond.notify(len(self._items) - n)
            if self._index == self._length:
                self._cache.pop(self._job, None)
                self._pool = None

    def _set_length(self, length: int) -> None:
        with self._cond:
            self._length = length
            if self._index == self._length:
                self._cond.notify()
                self._cache.pop(self._job, None)
                self._pool = None


class IMapUnorderedIterator(IMapIterator):
    """The iterator returned by ``Pool.imap_unordered()``."""

    def _set_many(self, items: list) -> None:
        with self._cond:
            self._items.extend(obj for _i, obj in items)
            self._index += len(items)
            self._cond.notify(len(items))
            if self._index == self._length:
                self._cache.pop(self._job, None)
                self._pool = None

    def _set(self, i: int, obj: tuple) -> None:
        with self._cond:
            self._items.append(obj)
            self._index += 1
            self._cond.notify()
            if self._index == self._length:
                self._cache.pop(self._job, None)
                self._pool = None


class Pool:
    """Class which supports an async version of applying functions to arguments."""

    _wrap_exception = True
    _pack_chunks = True  # a process pool sends map's chunks packed where it can

    @staticmethod
    def Process(ctx: Any, *args: Any, **kwds: Any) -> Any:
        return ctx.Process(*args, **kwds)

    def __init__(self, processes: Optional[int] = None, initializer: Optional[Callable] = None,
                 initargs: Iterable[Any] = (), maxtasksperchild: Optional[int] = None,
                 context: Any = None, *, worker_state: bool = False) -> None:
        """The stdlib's arguments, and gomp's: with ``worker_state=True``
        each worker keeps what ``initializer(*initargs)`` returns (a new
        dict when there is no initializer) and passes it to every task it
        runs as the keyword argument ``worker_state``."""
        # what __del__ and terminate() look at exists before anything can fail
        self._pool: List[Any] = []
        self._state = INIT
        self._threads: List[threading.Thread] = []
        self._workers: "dict[int, _Worker]" = {}
        self._ctx = context or _default_context()
        self._cache = _PoolCache()
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._worker_state = bool(worker_state)
        if processes is None:
            # 3.13: the CPUs this process may use (PYTHON_CPU_COUNT, affinity)
            processes = getattr(os, "process_cpu_count", os.cpu_count)() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        self._lock = threading.RLock()
        self._pending: "collections.deque" = collections.deque()
        self._wid = itertools.count(1)
        # what a function takes per call, about: _cost_key(func) -> [seconds]
        self._est: dict = {}
        self._taskqueue: Any = None
        # who reads the result stream: the result thread, or a caller
        # waiting for its result (_await)
        self._reading = threading.Lock()
        self._reader: Optional[int] = None  # the thread that holds it
        self._callers: "set[int]" = set()  # threads that read or wait to
        self._result_thread: Optional[int] = None
        self._direct_until = 0.0
        self._direct_epoch = 0  # callers that have read, counted
        self._reader_rest = 0.0  # how long the result thread rests now
        self._reader_wake = threading.Event()
        self._stream_ended = False
        self._setup()
        try:
            # not through a subclass's override: those written for the
            # stdlib's pool start its worker() on its queues, which gomp's
            # pool does not have (torch's pool works on gomp's transport)
            Pool._repopulate_pool(self)
        except Exception:
            self._terminate_now()
            raise
        self._state = RUN
        self._start_threads()
        self._finalizer = util.Finalize(self, self._terminate_now, exitpriority=15)

    # -- the transport (ThreadPool overrides these)

    def _setup(self) -> None:
        from . import _core, queues
        self._go = _core.go()
        self._outqueue = queues.Queue()
        get_many = self._outqueue.get_many

        def get_results(timeout: Optional[float]) -> list:
            try:
                return get_many(None, True, timeout)
            except _Empty:
                return []
        self._get_results = get_results
        self._sup = self._go.supervisor_new()
        self._stop_r, self._stop_w = os.pipe()
        self._go.supervisor_watch(self._sup, self._stop_r, 0)

    def _encode(self, tasks: list) -> Any:
        return _dumps(_pack_args(tasks))

    def _decode(self, item: Any) -> tuple:
        """A result record -> (wid, elapsed, body): body is the results,
        None when the worker says it started, the arguments of a record
        from the parent, or the exception raised loading the results."""
        wid, elapsed = _HEADER.unpack_from(item)
        if len(item) == _HEADER.size:
            return wid, elapsed, None
        try:
            return wid, elapsed, pickle.loads(memoryview(item)[_HEADER.size:])
        except Exception as e:
            return wid, elapsed, e

    def _new_worker(self, w: _Worker) -> None:
        from . import queues
        w.queue = queues.Queue()
        if isinstance(self._ctx, context.BaseContext):
            # another library's context could not pass it to the worker
            from .heap import BufferWrapper
            block = w.clock_block = BufferWrapper(_CLOCK_SIZE)
            w.clock = _clock_view(block)
        else:
            block = None
        p = self.Process(self._ctx, target=_worker, daemon=True,
                         args=(w.wid, w.queue, self._outqueue, self._initializer,
                               self._initargs, self._maxtasksperchild, block,
                               self._worker_state))
        p.name = p.name.replace("Process", "PoolWorker")
        try:
            p.start()
        except BaseException:
            # no one else holds the queue: its ring goes with it
            w.queue.close()
            w.queue = None
            raise
        w.process = p
        w.pid = getattr(p, "pid", None)
        # a Popen keeps its child's descriptors until closed: close them
        # when the pool lets go of the worker's process object
        # (not at exit: the pool's own finalizer still needs them then)
        popen = getattr(p, "_popen", None)
        if popen is not None:
            weakref.finalize(p, _close_popen, popen).atexit = False
        # a Process-like object of someone else's may have no sentinel (as
        # in the stdlib, it is then not watched)
        sentinel = getattr(p, "sentinel", None)
        if sentinel is not None:
            self._go.supervisor_watch(self._sup, sentinel, w.wid)

    def _send(self, w: _Worker, data: Any) -> None:
        # as put(memoryview(data)) encodes it: the bytes as they are
        w.queue._put_encoded(_RAW_MEMORYVIEW, (b"", memoryview(data)))

    def _post(self, kind: int, *args: Any) -> None:
        self._outqueue.put(_record(kind, 0.0, pickle.dumps(args)))

    # -- workers

    def _add_worker(self) -> _Worker:
        w = _Worker(next(self._wid))
        try:
            self._new_worker(w)
        finally:
            # a worker that started and then failed (to be watched, say)
            # must still be ended by terminate()
            if w.process is not None:
                with self._lock:
                    self._workers[w.wid] = w
                    self._pool.append(w.process)
        with self._lock:
            self._feed(w)
        return w

    def _repopulate_pool(self) -> None:
        """Bring the number of pool processes up to the specified number
        (``_processes``). gomp's pool replaces a worker the moment it ends,
        so this only matters to code that removed workers itself."""
        with self._lock:
            missing = self._processes - len(self._workers)
        for _ in range(missing):
            self._add_worker()
            util.debug("added worker")

    def _start_threads(self) -> None:
        t = threading.Thread(target=self._handle_results, name="PoolResultHandler", daemon=True)
        self._threads.append(t)
        t.start()
        if self._sup is not None:
            t = threading.Thread(target=self._handle_workers, name="PoolWorkerHandler",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _handle_workers(self) -> None:
        """Wait (in Go) for workers to end; report each in the result
        stream and start its replacement."""
        wait = self._go.supervisor_wait
        while True:
            try:
                ended = wait(self._sup, None)
            except Exception:
                if self._state == TERMINATE:
                    return
                raise
            for wid in ended:
                if wid == 0:
                    return
                with self._lock:
                    w = self._workers.get(wid)
                    if w is None or w.dead:
                        continue
                    w.dead = True
                try:
                    self._go.supervisor_unwatch(self._sup, w.process.sentinel)
                except (OSError, ValueError):
                    pass
                code = w.process.exitcode
                # after the last result the worker sent; the result
                # handler fails what it held and replaces it
                self._post(_DIED, wid, w.pid, code)

    # -- dispatch

    def _pick(self) -> Optional[_Worker]:
        """The least loaded worker that may take another message (lock held)."""
        best = None
        maxtasks = self._maxtasksperchild
        for w in self._workers.values():
            n = len(w.inflight)
            if (w.dead or n >= _INFLIGHT or w.kill_at is not None
                    or (maxtasks is not None and w.sent >= maxtasks)):
                continue
            if best is None or n < len(best.inflight):
                best = w
                if n == 0:
                    break
        return best

    def _pump(self) -> None:
        """Send what waits to workers that have room (lock held). Tasks that
        pile up while every worker is busy leave together, as one message."""
        pending = self._pending
        while pending:
            w = self._pick()
            if w is None:
                return
            self._send_batch(w)

    def _feed(self, w: _Worker) -> None:
        """Give w what waits, up to its share (lock held)."""
        maxtasks = self._maxtasksperchild
        while (self._pending and not w.dead and w.kill_at is None
               and len(w.inflight) < _INFLIGHT and (maxtasks is None or w.sent < maxtasks)):
            self._send_batch(w)

    def _send_batch(self, w: _Worker) -> None:
        """Send w the next tasks as one message: a run of calls of one
        function, as many as take about _MESSAGE_WORK by what that function
        took so far (one while it is unknown, so that a long task never
        holds back short ones in the same message)."""
        pending = self._pending
        first = pending.popleft()
        func = first[3]
        key = func.__code__ if type(func) is _FunctionType else _cost_key(func)
        cell = self._est.get(key)
        if cell is None:
            if len(self._est) >= _MAX_ESTIMATES:
                self._est.clear()
            cell = self._est[key] = [None]
        est = cell[0]
        n = 1 if est is None else min(_MAX_BATCH, int(_MESSAGE_WORK / (est + _MIN_COST)))
        if self._maxtasksperchild is not None:
            n = min(n, self._maxtasksperchild - w.sent)
        tasks = [first]
        # a timed task travels alone: its worker may be killed for it
        while (len(tasks) < n and pending and pending[0][3] is func
               and first[2] < _TIMED and pending[0][2] < _TIMED):
            tasks.append(pending.popleft())
        try:
            data = self._encode(tasks)
        except Exception:
            tasks = self._drop_unpicklable(tasks)
            if not tasks:
                return
            data = self._encode(tasks)
        if not w.inflight:
            w.last = time.monotonic()
        w.inflight.append((tasks, cell))
        w.sent += len(tasks)
        self._send(w, data)
        if first[2] >= _TIMED and self._unwatched:
            self._unwatched = False
            self._post(_WAKE)

    def _drop_unpicklable(self, tasks: list) -> list:
        """Fail the tasks that cannot be pickled; the others."""
        good = []
        for t in tasks:
            try:
                self._encode([t])
            except Exception as e:
                self._fail([t], e)
            else:
                good.append(t)
        return good

    def _submit(self, job: Any, tasks: list) -> None:
        """Queue tasks and send what workers have room for."""
        with _interrupts_held():
            with self._lock:
                if self._state == TERMINATE:
                    return  # what was outstanding has been failed already
                if self._broken is not None and not any(
                        not w.dead for w in self._workers.values()):
                    self._fail(tasks, self._broken)
                    return
                self._pending.extend(tasks)
                self._pump()

    # -- results

    def _handle_results(self) -> None:
        wake = self._reader_wake
        reading = self._reading
        me = self._result_thread = threading.get_ident()
        rest, seen = _DIRECT_LINGER, -1
        while not self._stream_ended:
            wake.clear()
            if self._callers or self._direct_until > time.monotonic():
                # a caller reads the stream, or did a moment ago and may
                # again: look again soon, less often while one caller waits
                # long (a caller that leaves results outstanding, or that
                # this thread rested long for, wakes it at once)
                epoch = self._direct_epoch
                if epoch == seen and self._callers:
                    rest = min(2 * rest, _DIRECT_REST_MAX)
                else:
                    rest = _DIRECT_LINGER
                seen = epoch
                self._reader_rest = rest
                wake.wait(rest)
                continue
            self._reader_rest = 0.0
            if not reading.acquire(False):
                wake.wait(_DIRECT_LINGER)
                continue
            try:
                if self._callers:
                    continue
                self._reader = me
                self._read_once(None)
            except Exception:
                if self._state == TERMINATE:
                    return
                util.info("pool result handler: %s" % _traceback().format_exc())
                time.sleep(_HANDLER_ERROR_PAUSE)
            finally:
                self._reader = None
                reading.release()

    def _read_once(self, limit: Optional[float]) -> None:
        """Wait at most limit seconds (None: as long as the pool's own
        clocks allow) for results, and deliver them (the pool's stop record
        sets _stream_ended). The caller holds _reading."""
        with self._lock:
            timeout = _STEAL_CHECK if self._queued_behind() else None
            if self._timed:
                wake = self._check_timeouts()
                if wake is not None and (timeout is None or wake < timeout):
                    timeout = wake
            # a timed task sent meanwhile must wake the reader
            self._unwatched = timeout is None
            if limit is not None and (timeout is None or limit < timeout):
                timeout = limit
        batch = self._get_results(timeout)
        if not batch:
            with self._lock:
                self._steal()
            return
        if not self._deliver(batch):
            return
        # nothing of what was delivered stays alive while this thread
        # waits for the next results (the caller may drop it at once)
        batch = None
        if self._state == CLOSE and not self._cache:
            self._finish()

    def _await(self, ready: Callable[[], bool], deadline: Optional[float]) -> None:
        """Wait for ready() until deadline (time.monotonic(); None: no
        bound) by reading the result stream in this thread: the result then
        reaches its waiter without a second thread's wake-up, which on a
        busy machine is most of a round trip. Returns when ready() is true,
        at the deadline, or when this thread cannot read (the caller then
        waits as usual).

        The result thread steps aside while callers read, and takes the
        stream back once none has for _DIRECT_LINGER. Results of other calls
        are delivered by whichever thread reads, as they arrive, so that
        their callbacks may run in a caller's thread: the executor's futures
        use this (concurrent.futures runs done-callbacks in any thread of
        the process), while the Pool's results, whose callbacks the stdlib
        runs in its result thread, do not."""
        me = threading.get_ident()
        if self._stream_ended or self._reader == me:
            return  # a callback that waits, run by this reader
        result = self._result_thread
        if self._reader not in (None, result):
            return  # another caller reads, and delivers this result too
        reading = self._reading
        callers = self._callers
        # the main thread holds Ctrl-C back (see _gomp_interrupts.c) but in
        # its waits while it holds no results, and after each delivery
        interrupts = _defer_interrupts(False) if me == _main_ident() else _NOTHING_TO_DEFER
        if interrupts == _CANNOT_DEFER:
            _release_interrupts(interrupts)
            return  # a Ctrl-C could cut a delivery short: the result thread reads
        callers.add(me)
        self._direct_epoch += 1
        held = False
        try:
            held = reading.acquire(False)
            if not held:
                # the result thread (or another caller) reads: a record
                # wakes a reader that waits, and the result thread, seeing
                # a caller, lets go
                self._post(_WAKE)
                while not held:
                    if ready() or self._stream_ended or self._reader not in (None, result):
                        return  # or another caller reads: it delivers
                    left = _HANDOFF_SLICE
                    if deadline is not None:
                        left = min(left, deadline - time.monotonic())
                        if left <= 0:
                            return
                    held = reading.acquire(True, left)
            self._reader = me
            while not ready() and not self._stream_ended:
                if deadline is None:
                    limit = None
                else:
                    limit = deadline - time.monotonic()
                    if limit <= 0:
                        return
                self._read_once(limit)
                if interrupts >= 0:
                    _release_interrupts(_DEFERRING)  # delivered: Ctrl-C may raise
        except Exception:
            return  # torn down meanwhile: the pool fails what is left
        finally:
            callers.discard(me)
            others = bool(self._cache) or self._stream_ended
            if held:
                self._reader = None
                # the result thread waits _DIRECT_LINGER for this thread to
                # come back, unless others' results may be on the way
                self._direct_until = 0.0 if others else time.monotonic() + _DIRECT_LINGER
                reading.release()
            if others or self._reader_rest > _DIRECT_LINGER:
                self._reader_wake.set()
            _release_interrupts(interrupts)

    def _deliver(self, batch: list) -> bool:
        """Hand a batch of records from the result stream to the results
        they belong to; False once the pool's stop record is among them.
        (A function of its own so that its locals, which refer to the last
        task and result, go when it returns.)"""
        cache = self._cache
        decode = self._decode
        for item in batch:
            try:
                wid, elapsed, body = decode(item)
                item = None
                if wid >= 0 and body is None:
                    self._started(wid)
                elif wid >= 0:
                    tasks = self._done(wid, elapsed)
                    if isinstance(body, BaseException):
                        # the results cannot be loaded here
                        self._fail(tasks, body)
                        continue
                    streams: Optional[dict] = None
                    for job, i, ok, value in body:
                        obj = cache.get(job)
                        if obj is None:
                            continue
                        if type(value) is _Packed and not isinstance(obj, MapResult):
                            try:
                                value = _pool_unpack(value.data)
                            except Exception as e:
                                ok, value = False, e
                        if isinstance(obj, IMapIterator):
                            # its reader is woken once per message
                            if streams is None:
                                streams = {}
                            streams.setdefault(obj, []).append((i, (ok, value)))
                            continue
                        try:
                            obj._set(i, (ok, value))
                        except Exception:
                            _traceback().print_exc()
                    if streams:
                        for obj, items in streams.items():
                            obj._set_many(items)
                elif wid == _DIED:
                    self._lost(*body)
                elif wid == _WAKE:
                    pass  # a timed task was sent: its clock is watched from now
                else:
                    self._stream_ended = True
                    return False
            except Exception:
                # the handler must go on, or every result waits forever
                _traceback().print_exc()
        return True

    def _done(self, wid: int, elapsed: float) -> list:
        """A message of wid's came back; returns its tasks."""
        with self._lock:
            w = self._workers.get(wid)
            if w is None or not w.inflight:
                return []
            tasks, cell = w.inflight.popleft()
            w.last = time.monotonic()
            per_task = elapsed / len(tasks)
            old = cell[0]
            # quick to rise (a function that turns slow soon stops being
            # batched), but not on one sample: a worker that lost its
            # CPU for a while would otherwise stop all batching
            if old is None:
                cell[0] = per_task
            elif per_task > old:
                cell[0] = min(per_task, _EST_RISE * old)
            else:
                cell[0] = _EST_KEEP * old + _EST_FALL * per_task
            if self._pending:
                self._feed(w)
            elif not w.inflight:
                self._steal()
            return tasks

    def _queued_behind(self) -> bool:
        """Whether some worker has messages waiting behind the one it runs
        (which may be a long one)."""
        for w in self._workers.values():
            if len(w.inflight) > 1 and not w.dead:
                return True
        return False

    _timed = False  # a timed task was submitted: the result thread watches clocks
    _unwatched = False  # the result thread waits with no timeout

    def _check_timeouts(self) -> Optional[float]:
        """Kill the workers whose timed call has run past its timeout (lock
        held); seconds until the next look, None when no timed task is held."""
        now = time.monotonic()
        wake: Optional[float] = None
        for w in self._workers.values():
            if w.dead:
                continue
            if w.kill_at is not None:
                # killed for a timeout, and not seen to end yet
                if now >= w.kill_at:
                    _signal(w.process, "kill")
                    w.kill_at = now + _KILL_GRACE
                left = w.kill_at - now
            else:
                left = self._time_left(w, now)
                if left is None:
                    continue
            if wake is None or left < wake:
                wake = left
        return wake

    def _time_left(self, w: _Worker, now: float) -> Optional[float]:
        """Seconds until w's timed task is overdue (_TIMEOUT_POLL while it has
        not started), None when it holds none; kills w when it is (lock held)."""
        if not any(tasks[0][2] >= _TIMED for tasks, _cell in w.inflight):
            return None
        clock = w.clock
        start, job, i, k = clock[0], clock[1], clock[2], clock[3]
        if start == 0.0 or clock[0] != start:
            return _TIMEOUT_POLL  # between two calls, or not started
        key = (int(job), int(i))
        task = next((tasks[0] for tasks, _cell in w.inflight
                     if (tasks[0][0], tasks[0][1]) == key), None)
        if task is None:
            return _TIMEOUT_POLL  # the last timed task's, or a stale one
        limit = getattr(self._cache.get(key[0]), "_task_timeout", None)
        if limit is None:
            return None
        left = start + limit - now
        if left > 0:
            return left
        item = None if task[2] == _APPLY + _TIMED else int(k)
        w.timed_out = (key, TaskTimeoutError(limit, w.pid, item))
        w.kill_at = now + _KILL_GRACE
        _signal(w.process, "terminate")
        return _KILL_GRACE

    def _steal(self) -> None:
        """Take back the messages queued behind a long-running one and give
        them to idle workers (lock held)."""
        workers = self._workers.values()
        if self._pending or not any(len(v.inflight) >= 2 for v in workers):
            return  # nothing waits behind a running message
        maxtasks = self._maxtasksperchild
        idle = [w for w in workers if not w.dead and not w.inflight
                and w.kill_at is None and (maxtasks is None or w.sent < maxtasks)]
        if not idle:
            return
        now = time.monotonic()
        for v in workers:
            if v.dead or len(v.inflight) < 2 or now - v.last < _STEAL_PATIENCE:
                continue
            k = min(self._take_back(v), len(v.inflight))
            for _ in range(k):
                tasks, _cell = v.inflight.pop()
                v.sent -= len(tasks)
                self._pending.extendleft(reversed(tasks))  # back in their order
        for w in idle:
            if not self._pending:
                break
            self._feed(w)

    def _take_back(self, w: _Worker) -> int:
        """Remove the messages w has not taken yet from its queue; how many."""
        try:
            return len(w.queue.get_many(block=False))
        except _Empty:
            return 0

    def _started(self, wid: int) -> None:
        with self._lock:
            w = self._workers.get(wid)
            if w is not None:
                w.started = True
                self._start_failures = 0

    _start_failures = 0
    _broken: Optional[BaseException] = None

    def _lost(self, wid: int, pid: Optional[int], exitcode: Optional[int]) -> None:
        """A worker ended: fail what it had taken, re-send the rest, and
        start another unless workers keep dying before they start."""
        self._forget(wid, pid, exitcode)
        with self._lock:
            if not (self._state == RUN or (self._state == CLOSE and self._cache)):
                return
            if self._broken is None:
                if len(self._workers) >= self._processes:
                    return
                try:
                    self._add_worker()
                    return
                except Exception as e:
                    self._broken = ProcessError("cannot start a pool worker: %r" % (e,))
            if any(not w.dead for w in self._workers.values()):
                return
            # no worker left, and none can be started: nothing will run
            pending = list(self._pending)
            self._pending.clear()
            err = self._broken
        self._fail(pending, err)
        for obj in list(self._cache.values()):
            _fail_all(obj, err)

    def _fail(self, tasks: list, err: BaseException) -> None:
        for t in tasks:
            job, i = t[0], t[1]
            obj = self._cache.get(job)
            if obj is not None:
                try:
                    obj._set(i, (False, err))
                except Exception:
                    _traceback().print_exc()

    def _forget(self, wid: int, pid: Optional[int], exitcode: Optional[int]) -> None:
        with self._lock:
            w = self._workers.pop(wid, None)
            if w is None:
                return
            if not w.started:
                self._start_failures += 1
                if (self._start_failures >= self._processes + _START_FAILURES_SPARE
                        and self._broken is None):
                    self._broken = ProcessError(
                        "pool workers keep ending before they start (the last, pid %s, "
                        "with exit code %s): see their output; is the initializer "
                        "failing?" % (pid, exitcode))
            try:
                self._pool.remove(w.process)
            except ValueError:
                pass
            untaken = self._untaken(w)
            held = list(w.inflight)
            w.inflight.clear()
            taken, rest = held[:len(held) - untaken], held[len(held) - untaken:]
            if self._state != TERMINATE:
                # untaken tasks go first, in their order
                for tasks, _cell in reversed(rest):
                    self._pending.extendleft(reversed(tasks))
                self._pump()
        self._discard_queue(w)
        err = WorkerLostError(pid, exitcode)
        late = w.timed_out
        for tasks, _cell in taken:
            # a timed task travels alone
            if late is not None and (tasks[0][0], tasks[0][1]) == late[0]:
                self._fail(tasks, late[1])
            else:
                self._fail(tasks, err)
        if w.process is not None and self._sup is not None:
            try:
                w.process.join(0)
                if w.process.exitcode is not None:
                    w.process.close()
            except Exception:
                pass

    def _untaken(self, w: _Worker) -> int:
        try:
            return min(len(w.inflight), w.queue.qsize())
        except Exception:
            return 0

    def _discard_queue(self, w: _Worker) -> None:
        q = w.queue
        if q is None:
            return
        # unblock this process's feeder thread, if it had a backlog
        deadline = time.monotonic() + _DRAIN_TIMEOUT
        try:
            while q.qsize() > 0 and time.monotonic() < deadline:
                try:
                    q.get_many(timeout=_DRAIN_WAIT)
                except Exception:
                    pass
            q.cancel_join_thread()
            q.close()
        except Exception:
            pass

    # -- the public API

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    # timeout= (keyword only; not in the stdlib's pool): each call of func
    # may run that many seconds, counted from its start; past it, its
    # worker is killed and replaced, and the call fails with
    # TaskTimeoutError, a multiprocessing.TimeoutError. Not to be confused
    # with get(timeout) or next(timeout), which only stop waiting.

    def apply(self, func: Callable, args: Iterable[Any] = (), kwds: dict = {}, *,
              timeout: Optional[float] = None) -> Any:
        """Equivalent of `func(*args, **kwds)`.
        Pool must be running. With timeout, a call that runs longer is
        killed with its worker and raises TaskTimeoutError."""
        return self.apply_async(func, args, kwds, timeout=timeout).get()

    def map(self, func: Callable, iterable: Iterable[Any], chunksize: Optional[int] = None, *,
            timeout: Optional[float] = None, progress: ProgressArg = None) -> list:
        """Apply `func` to each element in `iterable`, collecting the results
        in a list that is returned. With timeout, each call that runs
        longer than that many seconds from its start is killed with its
        worker and fails the map with TaskTimeoutError. ``progress=True``
        (or a dict of tqdm options) shows a tqdm bar of the tasks completed,
        drawn by this process (the ``progress`` extra installs tqdm)."""
        return self._map_async(func, iterable, _MAP, chunksize,
                               **_options(timeout, progress)).get()

    def starmap(self, func: Callable, iterable: Iterable[Iterable[Any]],
                chunksize: Optional[int] = None, *, timeout: Optional[float] = None,
                progress: ProgressArg = None) -> list:
        """Like `map()` method but the elements of the `iterable` are expected to
        be iterables as well and will be unpacked as arguments. Hence
        `func` and (a, b) becomes func(a, b). ``timeout`` and ``progress``
        as in `map()`."""
        return self._map_async(func, iterable, _STARMAP, chunksize,
                               **_options(timeout, progress)).get()

    def starmap_async(self, func: Callable, iterable: Iterable[Iterable[Any]],
                      chunksize: Optional[int] = None, callback: Optional[Callable] = None,
                      error_callback: Optional[Callable] = None, *,
                      timeout: Optional[float] = None,
                      progress: ProgressArg = None) -> MapResult:
        """Asynchronous version of `starmap()` method. ``timeout`` and
        ``progress`` as in `map()`; get(timeout) still only bounds the wait."""
        return self._map_async(func, iterable, _STARMAP, chunksize, callback, error_callback,
                               **_options(timeout, progress))

    def apply_async(self, func: Callable, args: Iterable[Any] = (), kwds: dict = {},
                    callback: Optional[Callable] = None,
                    error_callback: Optional[Callable] = None, *,
                    timeout: Optional[float] = None) -> ApplyResult:
        """Asynchronous version of `apply()` method. With timeout, a call
        that runs longer than that many seconds from its start is killed
        with its worker, and fails with TaskTimeoutError."""
        self._check_running()
        kind = self._timed_kind(_APPLY, timeout)
        result = ApplyResult(self, callback, error_callback)
        if kind != _APPLY:
            result._task_timeout = timeout
        self._submit(result, [(result._job, 0, kind, func, tuple(args), dict(kwds))])
        return result

    def map_async(self, func: Callable, iterable: Iterable[Any], chunksize: Optional[int] = None,
                  callback: Optional[Callable] = None,
                  error_callback: Optional[Callable] = None, *,
                  timeout: Optional[float] = None,
                  progress: ProgressArg = None) -> MapResult:
        """Asynchronous version of `map()` method. ``timeout`` and
        ``progress`` as in `map()`; get(timeout) still only bounds the wait."""
        return self._map_async(func, iterable, _MAP, chunksize, callback, error_callback,
                               **_options(timeout, progress))

    _kills_tasks = True  # a process pool can kill a task (timeout=), a thread pool cannot

    def _timed_kind(self, kind: int, timeout: Any) -> int:
        """kind, marked timed when timeout is given (checked)."""
        if _check_task_timeout(timeout) is None:
            return kind
        if not self._kills_tasks:
            raise ValueError("a thread pool cannot stop a running task: per-task timeouts "
                             "need a process pool")
        if not isinstance(self._ctx, context.BaseContext):
            raise ValueError("per-task timeouts need a pool made with one of gomp's contexts")
        self._timed = True
        return kind + _TIMED

    def _map_async(self, func: Callable, iterable: Iterable[Any], kind: int,
                   chunksize: Optional[int] = None, callback: Optional[Callable] = None,
                   error_callback: Optional[Callable] = None, *,
                   timeout: Optional[float] = None, progress: ProgressArg = None) -> MapResult:
        self._check_running()
        kind = self._timed_kind(kind, timeout)
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        bar = None
        if progress is not None and progress is not False:
            from . import _pool_progress
            bar = _pool_progress.make(progress, len(iterable))  # type: ignore[arg-type]
        if chunksize is None:
            chunksize, extra = divmod(len(iterable), len(self._pool or [0]) * 4)  # type: ignore
            if extra:
                chunksize += 1
            if bar is not None:
                chunksize = _pool_progress.chunksize(chunksize, len(iterable))  # type: ignore
        if len(iterable) == 0:  # type: ignore[arg-type]
            chunksize = 0
        if bar is None:
            result = MapResult(self, chunksize, len(iterable), callback,  # type: ignore
                               error_callback=error_callback)
        else:
            result = _pool_progress.MapResultWithProgress(
                self, chunksize, len(iterable), callback, error_callback, bar)  # type: ignore
        if kind >= _TIMED:
            result._task_timeout = timeout
        if chunksize > 0:
            job = result._job
            if type(iterable) in (range, list, tuple):
                # a slice of a range is a range: a few bytes to send, not a
                # tuple of every number in it
                n = len(iterable)  # type: ignore[arg-type]
                pack = self._pack_chunks and chunksize >= _PACK_MIN and type(iterable) is not range
                tasks = []
                for i, start in enumerate(range(0, n, chunksize)):
                    # a list's chunks are packed here, in the caller's
                    # thread, straight from the list (no slice made)
                    data = _pool_pack(iterable, start, start + chunksize) if pack else None
                    chunk = (iterable[start:start + chunksize] if data is None  # type: ignore
                             else _PackedArgs(data))
                    tasks.append((job, i, kind, func, chunk, None))
            else:
                it = iter(iterable)
                tasks = []
                for i in itertools.count():
                    chunk = tuple(itertools.islice(it, chunksize))
                    if not chunk:
                        break
                    tasks.append((job, i, kind, func, chunk, None))
            self._submit(result, tasks)
        return result

    def imap(self, func: Callable, iterable: Iterable[Any], chunksize: int = 1, *,
             timeout: Optional[float] = None, progress: ProgressArg = None) -> Iterator[Any]:
        """Equivalent of `map()` -- can be MUCH slower than `Pool.map()`.
        With timeout, a call that runs longer is killed with its worker and
        its result raises TaskTimeoutError (a chunk's, with chunksize > 1);
        next(timeout) still only bounds the wait. ``progress=`` as in
        `map()`: the bar's total is the iterable's length, unknown for a
        generator."""
        return self._imap(IMapIterator, func, iterable, chunksize, **_options(timeout, progress))

    def imap_unordered(self, func: Callable, iterable: Iterable[Any],
                       chunksize: int = 1, *, timeout: Optional[float] = None,
                       progress: ProgressArg = None) -> Iterator[Any]:
        """Like `imap()` method but ordering of results is arbitrary.
        ``timeout`` and ``progress`` as in `imap()`."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize,
                          **_options(timeout, progress))

    def _imap(self, cls: type, func: Callable, iterable: Iterable[Any], chunksize: int, *,
              timeout: Optional[float] = None, progress: ProgressArg = None) -> Iterator[Any]:
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0!r}".format(chunksize))
        timed = self._timed_kind(0, timeout)
        if progress is None or progress is False:
            result = cls(self)
        else:
            from . import _pool_progress
            bar = _pool_progress.make(progress, _pool_progress.total_of(iterable))
            cls = (_pool_progress.IMapIteratorWithProgress if cls is IMapIterator
                   else _pool_progress.IMapUnorderedIteratorWithProgress)
            result = cls(self, bar, chunksize)
        if timed:
            result._task_timeout = timeout
        if self._taskqueue is None:
            with self._lock:
                if self._taskqueue is None:
                    self._taskqueue = _SimpleQueue()
                    t = threading.Thread(target=self._handle_tasks, name="PoolTaskHandler",
                                         daemon=True)
                    self._threads.append(t)
                    t.start()
        self._taskqueue.put((result, func, iterable, chunksize))
        if chunksize == 1:
            return result
        return (item for chunk in result for item in chunk)

    def _handle_tasks(self) -> None:
        """Feed the tasks of imap() and imap_unordered() from their
        iterables, which may be lazy or long."""
        tq = self._taskqueue
        while True:
            entry = tq.get()
            if entry is None or self._state == TERMINATE:
                return
            self._feed_iterable(*entry)
            # the iterable and its last item go now, not with the next entry
            entry = None

    def _feed_iterable(self, result: "IMapIterator", func: Callable, iterable: Iterable[Any],
                       chunksize: int) -> None:
        job = result._job
        timed = 0 if result._task_timeout is None else _TIMED
        n = 0
        tasks: list = []
        clock = time.perf_counter
        # a container's tasks are submitted in groups; an iterator's
        # leave one by one, as they come, since its next item may be
        # long in coming
        group = _SUBMIT_GROUP if hasattr(iterable, "__len__") else 1
        try:
            it = iter(iterable)
            since = clock()
            while self._state != TERMINATE:
                if chunksize == 1:
                    try:
                        x = next(it)
                    except StopIteration:
                        break
                    tasks.append((job, n, _APPLY + timed, func, (x,), _NO_KWDS))
                else:
                    chunk = tuple(itertools.islice(it, chunksize))
                    if not chunk:
                        break
                    tasks.append((job, n, _MAP + timed, func, chunk, None))
                n += 1
                if len(tasks) >= group or clock() - since > _SUBMIT_WAIT:
                    self._submit(result, tasks)
                    tasks = []
                    since = clock()
        except Exception as e:
            if tasks:
                self._submit(result, tasks)
                tasks = []
            result._set(n, (False, e))
            n += 1
        finally:
            # the iterable's exception keeps this frame: not its items
            iterable = it = x = chunk = None  # type: ignore[assignment]
        if tasks:
            self._submit(result, tasks)
        result._set_length(n)

    def __reduce__(self) -> Any:
        raise NotImplementedError(
            "pool objects cannot be passed between processes or pickled")

    def __repr__(self) -> str:
        cls = self.__class__
        return (f"<{cls.__module__}.{cls.__qualname__} "
                f"state={self._state} "
                f"pool_size={len(self._pool)}>")

    def close(self) -> None:
        """Prevent any more tasks from being submitted to the pool. Once
        all the tasks have been completed the worker processes will exit."""
        util.debug("closing pool")
        with self._lock:
            if self._state != RUN:
                return
            self._state = CLOSE
            if self._taskqueue is not None:
                self._taskqueue.put(None)
            empty = not self._cache
        if empty:
            self._finish()

    def _finish(self) -> None:
        """After close(), once every result is in: let the workers go."""
        with self._lock:
            if self._state != CLOSE or self._finishing:
                return
            self._finishing = True
            stop = self._encode(None)
            for w in self._workers.values():
                if not w.dead:
                    try:
                        self._send(w, stop)
                    except Exception:
                        pass  # a worker that died meanwhile: nothing to stop
        self._stop_handler()
        self._post(_STOP)
        self._reader_wake.set()

    _finishing = False

    def _stop_handler(self) -> None:
        w = getattr(self, "_stop_w", None)
        if w is not None:
            self._stop_w = None
            try:
                os.close(w)
            except OSError:
                pass

    def terminate(self) -> None:
        """Stop the worker processes immediately without completing
        outstanding work."""
        util.debug("terminating pool")
        fin = getattr(self, "_finalizer", None)
        if fin is None:
            self._terminate_now()
        elif fin.still_active():
            fin()
        else:
            # closed and joined already: nothing is left to stop
            self._state = TERMINATE

    def _terminate_now(self) -> None:
        with self._lock:
            if self._state == TERMINATE:
                return
            self._state = TERMINATE
            if self._taskqueue is not None:
                self._taskqueue.put(None)
            self._pending.clear()
        self._stop_handler()
        self._kill_workers()
        try:
            self._post(_STOP)
        except Exception:
            pass
        self._reader_wake.set()
        me = threading.current_thread()
        for t in self._threads:
            # the task handler may be waiting for a slow iterable's next
            # item: it stops by itself once it has it
            if t is not me and t.is_alive() and t.name != "PoolTaskHandler":
                t.join(_JOIN_TIMEOUT)
        # what never came back fails instead of waiting forever
        err = ProcessError("the pool was terminated before this task finished")
        for obj in list(self._cache.values()):
            _fail_all(obj, err)
        self._cache.clear()
        self._close_transport()

    def _kill_workers(self) -> None:
        procs = [w.process for w in list(self._workers.values()) if w.process is not None]
        for p in procs:
            try:
                if p.exitcode is None:
                    p.terminate()
            except Exception:
                pass
        deadline = time.monotonic() + _TERM_GRACE
        for p in procs:
            try:
                try:
                    p.join(max(0.0, deadline - time.monotonic()))
                except TypeError:
                    # a Process-like object whose join() takes no timeout
                    p.join()
                if p.exitcode is None and hasattr(p, "kill"):
                    p.kill()
                    p.join(_JOIN_TIMEOUT)
            except Exception:
                pass

    def _close_transport(self) -> None:
        for w in list(self._workers.values()):
            if w.queue is not None:
                try:
                    w.queue.cancel_join_thread()
                    w.queue.close()
                except Exception:
                    pass
        sup = getattr(self, "_sup", None)
        if sup is not None:
            self._sup = None
            for fd in (sup, getattr(self, "_stop_r", None)):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass

    def join(self) -> None:
        """Wait for the worker processes to exit. One must call close() or
        terminate() before using join()."""
        util.debug("joining pool")
        if self._state == RUN:
            raise ValueError("Pool is still running")
        elif self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        for t in self._threads:
            if t is threading.current_thread() or (
                    self._state == TERMINATE and t.name == "PoolTaskHandler"):
                continue
            t.join()
        for w in list(self._workers.values()):
            if w.process is not None:
                w.process.join()
        if self._state == CLOSE:
            self._close_transport()
            # all is shut down: nothing for exit to do, and nothing that
            # keeps this pool alive
            fin = getattr(self, "_finalizer", None)
            if fin is not None:
                fin.cancel()

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.terminate()

    def __del__(self) -> None:
        if getattr(self, "_state", None) == RUN:
            import warnings
            warnings.warn(f"unclosed running multiprocessing pool {self!r}",
                          ResourceWarning, source=self)

    __class_getitem__ = classmethod(types.GenericAlias)


def _signal(process: Any, how: str) -> None:
    """process.terminate() or .kill(), for a process that may have ended."""
    try:
        getattr(process, how)()
    except Exception:
        pass


def _options(timeout: Optional[float], progress: ProgressArg) -> dict:
    """The keywords that ask _map_async() and _imap() for per-task timeouts
    and a progress bar: only those given, so that a subclass's override of
    theirs written for the stdlib's signatures keeps working."""
    out: dict = {}
    if timeout is not None:
        out["timeout"] = timeout
    if progress is not None and progress is not False:
        out["progress"] = progress
    return out


def _close_popen(popen: Any) -> None:
    try:
        popen.close()
    except Exception:
        pass


def _fail_all(obj: Any, err: BaseException) -> None:
    """Make a pending result fail with err, whatever it waits for."""
    try:
        if isinstance(obj, IMapIterator):
            with obj._cond:
                obj._items.append((False, err))
                obj._index += 1
                obj._length = obj._index
                obj._cond.notify_all()
            obj._cache.pop(obj._job, None)
        elif isinstance(obj, MapResult):
            while obj._number_left > 0 and not obj._ready:
                obj._set(0, (False, err))
        else:
            obj._set(0, (False, err))
        bar = getattr(obj, "_progress", None)
        if bar is not None:
            bar.close()
    except Exception:
        _traceback().print_exc()


# _gomp_interrupts.c's states: nothing to hold back; SIGINT's handler is
# not Python's; deferring (holding nothing)
_NOTHING_TO_DEFER, _CANNOT_DEFER, _DEFERRING = -2, -1, 1


def _main_ident() -> Optional[int]:
    return threading.main_thread().ident


class _interrupts_held:
    """with _interrupts_held(): the block, in the main thread, with Ctrl-C
    held back until it ends (see _gomp_interrupts.c): for the steps that
    must not be cut short between two of their writes (a task taken off
    the queue and not yet sent is lost)."""

    __slots__ = ("state",)

    def __enter__(self) -> None:
        self.state = (_defer_interrupts(True) if threading.get_ident() == _main_ident()
                      else _NOTHING_TO_DEFER)

    def __exit__(self, *exc: Any) -> None:
        _release_interrupts(self.state)  # a held-back Ctrl-C raises here


def _default_context() -> Any:
    return context._default_context.get_context()


# ---------------------------------------------------------------- threads

class ThreadPool(Pool):
    """A pool of threads with the Pool API (multiprocessing.pool.ThreadPool)."""

    _wrap_exception = False
    _pack_chunks = False
    _kills_tasks = False

    @staticmethod
    def Process(ctx: Any, *args: Any, **kwds: Any) -> Any:
        from .dummy import Process
        return Process(*args, **kwds)

    def __init__(self, processes: Optional[int] = None, initializer: Optional[Callable] = None,
                 initargs: Iterable[Any] = (), *, worker_state: bool = False) -> None:
        """The stdlib's arguments, and ``worker_state`` as for `Pool`: a
        state per worker thread."""
        Pool.__init__(self, processes, initializer, initargs, worker_state=worker_state)

    def _setup(self) -> None:
        self._sup = None
        self._outqueue = _SimpleQueue()

        def get_results(timeout: Optional[float], q: Any = self._outqueue) -> list:
            try:
                items = [q.get(True, timeout)]
            except _Empty:
                return []
            try:
                while True:
                    items.append(q.get_nowait())
            except _Empty:
                return items
        self._get_results = get_results

    def _encode(self, tasks: Any) -> Any:
        return tasks

    def _decode(self, item: Any) -> Any:
        return item

    def _new_worker(self, w: _Worker) -> None:
        w.queue = _SimpleQueue()
        t = self.Process(None, target=_thread_worker,
                         args=(w.wid, w.queue, self._outqueue, self._initializer,
                               self._initargs, self._worker_state))
        t.daemon = True
        t.name = "PoolWorker-%d" % w.wid
        t.start()
        w.process = t

    def _send(self, w: _Worker, data: Any) -> None:
        w.queue.put(data)

    def _post(self, kind: int, *args: Any) -> None:
        self._outqueue.put((kind, 0.0, args))

    def _untaken(self, w: _Worker) -> int:
        return 0

    def _take_back(self, w: _Worker) -> int:
        # a thread's queue cannot be emptied atomically against its worker
        return 0

    def _discard_queue(self, w: _Worker) -> None:
        pass

    def _kill_workers(self) -> None:
        # threads cannot be killed: they stop after the task they run, and
        # run nothing of what was queued for them
        for w in list(self._workers.values()):
            try:
                while True:
                    w.queue.get_nowait()
            except _Empty:
                pass
            w.queue.put(None)

    def _close_transport(self) -> None:
        pass

    def join(self) -> None:
        """Wait for the worker threads to exit. One must call close() or
        terminate() before using join()."""
        Pool.join(self)


def _thread_worker(wid: int, inqueue: Any, outqueue: Any, initializer: Optional[Callable],
                   initargs: tuple, worker_state: bool = False) -> None:
    state = _worker_state(initializer, initargs, worker_state)
    clock = time.perf_counter
    while True:
        tasks = inqueue.get()
        if tasks is None:
            break
        t0 = clock()
        results = _run(tasks, False, state)
        tasks = None
        outqueue.put((wid, clock() - t0, results))
        results = None

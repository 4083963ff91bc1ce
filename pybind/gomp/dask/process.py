"""``Process`` on a Dask cluster: the target runs as one long-running task
on a worker, seceded from the worker's thread pool so that it does not hold
a slot that short tasks need.

``exitcode`` is 0 when the target returns, the code of a ``SystemExit`` it
raises, 1 when it raises anything else (the traceback goes to the worker's
stderr, as a child's goes to its own) or when the task fails otherwise (its
worker died on every attempt), and ``-signal.SIGTERM`` once it was cancelled
by ``terminate()``. Python cannot stop a thread: a cancelled target that is
already running goes on in its worker until it returns, but its result is
dropped and ``join()`` returns at once.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import threading
import uuid
from typing import Any, Callable, Iterable, Optional

import distributed

__all__ = ["Process"]

_counter = itertools.count(1)


def _run(target: Callable, args: tuple, kwargs: dict) -> "tuple[int, int]":
    """The task: the target's exit code and this worker's pid."""
    distributed.secede()
    try:
        target(*args, **kwargs)
        code = 0
    except SystemExit as e:
        code = _exitcode(e)
    except BaseException:
        import traceback
        sys.stderr.write("Process %s:\n" % threading.current_thread().name)
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return code, os.getpid()


class Process:
    """A process whose ``target`` runs on a Dask worker. The signature is the
    stdlib's; the target and its arguments are pickled (by value where they
    cannot be found by reference)."""

    def __init__(self, group: None = None, target: Optional[Callable] = None,
                 name: Optional[str] = None, args: Iterable[Any] = (),
                 kwargs: Optional[dict] = None, *, daemon: Optional[bool] = None,
                 context: Any = None) -> None:
        if group is not None:
            raise AssertionError("group argument must be None for now")
        if context is None:
            raise ValueError("a dask Process is made by a dask context: "
                             "gomp.get_context('dask').Process(...)")
        self._ctx = context
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self._name = name or "DaskProcess-%d" % next(_counter)
        self.daemon = bool(daemon)
        self._future: Any = None
        self._outcome: Optional["tuple[int, Optional[int]]"] = None

    def run(self) -> None:
        """Method to be run in the worker (the target, by default). A
        subclass that overrides it is pickled whole and run there."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        """Start the process's activity: submit it to the cluster."""
        if self._future is not None or self._outcome is not None:
            raise AssertionError("cannot start a process twice")
        if type(self).run is Process.run:
            call = (self._target or _nothing, self._args, self._kwargs)
        else:
            call = (self.run, (), {})
        key = "%s-%s" % (self._name, uuid.uuid4().hex)
        self._future = self._ctx.client.submit(_run, *call, key=key, pure=False)

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the process ends, or until timeout seconds pass."""
        if self._future is None and self._outcome is None:
            raise AssertionError("can only join a started process")
        if self._future is None:
            return
        try:
            self._future.result(timeout=timeout)
        except (Exception, asyncio.CancelledError):
            pass  # timed out, failed or cancelled: exitcode tells which

    def is_alive(self) -> bool:
        """Return whether the process is alive (submitted and not ended)."""
        return self._future is not None and not self._future.done()

    def terminate(self) -> None:
        """Cancel the task (exitcode becomes -SIGTERM)."""
        if self._future is not None and not self._future.done():
            self._future.cancel()

    kill = terminate

    def close(self) -> None:
        """Release the task's record; the process must have ended."""
        if self.is_alive():
            raise ValueError("Cannot close a process while it is still running. "
                             "You should first call join() or terminate().")
        self._finish()

    def _finish(self) -> Optional["tuple[int, Optional[int]]"]:
        if self._outcome is None and self._future is not None and self._future.done():
            f = self._future
            if f.status == "finished":
                try:
                    self._outcome = f.result()
                except Exception:
                    self._outcome = (1, None)
            elif f.status == "cancelled":
                self._outcome = (-signal.SIGTERM, None)
            else:
                exc = f.exception()
                self._outcome = (1, getattr(getattr(exc, "last_worker", None), "pid", None))
            self._future = None
        return self._outcome

    @property
    def exitcode(self) -> Optional[int]:
        """The exit code, or None while the process runs (or was not started)."""
        outcome = self._finish()
        return None if outcome is None else outcome[0]

    @property
    def pid(self) -> Optional[int]:
        """The pid of the worker process running the target (None before it
        is placed on a worker)."""
        outcome = self._finish()
        if outcome is not None:
            return outcome[1]
        if self._future is None:
            return None
        return _worker_pid(self._ctx.client, self._future.key)

    ident = pid

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError("name must be a string")
        self._name = name

    @property
    def sentinel(self) -> int:
        raise NotImplementedError("a dask Process has no sentinel to wait on: "
                                  "use join(timeout)")

    def __getstate__(self) -> dict:
        # a subclass whose run() travels to the worker: no connection with it
        state = dict(self.__dict__)
        state["_ctx"] = state["_future"] = None
        return state

    def __repr__(self) -> str:
        if self._future is None and self._outcome is None:
            status = "initial"
        elif self.is_alive():
            status = "started"
        else:
            status = "stopped exitcode=%s" % self.exitcode
        return "<%s name=%r %s%s>" % (type(self).__name__, self._name, status,
                                      " daemon" if self.daemon else "")


def _exitcode(e: SystemExit) -> int:
    """A process's exit code for the SystemExit that ended it (a message
    goes to stderr and makes it 1)."""
    if e.code is None or isinstance(e.code, int):
        return e.code or 0
    print(e.code, file=sys.stderr)
    return 1


def _nothing() -> None:
    pass


def _worker_pid(client: Any, key: str) -> Optional[int]:
    """The pid of the worker that processes key, if any does."""
    try:
        for address, keys in client.processing().items():
            if key in keys:
                return client.run(os.getpid, workers=[address])[address]
    except Exception:
        pass
    return None

"""``Lock``, ``Semaphore`` and ``Event`` on a Dask cluster: Dask's
``distributed.Lock``, ``Semaphore`` and ``Event`` (held by the scheduler)
with the stdlib's ``multiprocessing.synchronize`` API.

A lock or a semaphore is leased: if the client or task that holds it dies,
the scheduler takes it back after ``distributed.scheduler.locks.lease-timeout``
(30 s by default). Each release must come from the copy of the object that
acquired (Dask counts leases per holder), so a semaphore bounds holders; it
is not a counter that one process raises for another (use a Queue for that).
"""
from __future__ import annotations

from typing import Any, Optional

import distributed

from ._shared import SharedHandle

__all__ = ["Lock", "Semaphore", "Event"]


def _check_timeout(block: bool, timeout: Optional[float]) -> Optional[float]:
    if not block:
        return 0
    if timeout is not None and timeout < 0:
        timeout = 0
    return timeout


def _rpc(client: Optional[Any]) -> dict:
    # where unpickled (client None), a worker's scheduler connection and loop
    return {} if client is None else {"scheduler_rpc": client.scheduler, "loop": client.loop}


class Semaphore(SharedHandle):
    """A semaphore whose units are leases held on the Dask scheduler."""

    def __init__(self, value: int = 1, *, client: Any, name: str) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        if value == 0:
            raise ValueError("a dask semaphore needs at least one unit "
                             "(distributed.Semaphore's max_leases >= 1)")
        super().__init__(name, client)
        self._value = value

    def _connect(self, client: Optional[Any]) -> Any:
        return distributed.Semaphore(max_leases=self._value, name=self._name, **_rpc(client))

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Take a unit, waiting at most timeout seconds; True if taken."""
        return bool(self._dask.acquire(timeout=_check_timeout(block, timeout)))

    def release(self) -> None:
        """Give back a unit this object took."""
        try:
            self._dask.release()
        except RuntimeError as e:
            raise ValueError("released too many times: %s" % e) from None

    def get_value(self) -> int:
        """The units free now."""
        return self._value - self._dask.get_value()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return "<%s(value=%s) %s>" % (type(self).__name__, self._value, self._name)


class Lock(Semaphore):
    """A non-recursive lock (a semaphore of one unit) held on the scheduler."""

    def __init__(self, *, client: Any, name: str) -> None:
        super().__init__(1, client=client, name=name)

    def _connect(self, client: Optional[Any]) -> Any:
        return distributed.Lock(name=self._name, **_rpc(client))

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self._name)


class Event(SharedHandle):
    """An event flag held on the scheduler."""

    def __init__(self, *, client: Any, name: str) -> None:
        super().__init__(name, client)

    def _connect(self, client: Optional[Any]) -> Any:
        return distributed.Event(name=self._name, client=client)

    def is_set(self) -> bool:
        return self._dask.is_set()

    def set(self) -> None:
        self._dask.set()

    def clear(self) -> None:
        self._dask.clear()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the flag is set or timeout seconds pass; the flag."""
        if timeout is not None and timeout < 0:
            timeout = 0
        return bool(self._dask.wait(timeout))

    def __repr__(self) -> str:
        return "<%s %s %s>" % (type(self).__name__, self._name,
                               "set" if self.is_set() else "unset")

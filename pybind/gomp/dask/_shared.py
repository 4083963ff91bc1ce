"""A handle on an object the Dask scheduler holds (a queue, a lock, ...),
known by its name.

A handle is pickled as its name and parameters only, and the
``distributed`` object behind it is made in each process on first use.
The scheduler unpickles the arguments of the tasks it is sent, and a
``distributed.Queue`` unpickled there would connect a client to the
scheduler from inside the scheduler (with a LocalCluster in the program's
own process, a deadlock); a handle makes no connection until it is used.
"""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["SharedHandle"]


class SharedHandle:
    """Base of the dask context's Queue, Lock, Semaphore, Event and Value."""

    def __init__(self, name: str, client: Any) -> None:
        self._name = name
        self._client = client    # the creator's client; None where unpickled
        self._handle: Any = None

    def _connect(self, client: Optional[Any]) -> Any:
        """The distributed object (client None: the worker's own client)."""
        raise NotImplementedError

    @property
    def _dask(self) -> Any:
        handle = self._handle
        if handle is None:
            handle = self._handle = self._connect(self._client)
        return handle

    @property
    def name(self) -> str:
        """The object's name on the Dask scheduler."""
        return self._name

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_client"] = state["_handle"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self._name)

"""``Queue`` on a Dask cluster: a ``distributed.Queue`` (held by the
scheduler, reachable from the client and from every task) with the stdlib's
``multiprocessing.Queue`` API. Items are pickled, so what ``get()`` returns
is what ``put()`` was given."""
from __future__ import annotations

import asyncio
import queue as _queue
from typing import Any, Optional

import distributed

from . import _pickled
from ._shared import SharedHandle

__all__ = ["Queue"]

# what distributed raises when a wait runs out (asyncio's is the builtin from 3.11)
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)


class Queue(SharedHandle):
    """A FIFO queue shared by the client and the tasks of a Dask cluster."""

    def __init__(self, maxsize: int = 0, *, client: Any, name: str) -> None:
        if not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError("maxsize must be an int >= 0, not %r" % (maxsize,))
        super().__init__(name, client)
        self._maxsize = maxsize
        self._dask  # made on the scheduler now, with its maxsize

    def _connect(self, client: Optional[Any]) -> Any:
        return distributed.Queue(name=self._name, client=client, maxsize=self._maxsize)

    def put(self, obj: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Put obj on the queue, waiting at most timeout seconds for room
        (queue.Full when there is none)."""
        data = _pickled.dumps(obj)
        try:
            self._dask.put(data, timeout=_timeout(block, timeout))
        except _TIMEOUTS:
            raise _queue.Full from None

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Remove and return an item, waiting at most timeout seconds for one
        (queue.Empty when none comes)."""
        try:
            data = self._dask.get(timeout=_timeout(block, timeout))
        except _TIMEOUTS:
            raise _queue.Empty from None
        return _pickled.loads(data)

    def put_nowait(self, obj: Any) -> None:
        return self.put(obj, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self._dask.qsize()

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return bool(self._maxsize) and self.qsize() >= self._maxsize

    def close(self) -> None:
        """Nothing is buffered in this process: a no-op, as for a closed
        queue whose feeder has finished."""

    def join_thread(self) -> None:
        pass

    def cancel_join_thread(self) -> None:
        pass


def _timeout(block: bool, timeout: Optional[float]) -> Optional[float]:
    if not block:
        return 0
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout

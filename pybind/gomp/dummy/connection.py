"""Connections between threads (the stdlib's
``multiprocessing.dummy.connection``): a pair of queue.Queue."""
from __future__ import annotations

from queue import Queue
from typing import Any, Optional, Tuple

__all__ = ["Client", "Listener", "Pipe"]

families = [None]


class Listener:
    """Accepts connections from Client(listener.address)."""

    def __init__(self, address: Any = None, family: Any = None, backlog: int = 1) -> None:
        self._backlog_queue: Optional[Queue] = Queue(backlog)

    def accept(self) -> "Connection":
        """Wait for a Client and return the connection to it."""
        assert self._backlog_queue is not None
        return Connection(*self._backlog_queue.get())

    def close(self) -> None:
        self._backlog_queue = None

    @property
    def address(self) -> Optional[Queue]:
        return self._backlog_queue

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> None:
        self.close()


def Client(address: Queue) -> "Connection":
    """Connect to the Listener whose address is given."""
    _in: Queue = Queue()
    _out: Queue = Queue()
    address.put((_out, _in))
    return Connection(_in, _out)


def Pipe(duplex: bool = True) -> Tuple["Connection", "Connection"]:
    """A pair of connected Connection objects (always duplex)."""
    a: Queue = Queue()
    b: Queue = Queue()
    return Connection(a, b), Connection(b, a)


class Connection:
    """One end of a Pipe: send()/recv() move objects, unpickled."""

    def __init__(self, _in: Queue, _out: Queue) -> None:
        self._out = _out
        self._in = _in
        self.send = self.send_bytes = _out.put
        self.recv = self.recv_bytes = _in.get

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether there is something to receive, waiting up to timeout."""
        if self._in.qsize() > 0:
            return True
        if timeout <= 0.0:
            return False
        with self._in.not_empty:
            self._in.not_empty.wait(timeout)
        return self._in.qsize() > 0

    def close(self) -> None:
        pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> None:
        self.close()

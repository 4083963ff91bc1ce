"""Connections between processes: the stdlib's ``multiprocessing.connection``.

``wait`` works today over process sentinels, sockets and anything with a
``fileno()``; Pipe, Connection, Listener and Client are still to come.
"""
from __future__ import annotations

import select
import time
from typing import Any, Iterable, List, Optional

from ._missing import missing_class, missing_function

__all__ = ["Client", "Listener", "Pipe", "wait"]

# the longest a wait blocks before Python gets to run a signal handler (a
# SIGINT may be delivered to one of the Go runtime's threads, which does not
# interrupt this one's poll)
_SLICE = 0.05


def wait(object_list: Iterable[Any], timeout: Optional[float] = None) -> List[Any]:
    """Wait until one or more objects in object_list are ready (readable, or
    ended for a process sentinel), or until timeout passes.

    Returns the list of ready objects; an empty list on timeout."""
    objects = list(object_list)
    poller = select.poll()
    by_fd: "dict[int, list[Any]]" = {}
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        by_fd.setdefault(fd, []).append(obj)
        poller.register(fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    while True:
        if deadline is None:
            slice_ = _SLICE
        else:
            slice_ = min(_SLICE, max(deadline - time.monotonic(), 0))
        events = poller.poll(slice_ * 1000)
        if events:
            ready = {fd for fd, _ in events}
            return [o for o in objects
                    if (o if isinstance(o, int) else o.fileno()) in ready]
        if deadline is not None and time.monotonic() >= deadline:
            return []


Connection = missing_class("connection.Connection")
Listener = missing_class("connection.Listener")
Client = missing_function("connection.Client")
Pipe = missing_function("connection.Pipe")
deliver_challenge = missing_function("connection.deliver_challenge")
answer_challenge = missing_function("connection.answer_challenge")

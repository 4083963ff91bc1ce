"""Pickling for gomp: the stdlib's ``multiprocessing.reduction`` API.

Objects are pickled by reference, as the stdlib does. What cannot be found
by reference in a child (a lambda, a closure, a class or function defined
in a ``__main__`` read from stdin or typed at the prompt) is pickled by
value with cloudpickle instead of failing in the child.
"""
from __future__ import annotations

import copyreg
import io
import pickle
import socket
import sys
from collections import ChainMap
from types import FunctionType
from typing import Any, Callable, Optional

from . import _stdlib

__all__ = ["send_handle", "recv_handle", "ForkingPickler", "register", "dump",
           "dumps", "loads", "DupFd", "sendfds", "recvfds", "AbstractReducer"]

HAVE_SEND_HANDLE = True

_cloudpickle_pickler: Any = None


def _base() -> Any:
    # cloudpickle costs ~15 ms to import: only when something is pickled
    global _cloudpickle_pickler
    if _cloudpickle_pickler is None:
        import cloudpickle
        _cloudpickle_pickler = cloudpickle.Pickler
    return _cloudpickle_pickler


def _main_is_importable() -> bool:
    """Whether a child can import the parent's __main__ (so that its
    functions may travel by reference)."""
    from .spawn import main_reference
    return bool(main_reference())


def _found_by_reference(obj: Any) -> bool:
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    qualname = getattr(obj, "__qualname__", None)
    if module is None or not qualname or "<" in qualname:
        return False
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return False
    return target is obj


class _PicklerType(type):
    """Builds ForkingPickler on cloudpickle's Pickler on first use."""

    _real: Any = None

    def _materialize(cls) -> Any:
        if cls._real is None:
            cls._real = _make_pickler(cls)
        return cls._real


_extra_reducers: "dict[type, Callable]" = {}


def _make_pickler(facade: Any) -> Any:
    base = _base()

    class _ForkingPickler(base):
        # a class attribute: the C pickler reads dispatch_table once, in
        # __init__, so setting it on the instance afterwards has no effect
        dispatch_table = ChainMap(_extra_reducers, _stdlib.Reducers(), base.dispatch_table)

        def __init__(self, file: Any, protocol: Optional[int] = None,
                     buffer_callback: Optional[Callable] = None) -> None:
            super().__init__(file, protocol, buffer_callback=buffer_callback)

        def reducer_override(self, obj: Any) -> Any:
            # cloudpickle treats all of __main__ as by-value; the stdlib
            # resolves it by reference in a child that re-imports the main
            # module, and so do we when the child can import it.
            if (getattr(obj, "__module__", None) == "__main__"
                    and (type(obj) is FunctionType or isinstance(obj, type))
                    and _main_is_importable() and _found_by_reference(obj)):
                return NotImplemented
            return super().reducer_override(obj)

    _ForkingPickler.__name__ = "ForkingPickler"
    return _ForkingPickler


class ForkingPickler(metaclass=_PicklerType):
    """Pickler used to send objects to other processes.

    ``ForkingPickler(file, protocol)`` returns a pickler; ``register``,
    ``dumps`` and ``loads`` are as in the stdlib.
    """

    loads = staticmethod(pickle.loads)

    def __new__(cls, file: Any, protocol: Optional[int] = None, *args: Any, **kwargs: Any) -> Any:
        return type(cls)._materialize(cls)(file, protocol, *args, **kwargs)

    @classmethod
    def register(cls, type_: type, reduce: Callable) -> None:
        """Register a reduce function for a type."""
        _extra_reducers[type_] = reduce

    @classmethod
    def dumps(cls, obj: Any, protocol: Optional[int] = None) -> memoryview:
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()


register = ForkingPickler.register


def dumps(obj: Any, protocol: Optional[int] = None) -> bytes:
    """Pickle obj for another process (bytes)."""
    return bytes(ForkingPickler.dumps(obj, protocol))


loads = pickle.loads


def dump(obj: Any, file: Any, protocol: Optional[int] = None) -> None:
    """Replacement for pickle.dump() using ForkingPickler."""
    ForkingPickler(file, protocol).dump(obj)


# methods and method descriptors, as the stdlib registers them
class _C:
    def f(self) -> None:
        pass


def _reduce_method(m: Any) -> Any:
    if m.__self__ is None:
        return getattr, (m.__class__, m.__func__.__name__)
    return getattr, (m.__self__, m.__func__.__name__)


def _reduce_method_descriptor(m: Any) -> Any:
    return getattr, (m.__objclass__, m.__name__)


register(type(_C().f), _reduce_method)
register(type(list.append), _reduce_method_descriptor)
register(type(int.__add__), _reduce_method_descriptor)


# descriptor passing over Unix sockets
def sendfds(sock: socket.socket, fds: "list[int]") -> None:
    """Send a list of file descriptors over a Unix socket."""
    socket.send_fds(sock, [bytes([len(fds) % 256])], list(fds))


def recvfds(sock: socket.socket, size: int) -> "list[int]":
    """Receive size file descriptors over a Unix socket."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, 1, size)
    if not msg and not fds:
        raise EOFError
    if len(fds) != size:
        raise RuntimeError("received %d fds, expected %d" % (len(fds), size))
    return list(fds)


def send_handle(conn: Any, handle: int, destination_pid: int) -> None:
    """Send a handle over a local connection."""
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        sendfds(s, [handle])


def recv_handle(conn: Any) -> int:
    """Receive a handle over a local connection."""
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        return recvfds(s, 1)[0]


def DupFd(fd: int) -> Any:
    """Return a wrapper for an fd that survives pickling to a child."""
    from .context import get_spawning_popen
    popen_obj = get_spawning_popen()
    if popen_obj is not None:
        return popen_obj.DupFd(popen_obj.duplicate_for_child(fd))
    raise ValueError("DupFd can only pass a descriptor while starting a process")


class AbstractReducer:
    """Base class of reducers, as the stdlib's; gomp uses ForkingPickler."""

    ForkingPickler = ForkingPickler
    register = register
    dump = dump
    send_handle = send_handle
    recv_handle = recv_handle
    DupFd = DupFd
    sendfds = sendfds
    recvfds = recvfds

    def __init__(self, *args: Any) -> None:
        copyreg.pickle(type(_C().f), _reduce_method)
        copyreg.pickle(type(list.append), _reduce_method_descriptor)
        copyreg.pickle(type(int.__add__), _reduce_method_descriptor)

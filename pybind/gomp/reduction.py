"""Pickling for gomp: the stdlib's ``multiprocessing.reduction`` API.

Objects are pickled by reference, as the stdlib does, by the stdlib's C
pickler. What cannot be found by reference in a child (a lambda, a closure,
a class or function defined in a ``__main__`` read from stdin or typed at
the prompt) is pickled by value with cloudpickle's reductions instead of
failing in the child; cloudpickle is imported only when that happens.
"""
from __future__ import annotations

import copyreg
import functools
import io
import itertools
import os
import pickle
import socket
import sys
from collections import ChainMap
from types import FunctionType
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

from . import _stdlib

__all__ = ["send_handle", "recv_handle", "ForkingPickler", "register", "dump",
           "dumps", "loads", "DupFd", "sendfds", "recvfds", "AbstractReducer"]

HAVE_SEND_HANDLE = True
# whether the receiver of descriptors acknowledges them (only macOS needs it)
ACKNOWLEDGE = sys.platform == "darwin"

def _base() -> Any:
    """cloudpickle's Pickler (imported on first need: it costs ~15 ms)."""
    import cloudpickle
    return cloudpickle.Pickler


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


def _by_reference(obj: Any) -> bool:
    """Whether a child finds this function or class by reference, as the
    stdlib pickles it: a __main__ it cannot import (stdin, -c, the prompt)
    holds nothing it can find."""
    if getattr(obj, "__module__", None) == "__main__" and not _main_is_importable():
        return False
    return _found_by_reference(obj)


_extra_reducers: "dict[type, Callable]" = {}


class ForkingPickler(pickle.Pickler):
    """Pickler used to send objects to other processes.

    The stdlib's C pickler with the reducers registered here (and the
    stdlib's, for its own types); ``register``, ``dumps`` and ``loads`` are
    as in the stdlib. A function or class a child could not find by
    reference (a lambda, a closure, one of a __main__ that cannot be
    imported) goes by value, with cloudpickle's reductions, and so does
    what it contains; cloudpickle is imported only then.
    """

    # a class attribute: the C pickler reads dispatch_table in __init__
    dispatch_table = ChainMap(_extra_reducers, _stdlib.Reducers(), copyreg.dispatch_table)
    loads = staticmethod(pickle.loads)

    def __init__(self, file: Any, protocol: Optional[int] = None, *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(file, protocol, *args, **kwargs)
        self._protocol = protocol
        self._by_value: Any = None  # cloudpickle's pickler, once something needs it

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is FunctionType or isinstance(obj, type):
            if _by_reference(obj):
                return NotImplemented
            return self._value_pickler().reducer_override(obj)
        if self._by_value is not None:
            # inside something pickled by value: code objects, cells,
            # properties... as cloudpickle reduces them
            reduce = type(self._by_value).dispatch_table.get(type(obj))
            if reduce is not None:
                return reduce(obj)
        return NotImplemented

    def _value_pickler(self) -> Any:
        if self._by_value is None:
            self._by_value = _base()(io.BytesIO(), self._protocol)
        return self._by_value

    @classmethod
    def register(cls, type_: type, reduce: Callable) -> None:
        """Register a reduce function for a type."""
        _extra_reducers[type_] = reduce
        if _OWN_REDUCERS.get(type_) is not reduce:
            _program_registered()

    @classmethod
    def dumps(cls, obj: Any, protocol: Optional[int] = None) -> memoryview:
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()


register = ForkingPickler.register


# ---------------------------------------------------------------------------
# How an object travels: the one policy. Queues, pipes, pools and managers
# all ask here (and _gomp_encode.c, the queues' C fast path, follows the same
# rules):
#
# * raw: a large top-level bytes, bytearray or memoryview is copied as it
#   is, never pickled (queues and pipes decide the size);
# * marshal, or the C pickler on its own: for objects made only of core
#   types (exact int, float, str, bytes, bool, None, complex; tuple, list and
#   dict of those), which the C pickler writes itself, whatever reducer is
#   registered for them: any encoder gives back the same;
# * the C pickler on its own, for anything else, while the program has
#   registered no reducer of its own: it then writes what ForkingPickler
#   would, or fails (a lambda, a socket), or names a __main__ the receiver
#   cannot import; in those cases, and once the program registers a reducer,
#   ForkingPickler.

# the reducers gomp registers, for types whose objects the C pickler alone
# either refuses (sockets, connections, dict views) or writes as well
# (methods, partials, arrays): they do not change the policy
_OWN_REDUCERS: "dict[type, Callable]" = {}
# whether the program has registered a reducer (see _program_registered)
_program_reducers = False


def _program_registered() -> None:
    global _program_reducers
    if not _program_reducers:
        _program_reducers = True
        from . import _core
        _core.ext().set_plain_pickle(False)  # the queues' C fast path too


def _register_own(type_: type, reduce: Callable) -> None:
    _OWN_REDUCERS[type_] = reduce
    _extra_reducers[type_] = reduce


CORE_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})
CORE_CONTAINERS = frozenset({tuple, list, dict})


# core_types_only looks at this many items at most (half as many a level
# down), so that the check stays cheaper than the set-up it saves
_CORE_BUDGET = 64


def core_types_only(obj: Any, budget: int = _CORE_BUDGET) -> bool:
    """Whether obj is made only of core types (at most a few dozen), which
    every pickler writes alike: those skip ForkingPickler's set-up."""
    t = type(obj)
    if t in CORE_SCALARS:
        return True
    if t not in CORE_CONTAINERS or len(obj) > budget:
        return False
    items = itertools.chain.from_iterable(obj.items()) if t is dict else obj
    for x in items:
        tx = type(x)
        if tx in CORE_SCALARS:
            continue
        if tx not in CORE_CONTAINERS or budget <= 1 or not core_types_only(x, budget // 2):
            return False
    return True


def plain_pickle_ok() -> bool:
    """Whether the C pickler alone may be tried first (see above)."""
    return not _program_reducers


def transport_dumps(obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL,
                    buffer_callback: Optional[Callable] = None) -> bytes:
    """Pickle obj for another process as ForkingPickler would, by the C
    pickler alone where that writes the same (see above)."""
    if not _program_reducers:
        buffers: list = []
        try:
            data = pickle.dumps(obj, protocol,
                                buffer_callback=None if buffer_callback is None else buffers.append)
        except Exception:
            pass
        else:
            # a __main__ the receiver cannot import: its functions and
            # classes must travel by value
            if b"__main__" not in data or _main_is_importable():
                for b in buffers:
                    buffer_callback(b)  # type: ignore[misc]
                return data
    buf = io.BytesIO()
    ForkingPickler(buf, protocol, buffer_callback=buffer_callback).dump(obj)
    return buf.getvalue()


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


_register_own(type(_C().f), _reduce_method)
_register_own(type(list.append), _reduce_method_descriptor)
_register_own(type(int.__add__), _reduce_method_descriptor)


def _reduce_partial(p: functools.partial) -> Any:
    return _rebuild_partial, (p.func, p.args, p.keywords or {})


def _rebuild_partial(func: Callable, args: tuple, keywords: dict) -> functools.partial:
    return functools.partial(func, *args, **keywords)


_register_own(functools.partial, _reduce_partial)


# descriptor passing over Unix sockets
def sendfds(sock: socket.socket, fds: "list[int]") -> None:
    """Send a list of file descriptors over a Unix socket."""
    socket.send_fds(sock, [bytes([len(fds) % 256])], list(fds))
    if ACKNOWLEDGE and sock.recv(1) != b"A":
        raise RuntimeError("did not receive acknowledgement of fd")


def recvfds(sock: socket.socket, size: int) -> "list[int]":
    """Receive size file descriptors over a Unix socket."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, 1, size,
                                              getattr(socket, "MSG_CMSG_CLOEXEC", 0))
    if not msg and not fds:
        raise EOFError
    if ACKNOWLEDGE:
        sock.send(b"A")
    if len(fds) != size or msg[0] != size % 256:
        for fd in fds:
            os.close(fd)
        raise RuntimeError("received %d items of ancdata" % len(fds))
    return list(fds)


def send_handle(conn: Any, handle: int, destination_pid: int) -> None:
    """Send a handle over a local connection."""
    send = getattr(conn, "_send_fds", None)
    if send is not None:  # a gomp pipe end: with a message of the pipe
        send([handle])
        return
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        sendfds(s, [handle])


def recv_handle(conn: Any) -> int:
    """Receive a handle over a local connection."""
    recv = getattr(conn, "_recv_fds", None)
    if recv is not None:  # a gomp pipe end
        return recv(1)[0]
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        return recvfds(s, 1)[0]


class _FirstFd:
    """Wraps an object whose detach() returns a list of one descriptor."""

    def __init__(self, passed: Any) -> None:
        self.passed = passed

    def detach(self) -> int:
        return self.passed.detach()[0]


def DupFd(fd: int) -> Any:
    """Return a wrapper for an fd: its detach(), in the process that
    unpickles it, returns a copy of fd."""
    from .context import get_spawning_popen
    popen_obj = get_spawning_popen()
    if popen_obj is not None:
        return popen_obj.DupFd(popen_obj.duplicate_for_child(fd))
    from . import connection
    passed = connection._message_fds([fd])  # inside a send on a gomp pipe
    if passed is not None:
        return _FirstFd(passed)
    from . import resource_sharer
    return resource_sharer.DupFd(fd)


def _reduce_socket(s: socket.socket) -> Any:
    df = DupFd(s.fileno())
    return _rebuild_socket, (df, s.family, s.type, s.proto)


def _rebuild_socket(df: Any, family: int, type: int, proto: int) -> socket.socket:
    fd = df.detach()
    return socket.socket(family, type, proto, fileno=fd)


_register_own(socket.socket, _reduce_socket)


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
    _reduce_method = _reduce_method
    _reduce_method_descriptor = _reduce_method_descriptor
    _rebuild_partial = _rebuild_partial
    _reduce_socket = _reduce_socket
    _rebuild_socket = _rebuild_socket

    def __init__(self, *args: Any) -> None:
        register(type(_C().f), _reduce_method)
        register(type(list.append), _reduce_method_descriptor)
        register(type(int.__add__), _reduce_method_descriptor)
        register(functools.partial, _reduce_partial)
        register(socket.socket, _reduce_socket)

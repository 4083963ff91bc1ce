"""Connections between processes: the stdlib's ``multiprocessing.connection``.

``Pipe()`` connects two processes through shared memory (gomp/pipe.go): one
ring per direction in a memfd segment, futex wake-ups, no system call per
message while both sides keep up. ``Listener`` and ``Client`` talk over
sockets with the stdlib's framing and authentication, so that either side
may be the stdlib's.
"""
from __future__ import annotations

import errno
import itertools
import operator
import os
import pickle
import select
import selectors
import socket
import struct
import threading
import time
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, List, Optional, Tuple

from . import reduction
from . import resource_sharer
from ._timing import SIGNAL_SLICE
from .context import AuthenticationError, BufferTooShort

__all__ = ["Client", "Listener", "Pipe", "wait"]

BUFSIZE = 8192
# a message of up to this many bytes goes out with its header in one write
# (the stdlib's bound: past it, joining them costs more than a system call)
_ONE_WRITE_MAX = 16384
# A socket Connection reads a message of more than _RECV_CHUNK bytes in
# pieces, the first _RECV_CHUNK long, each next one twice the last up to
# _RECV_CHUNK_MAX: what it holds is at most what arrived plus one piece,
# whatever the length header claims (a peer may lie).
_RECV_CHUNK = 1 << 20
_RECV_CHUNK_MAX = 16 << 20
CONNECTION_TIMEOUT = 20.0
# a Listener gives a client this long to pass the authentication handshake,
# so that one that never answers does not stall accept() for ever
HANDSHAKE_TIMEOUT = 20.0
# a client whose listener's backlog is full retries connecting this often
# (seconds) until CONNECTION_TIMEOUT
_CONNECT_RETRY = 0.01

default_family = "AF_UNIX"
families = ["AF_INET", "AF_UNIX"]
if hasattr(socket, "AF_INET6"):
    families.insert(1, "AF_INET6")

_mmap_counter = itertools.count()

# the stdlib's module-level names, which its tests and some libraries use
_ForkingPickler = reduction.ForkingPickler
_WaitSelector = selectors.PollSelector


def _init_timeout(timeout: float = CONNECTION_TIMEOUT) -> float:
    """The deadline (time.monotonic()) timeout seconds from now."""
    return time.monotonic() + timeout


def _check_timeout(t: float) -> bool:
    """Whether the deadline t has passed."""
    return time.monotonic() > t


_ext: Any = None


def _go() -> Any:
    """The extension with the Go core loaded (loaded on first use)."""
    global _ext
    if _ext is None:
        from . import _core
        _ext = _core.go()
    return _ext


def _dumps(obj: Any) -> Any:
    if reduction.core_types_only(obj):
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    return reduction.ForkingPickler.dumps(obj)


def _wait_fd(fd: int, events: int, timeout: Optional[float]) -> bool:
    """Poll one descriptor in short slices, so that signal handlers (Ctrl-C)
    run while it waits. Returns whether it became ready."""
    p = select.poll()
    p.register(fd, events)
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
    while True:
        if deadline is None:
            slice_ = SIGNAL_SLICE
        else:
            slice_ = min(SIGNAL_SLICE, max(deadline - time.monotonic(), 0.0))
        if p.poll(slice_ * 1000):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


# ---------------------------------------------------------------------------
# Connection objects


class _ConnectionBase:
    """What the stdlib's connections have in common: argument checking and
    pickling of objects; the transport is in the subclasses' ``_send``,
    ``_recv``, ``_recv_into`` and ``_poll``."""

    _handle: Any = None

    def __init__(self, handle: Any, readable: bool = True, writable: bool = True) -> None:
        handle = operator.index(handle)
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._handle = handle
        self._readable = readable
        self._writable = writable

    def __del__(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                self._close(handle)
            except Exception:
                pass

    def _check_closed(self) -> None:
        if self._handle is None:
            raise OSError("handle is closed")

    def _check_readable(self) -> None:
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self) -> None:
        if not self._writable:
            raise OSError("connection is read-only")

    def _bad_message_length(self) -> None:
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    @property
    def closed(self) -> bool:
        """True if the connection is closed"""
        return self._handle is None

    @property
    def readable(self) -> bool:
        """True if the connection is readable"""
        return self._readable

    @property
    def writable(self) -> bool:
        """True if the connection is writable"""
        return self._writable

    def close(self) -> None:
        """Close the connection"""
        # taken first: another thread may close it at the same time
        handle, self._handle = self._handle, None
        if handle is not None:
            self._close(handle)

    def send_bytes(self, buf: Any, offset: int = 0, size: Optional[int] = None) -> None:
        """Send the bytes data from a bytes-like object"""
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        self._send(m[offset:offset + size])

    def send(self, obj: Any) -> None:
        """Send a (picklable) object"""
        self._check_closed()
        self._check_writable()
        self._send_obj(obj)

    def _send_obj(self, obj: Any) -> None:
        self._send(_dumps(obj))

    def recv_bytes(self, maxlength: Optional[int] = None) -> bytes:
        """Receive bytes data as a bytes object."""
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._recv(maxlength)
        if data is None:
            self._bad_message_length()
        return data

    def recv_bytes_into(self, buf: Any, offset: int = 0) -> int:
        """Receive bytes data into a writeable bytes-like object.
        Return the number of bytes read."""
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            bytesize = m.itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            if offset > bytesize:
                raise ValueError("offset too large")
            size, whole = self._recv_into(m, offset)
            if whole is not None:
                raise BufferTooShort(whole)
            return size

    def recv(self) -> Any:
        """Receive a (picklable) object"""
        self._check_closed()
        self._check_readable()
        return self._recv_obj()

    def _recv_obj(self) -> Any:
        return pickle.loads(self._recv(None))

    def poll(self, timeout: Optional[float] = 0.0) -> bool:
        """Whether there is any input available to be read"""
        self._check_closed()
        self._check_readable()
        return self._poll(timeout)

    def __enter__(self) -> "_ConnectionBase":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> None:
        self.close()


class Connection(_ConnectionBase):
    """Connection class based on an arbitrary file descriptor (a socket or
    a pipe), with the stdlib's framing: a 4-byte big-endian length (-1 and
    an 8-byte length for messages over 2 GiB), then the payload."""

    def fileno(self) -> int:
        """File descriptor or handle of the connection"""
        self._check_closed()
        return self._handle

    def _close(self, handle: int) -> None:
        os.close(handle)

    def _write_all(self, data: Any) -> None:
        fd = self._handle
        view = memoryview(data)
        while view.nbytes:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                _wait_fd(fd, select.POLLOUT, None)
                continue
            view = view[n:]
            if view.nbytes and not _wait_fd(fd, select.POLLOUT, 0):
                _wait_fd(fd, select.POLLOUT, None)

    def _send(self, buf: Any) -> None:
        n = len(buf)
        if n > 0x7FFFFFFF:
            header = struct.pack("!iQ", -1, n)
        else:
            header = struct.pack("!i", n)
        if n <= _ONE_WRITE_MAX:
            # one write for small messages: fewer system calls, and the
            # peer sees the message whole
            self._write_all(header + bytes(buf))
        else:
            self._write_all(header)
            self._write_all(buf)

    def _read_exact(self, view: memoryview) -> None:
        fd = self._handle
        pos, n = 0, view.nbytes
        while pos < n:
            if not _wait_fd(fd, select.POLLIN, 0):
                _wait_fd(fd, select.POLLIN, None)
            try:
                k = os.readv(fd, [view[pos:]])
            except BlockingIOError:
                continue
            if k == 0:
                if pos == 0:
                    raise EOFError
                raise OSError("got end of file during message")
            pos += k

    def _read_header(self) -> int:
        head = bytearray(4)
        self._read_exact(memoryview(head))
        size, = struct.unpack("!i", head)
        if size == -1:
            more = bytearray(8)
            try:
                self._read_exact(memoryview(more))
            except EOFError:
                raise OSError("got end of file during message") from None
            size, = struct.unpack("!Q", more)
        elif size < 0:
            raise OSError("bad message length")
        return size

    def _read_body(self, size: int) -> bytes:
        """The next size bytes. A large message is read in pieces that grow
        with what arrived (see _RECV_CHUNK), so a header claiming more than
        the peer sends costs no memory up front; EOF is an OSError."""
        try:
            if size <= _RECV_CHUNK:
                buf = bytearray(size)
                if size:
                    self._read_exact(memoryview(buf))
                return bytes(buf)
            chunks = []
            left, n = size, _RECV_CHUNK
            while left:
                buf = bytearray(min(n, left))
                self._read_exact(memoryview(buf))
                chunks.append(buf)
                left -= len(buf)
                n = min(2 * n, _RECV_CHUNK_MAX)
            return b"".join(chunks)
        except EOFError:
            raise OSError("got end of file during message") from None

    def _recv(self, maxlength: Optional[int]) -> Optional[bytes]:
        size = self._read_header()
        if maxlength is not None and size > maxlength:
            return None
        return self._read_body(size)

    def _recv_into(self, m: memoryview, offset: int) -> Tuple[int, Optional[bytes]]:
        size = self._read_header()
        if size > m.nbytes - offset:
            return size, self._read_body(size)
        if size:
            flat = m if m.format == "B" and m.ndim == 1 else m.cast("B")
            try:
                self._read_exact(flat[offset:offset + size])
            except EOFError:
                raise OSError("got end of file during message") from None
        return size, None

    def _poll(self, timeout: Optional[float]) -> bool:
        return _wait_fd(self._handle, select.POLLIN, timeout)

    def __reduce__(self) -> Any:
        return _reduce_connection(self)


# descriptors travelling with a message on a shared-memory pipe: the
# pickler puts those of the connections it meets here, the unpickler takes
# them from here
_tls = threading.local()


class PipeConnection(Connection):
    """One end of a gomp pipe: a ring per direction in shared memory.

    Instances come from :func:`Pipe` (or from unpickling one); the
    constructor is not public.

    A message whose writer closed or died before its end raises OSError;
    the end then reports EOFError, as a socket's does. A header that
    announces descriptors the message did not carry raises OSError(EBADMSG).
    Whatever length a header claims, the receiver holds only what arrived
    (plus one 64 MiB step of its buffer)."""

    def __init__(self, handle: int, readable: bool = True, writable: bool = True) -> None:
        super().__init__(handle, readable, writable)

    def fileno(self) -> int:
        """A descriptor that select/poll/wait report readable when a message
        is waiting or the other end is closed"""
        self._check_closed()
        return _go().pipe_fileno(self._handle)

    def _close(self, handle: int) -> None:
        _go().pipe_close(handle)

    def _send(self, buf: Any) -> None:
        _go().pipe_send(self._handle, buf)

    def send(self, obj: Any) -> None:
        """Send a (picklable) object"""
        if self._handle is None:
            raise OSError("handle is closed")
        if not self._writable:
            raise OSError("connection is read-only")
        if type(obj) in reduction.CORE_SCALARS:
            _go().pipe_send(self._handle, pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))
        else:
            self._send_obj(obj)

    def recv(self) -> Any:
        """Receive a (picklable) object"""
        if self._handle is None:
            raise OSError("handle is closed")
        if not self._readable:
            raise OSError("connection is write-only")
        return self._recv_obj()

    def _send_obj(self, obj: Any) -> None:
        fds: "list[int]" = []
        outer = getattr(_tls, "outgoing", None)
        _tls.outgoing = fds
        try:
            data = _dumps(obj)
        finally:
            _tls.outgoing = outer
        _go().pipe_send(self._handle, data, fds)

    def _recv(self, maxlength: Optional[int]) -> Optional[bytes]:
        g = _go()
        data, fds = g.pipe_recv(self._handle, -1 if maxlength is None else maxlength)
        if data is None:
            return None
        for fd in fds:  # raw bytes carry no descriptors
            os.close(fd)
        return data

    def _recv_obj(self) -> Any:
        data, fds = _go().pipe_recv(self._handle)
        if not fds:
            return pickle.loads(data)
        outer = getattr(_tls, "incoming", None)
        _tls.incoming = fds
        try:
            return pickle.loads(data)
        finally:
            _tls.incoming = outer
            for fd in fds:
                if fd >= 0:  # not taken by an unpickled object
                    os.close(fd)

    def _recv_into(self, m: memoryview, offset: int) -> Tuple[int, Optional[bytes]]:
        size, fds, whole = _go().pipe_recv_into(self._handle, m, offset)
        for fd in fds:
            os.close(fd)
        return size, whole

    def _poll(self, timeout: Optional[float]) -> bool:
        return _go().pipe_poll(self._handle, timeout)

    # reduction.send_handle/recv_handle: the descriptors travel in a message
    # of their own, shaped as the stdlib's (one byte: their count)

    def _send_fds(self, fds: "list[int]") -> None:
        self._check_closed()
        self._check_writable()
        _go().pipe_send(self._handle, bytes([len(fds) % 256]), list(fds))

    def _recv_fds(self, size: int) -> "list[int]":
        self._check_closed()
        self._check_readable()
        data, fds = _go().pipe_recv(self._handle)
        if len(fds) != size or data != bytes([size % 256]):
            for fd in fds:
                os.close(fd)
            raise RuntimeError("received %d items of ancdata" % (len(fds),))
        return list(fds)

    def _ready(self) -> bool:
        return _go().pipe_poll(self._handle, 0)

    def __reduce__(self) -> Any:
        return _reduce_pipe_connection(self)


def Pipe(duplex: bool = True) -> Tuple[Connection, Connection]:
    """Returns pair of connection objects at either end of a pipe"""
    a, b = _go().pipe_new(bool(duplex))
    if duplex:
        return PipeConnection(a), PipeConnection(b)
    return PipeConnection(a, writable=False), PipeConnection(b, readable=False)


# Pickling an object that holds descriptors (a connection, a socket): to a
# child being started they are inherited; inside a message on a gomp pipe
# they travel with it (SCM_RIGHTS on the pipe's socket); otherwise (a
# queue, bytes pickled now and sent later) the process that unpickles the
# object fetches them from this one (see gomp.resource_sharer).


class _ChildFds:
    """Descriptors passed to a child when it starts."""

    def __init__(self, dups: "list[Any]") -> None:
        self.dups = dups

    def detach(self) -> "list[int]":
        return [d.detach() for d in self.dups]  # inherited: ours to own


class _MessageFds:
    """Descriptors that travel with the pipe message being sent; the
    receiving side hands them to the unpickler (``_tls.incoming``)."""

    def __init__(self, first: int, count: int) -> None:
        self.first = first
        self.count = count

    def detach(self) -> "list[int]":
        incoming = getattr(_tls, "incoming", None)
        stop = self.first + self.count
        if incoming is None or stop > len(incoming) or -1 in incoming[self.first:stop]:
            raise RuntimeError("an object holding a descriptor can only be unpickled (once) "
                               "from the pipe message that carried it")
        fds = incoming[self.first:stop]
        incoming[self.first:stop] = [-1] * self.count  # taken: not closed after the load
        return fds


def _message_fds(fds: "list[int]") -> Optional[_MessageFds]:
    """Send fds with the pipe message being pickled in this thread, if
    any; they must stay open until that send returns."""
    outgoing = getattr(_tls, "outgoing", None)
    if outgoing is None:
        return None
    first = len(outgoing)
    outgoing.extend(fds)
    return _MessageFds(first, len(fds))


def _pass_fds(fds: "list[int]") -> Any:
    """A picklable object whose ``detach()``, in the process that unpickles
    it, returns copies of fds (owned by the caller)."""
    from .context import get_spawning_popen
    popen = get_spawning_popen()
    if popen is not None:
        return _ChildFds([popen.DupFd(popen.duplicate_for_child(fd)) for fd in fds])
    passed = _message_fds(fds)
    if passed is not None:
        return passed
    return resource_sharer.DupFds(fds)


# the name under which an earlier gomp kept shared descriptors
_SharedFds = resource_sharer.DupFds


def _reduce_pipe_connection(conn: PipeConnection) -> Any:
    conn._check_closed()
    g = _go()
    files = g.pipe_files(conn._handle)
    fds = [fd for fd in files[:4] if fd >= 0]
    layout = tuple(files[4:])
    # the copy counts as open from now on: the other end's sends do not
    # fail while it travels (see gomp/pipe.go)
    g.pipe_reserve(conn._handle)
    return _rebuild_pipe_connection, (_pass_fds(fds), layout, conn.readable, conn.writable)


def _open_end(fds: "list[int]", layout: Tuple[int, int]) -> int:
    files = list(fds) + [-1] * (4 - len(fds))
    return _go().pipe_open(tuple(files[:4]) + tuple(layout))


def _rebuild_pipe_connection(passed: Any, layout: Tuple[int, int], readable: bool,
                             writable: bool) -> PipeConnection:
    return PipeConnection(_open_end(passed.detach(), layout), readable, writable)


reduction._register_own(PipeConnection, _reduce_pipe_connection)


def reduce_connection(conn: Connection) -> Any:
    """Reduce a socket or pipe based Connection: it travels by its descriptor."""
    conn._check_closed()
    return rebuild_connection, (_pass_fds([conn.fileno()]), conn.readable, conn.writable)


def rebuild_connection(df: Any, readable: bool, writable: bool) -> Connection:
    """Rebuild a Connection from what reduce_connection made (or from any
    object whose detach() gives a descriptor, as the stdlib's DupFd)."""
    fd = df.detach()
    if isinstance(fd, list):
        fd = fd[0]
    return Connection(fd, readable, writable)


_reduce_connection, _rebuild_connection = reduce_connection, rebuild_connection
reduction._register_own(Connection, reduce_connection)


# ---------------------------------------------------------------------------
# wait


def _has_message(obj: Any) -> Optional[bool]:
    """For a gomp pipe end or queue reader, whether a message waits; None
    for anything else (its descriptor alone tells)."""
    ready = getattr(obj, "_ready", None) if not isinstance(obj, int) else None
    return ready() if ready is not None else None


def wait(object_list: Iterable[Any], timeout: Optional[float] = None) -> List[Any]:
    """Wait till an object in object_list is ready/readable.

    Returns list of those objects in object_list which are ready/readable."""
    objects = list(object_list)
    poller = select.poll()
    fd_of: "list[int]" = []
    for obj in objects:
        fd = obj if isinstance(obj, int) else obj.fileno()
        fd_of.append(fd)
        poller.register(fd, select.POLLIN)
    # a pipe end (or a queue's reader) with a message already waiting makes
    # the wait return at once, with whatever else is ready too (a queue
    # reader's descriptor is signalled a moment after the message lands)
    if any(_has_message(o) for o in objects):
        timeout = 0
    deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
    while True:
        if deadline is None:
            slice_ = SIGNAL_SLICE
        else:
            slice_ = min(SIGNAL_SLICE, max(deadline - time.monotonic(), 0))
        fds = {fd for fd, _ in poller.poll(slice_ * 1000)}
        # a pipe end's descriptor may, rarely, be signalled for a message
        # already taken: what says whether it has a message is believed
        ready = []
        for o, fd in zip(objects, fd_of):
            has = _has_message(o)
            if has or (has is None and fd in fds):
                ready.append(o)
        if ready:
            return ready
        if deadline is not None and time.monotonic() >= deadline:
            return []


# ---------------------------------------------------------------------------
# Listener and Client


def arbitrary_address(family: str) -> Any:
    """Return an arbitrary free address for the given family"""
    if family == "AF_INET":
        return ("localhost", 0)
    if family == "AF_INET6":
        return ("::1", 0)
    if family == "AF_UNIX":
        import tempfile
        return tempfile.mktemp(prefix="listener-", dir=_tempdir())
    raise ValueError("unrecognized family")


def _tempdir() -> str:
    from . import util
    return util.get_temp_dir()


def _validate_family(family: str) -> None:
    if family == "AF_PIPE":
        raise ValueError("Family %s is not recognized." % family)
    if family not in families:
        raise ValueError("Family %s is not recognized." % family)


def address_type(address: Any) -> str:
    """Return the types of the address: 'AF_INET', 'AF_UNIX', or 'AF_PIPE'"""
    if type(address) == tuple:
        return "AF_INET6" if len(address) == 4 or ":" in str(address[0]) else "AF_INET"
    if type(address) is str and address.startswith("\\\\"):
        return "AF_PIPE"
    if type(address) is str or _is_abstract_socket_namespace(address):
        return "AF_UNIX"
    raise ValueError("address type of %r unrecognized" % address)


def _is_abstract_socket_namespace(address: Any) -> bool:
    from .util import is_abstract_socket_namespace
    return is_abstract_socket_namespace(address)


def _unlink_socket(path: Any) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # removed already (with its directory, say)


class SocketListener:
    """A bound, listening socket whose accept() returns Connections."""

    def __init__(self, address: Any, family: str, backlog: int = 1) -> None:
        sock = socket.socket(getattr(socket, family))
        try:
            if os.name == "posix" and family != "AF_UNIX":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(True)
            sock.bind(address)
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        self._socket: Optional[socket.socket] = sock
        self._family = family
        self._address = sock.getsockname()
        self._last_accepted: Any = None
        self._unlink: Any = None
        if family == "AF_UNIX" and not _is_abstract_socket_namespace(address):
            # removed when closed, collected, or at exit if never closed (a
            # manager's process ends so), as the stdlib's
            from . import util
            self._unlink = util.Finalize(self, _unlink_socket, args=(address,), exitpriority=0)

    def accept(self) -> Connection:
        # poll in slices so that Ctrl-C interrupts a waiting accept(), and
        # a close() from another thread ends it
        while True:
            sock = self._socket
            if sock is None:
                raise OSError("listener is closed")
            if not _wait_fd(sock.fileno(), select.POLLIN, SIGNAL_SLICE):
                continue
            try:
                s, self._last_accepted = sock.accept()
            except (InterruptedError, BlockingIOError):
                continue
            s.setblocking(True)
            _no_delay(s)
            return Connection(s.detach())

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
            unlink, self._unlink = self._unlink, None
            if unlink is not None:
                unlink()


class Listener:
    """Returns a listener object.

    This is a wrapper for a bound socket which is 'listening' for
    connections, or for a Windows named pipe."""

    def __init__(self, address: Any = None, family: Optional[str] = None, backlog: int = 1,
                 authkey: Optional[bytes] = None) -> None:
        family = family or (address and address_type(address)) or default_family
        address = address or arbitrary_address(family)
        _validate_family(family)
        self._listener: Optional[SocketListener] = SocketListener(address, family, backlog)
        if authkey is not None and not isinstance(authkey, bytes):
            self.close()
            raise TypeError("authkey should be a byte string")
        self._authkey = authkey

    def accept(self) -> Connection:
        """Accept a connection on the bound socket or named pipe of `self`.

        Returns a `Connection` object."""
        if self._listener is None:
            raise OSError("listener is closed")
        c = self._listener.accept()
        if self._authkey is not None:
            try:
                _handshake(c, self._authkey, server=True)
            except BaseException:
                c.close()
                raise
        return c

    def close(self) -> None:
        """Close the bound socket or named pipe of `self`."""
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener.close()

    @property
    def address(self) -> Any:
        return self._listener._address if self._listener is not None else None

    @property
    def last_accepted(self) -> Any:
        return self._listener._last_accepted if self._listener is not None else None

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> None:
        self.close()


def Client(address: Any, family: Optional[str] = None,
           authkey: Optional[bytes] = None) -> Connection:
    """Returns a connection to the address of a `Listener`"""
    family = family or address_type(address)
    _validate_family(family)
    c = SocketClient(address)
    if authkey is not None:
        if not isinstance(authkey, bytes):
            c.close()
            raise TypeError("authkey should be a byte string")
        try:
            _handshake(c, authkey, server=False)
        except BaseException:
            c.close()
            raise
    return c


def SocketClient(address: Any) -> Connection:
    """Return a connection object connected to the socket given by
    `address`"""
    family = address_type(address)
    s = socket.socket(getattr(socket, family))
    try:
        s.setblocking(True)
        deadline = time.monotonic() + CONNECTION_TIMEOUT
        while True:
            try:
                s.connect(address)
                break
            except InterruptedError:
                continue
            except OSError as e:
                # a Unix listener whose backlog is full refuses for a while
                if e.errno != errno.EAGAIN or time.monotonic() > deadline:
                    raise
                time.sleep(_CONNECT_RETRY)
        _no_delay(s)
        return Connection(s.detach())
    except BaseException:
        s.close()
        raise


def _no_delay(s: socket.socket) -> None:
    """Send each message of a TCP connection at once: the handshake ends
    with two small writes in a row (the welcome, the first request), which
    Nagle's algorithm would hold back till the peer's delayed ACK (40 ms)."""
    if s.family in (socket.AF_INET, getattr(socket, "AF_INET6", None)):
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _handshake(c: Connection, authkey: bytes, server: bool) -> None:
    """Mutual authentication, the listener challenging first. On a Listener
    a client gets HANDSHAKE_TIMEOUT seconds to answer (TimeoutError after
    that), so that one that never answers does not stall accept() for ever.

    The errors are the stdlib's: AuthenticationError when the peer does not
    know the key or speaks another protocol, EOFError or an OSError (a
    ConnectionError) when it hangs up or dies half-way."""
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT if server else None
    c._deadline = deadline  # type: ignore[attr-defined]
    try:
        if server:
            deliver_challenge(c, authkey)
            answer_challenge(c, authkey)
        else:
            answer_challenge(c, authkey)
            deliver_challenge(c, authkey)
    finally:
        c._deadline = None  # type: ignore[attr-defined]


# the stdlib's authentication: HMAC over a random challenge. The challenge
# names its digest ({sha256}); a 16- or 20-byte message is the older
# protocol (HMAC-MD5, no prefix), which both sides still accept. Every
# Python gomp runs on speaks both, as the stdlib does from 3.12 on.

MESSAGE_LENGTH = 40
_CHALLENGE = CHALLENGE = b"#CHALLENGE#"
_WELCOME = WELCOME = b"#WELCOME#"
_FAILURE = FAILURE = b"#FAILURE#"
_MD5ONLY_MESSAGE_LENGTH = 20
_MD5_DIGEST_LEN = 16
_LEGACY_LENGTHS = (_MD5ONLY_MESSAGE_LENGTH, _MD5_DIGEST_LEN)
# the longest handshake message read (the stdlib's recv_bytes(256))
_AUTH_MESSAGE_MAX = 256
_ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
_MAX_DIGEST_LEN = max(len(d) for d in _ALLOWED_DIGESTS)


def _get_digest_name_and_payload(message: bytes) -> Tuple[str, bytes]:
    """Returns a digest name and the payload for a response hash.

    The name is empty for the legacy protocol (a 16- or 20-byte message,
    HMAC-MD5 without a prefix)."""
    if len(message) in _LEGACY_LENGTHS:
        return "", message
    if message.startswith(b"{"):
        end = message.find(b"}", 1, _MAX_DIGEST_LEN + 2)
        if end > 0 and message[1:end] in _ALLOWED_DIGESTS:
            return message[1:end].decode("ascii"), message[end + 1:]
    raise AuthenticationError("unsupported message length, missing digest prefix, "
                              "or unsupported digest: message=%r" % (message,))


def _create_response(authkey: bytes, message: bytes) -> bytes:
    """Create a MAC based on authkey and message: raw HMAC-MD5 for a legacy
    message (unless MD5 is unavailable), else b"{digest}" and the HMAC
    with that digest. The MAC covers the whole message, prefix included."""
    import hmac
    name = _get_digest_name_and_payload(message)[0]
    if not name:
        try:
            return hmac.new(authkey, message, "md5").digest()
        except ValueError:  # no MD5 (FIPS): the modern reply
            name = "sha256"
    mac = hmac.new(authkey, message, name).digest()
    return b"{%s}%s" % (name.encode("ascii"), mac)


def _verify_challenge(authkey: bytes, message: bytes, response: bytes) -> None:
    """Verify the peer's response to our challenge message; raises
    AuthenticationError if it is wrong. The peer may pick a digest for an
    unprefixed message; a prefixed one is covered by the MAC, so it cannot
    be downgraded."""
    import hmac
    name, mac = _get_digest_name_and_payload(response)
    name = name or "md5"
    try:
        expected = hmac.new(authkey, message, name).digest()
    except ValueError:
        raise AuthenticationError("%r unsupported" % name) from None
    if len(expected) != len(mac):
        raise AuthenticationError("expected %r of length %d got %d"
                                  % (name, len(expected), len(mac)))
    if not hmac.compare_digest(expected, mac):
        raise AuthenticationError("digest received was wrong")


def _recv_auth(connection: Any) -> bytes:
    deadline = getattr(connection, "_deadline", None)
    if deadline is not None and not connection.poll(max(deadline - time.monotonic(), 0)):
        # silence is not a wrong key: the peer may be stuck, or gone
        raise TimeoutError("no answer to the authentication challenge in time")
    return connection.recv_bytes(_AUTH_MESSAGE_MAX)  # reject large messages


def deliver_challenge(connection: Any, authkey: bytes, digest_name: str = "sha256") -> None:
    """Send a challenge over connection and check the peer's answer; raises
    AuthenticationError if the peer does not know authkey."""
    if not isinstance(authkey, bytes):
        raise ValueError("Authkey must be bytes, not {0!s}".format(type(authkey)))
    message = b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(MESSAGE_LENGTH))
    # a peer with the older protocol answers the whole message with HMAC-MD5
    connection.send_bytes(_CHALLENGE + message)
    response = _recv_auth(connection)
    try:
        _verify_challenge(authkey, message, response)
    except AuthenticationError:
        # a wrong digest stays an AuthenticationError if the peer has left
        try:
            connection.send_bytes(_FAILURE)
        except OSError:
            pass
        raise
    connection.send_bytes(_WELCOME)


def answer_challenge(connection: Any, authkey: bytes) -> None:
    """Answer the peer's challenge with authkey; raises AuthenticationError
    if the peer rejects the answer."""
    if not isinstance(authkey, bytes):
        raise ValueError("Authkey must be bytes, not {0!s}".format(type(authkey)))
    message = _recv_auth(connection)
    if not message.startswith(_CHALLENGE):
        raise AuthenticationError("Protocol error, expected challenge: message=%r" % (message,))
    message = message[len(_CHALLENGE):]
    if len(message) < _MD5ONLY_MESSAGE_LENGTH:
        raise AuthenticationError("challenge too short: %d bytes" % len(message))
    connection.send_bytes(_create_response(authkey, message))
    if _recv_auth(connection) != _WELCOME:
        raise AuthenticationError("digest sent was rejected")


class ConnectionWrapper:
    """A connection that serializes objects with given dumps/loads."""

    def __init__(self, conn: Any, dumps: Any, loads: Any) -> None:
        self._conn = conn
        self._dumps = dumps
        self._loads = loads
        for attr in ("fileno", "close", "poll", "recv_bytes", "send_bytes"):
            setattr(self, attr, getattr(conn, attr))

    def send(self, obj: Any) -> None:
        self._conn.send_bytes(self._dumps(obj))

    def recv(self) -> Any:
        return self._loads(self._conn.recv_bytes())


def _xml_dumps(obj: Any) -> bytes:
    import xmlrpc.client as xmlrpclib
    return xmlrpclib.dumps((obj,), None, None, None, 1).encode("utf-8")


def _xml_loads(s: bytes) -> Any:
    import xmlrpc.client as xmlrpclib
    (obj,), method = xmlrpclib.loads(s.decode("utf-8"))
    return obj


class XmlListener(Listener):
    def accept(self) -> Any:
        return ConnectionWrapper(Listener.accept(self), _xml_dumps, _xml_loads)


def XmlClient(*args: Any, **kwds: Any) -> Any:
    return ConnectionWrapper(Client(*args, **kwds), _xml_dumps, _xml_loads)

"""Managers: the stdlib's ``multiprocessing.managers``.

A manager is a server process that holds Python objects; other processes
use them through proxies. The server listens on a gomp ``Listener`` (with
no address given, a Unix socket in a directory only its user can enter)
and authenticates clients with the stdlib's challenge. One thread accepts
and authenticates every new client, through a selector and with a
deadline; a Unix peer of another user is hung up on before a byte is read.
A client on the same machine then moves to a shared-memory gomp ``Pipe``
handed over by the server, so that a method call is one pickled request
and one pickled reply over a ring in shared memory, served by one thread
per client connection. Clients on other machines stay on the socket.

Each thread of each process keeps one connection per manager, used for
method calls and for the bookkeeping (creation, reference counts) alike.
"""
from __future__ import annotations

import array
import errno
import ipaddress
import os
import pickle
import queue
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import types
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

from . import connection
from . import process
from . import resource_sharer
from . import util
from .context import AuthenticationError, ProcessError, get_spawning_popen
from .reduction import _register_own, core_types_only

__all__ = ["BaseManager", "SyncManager", "BaseProxy", "Token", "SharedMemoryManager"]


# ---------------------------------------------------------------------------
# pickling of types a manager often returns


def reduce_array(a: array.array) -> Any:
    return array.array, (a.typecode, a.tobytes())


def rebuild_as_list(obj: Any) -> Any:
    return list, (list(obj),)


_register_own(array.array, reduce_array)
for _view in (type({}.items()), type({}.keys()), type({}.values())):
    _register_own(_view, rebuild_as_list)
del _view

# SharedMemoryManager needs gomp.shared_memory, imported when first used
HAS_SHMEM = True


# ---------------------------------------------------------------------------
# tokens and errors


class Token:
    """Type to uniquely identify a shared object"""

    __slots__ = ("typeid", "address", "id")

    def __init__(self, typeid: str, address: Any, id: Any) -> None:
        self.typeid = typeid
        self.address = address
        self.id = id

    def __getstate__(self) -> Tuple[str, Any, Any]:
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state: Tuple[str, Any, Any]) -> None:
        self.typeid, self.address, self.id = state

    def __repr__(self) -> str:
        return "%s(typeid=%r, address=%r, id=%r)" % (
            type(self).__name__, self.typeid, self.address, self.id)


class RemoteError(Exception):
    """An error raised in the manager's process, with its traceback."""

    def __str__(self) -> str:
        return "\n" + "-" * 75 + "\n" + str(self.args[0]) + "-" * 75


class RemoteTraceback(Exception):
    """The traceback of an exception raised by a managed object, attached
    to it as its ``__cause__`` in the calling process."""

    def __init__(self, tb: str) -> None:
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def convert_to_error(kind: str, result: Any) -> BaseException:
    """The exception that a reply of the given kind stands for."""
    if kind == "#ERROR":
        if isinstance(result, (tuple, list)) and len(result) == 2 and \
                isinstance(result[1], str):
            exc, tb = result
            if isinstance(exc, BaseException):
                exc.__cause__ = RemoteTraceback('\n"""\n%s"""' % tb)
                return exc
            return RemoteError(tb)  # the serializer could not carry the exception
        return result
    if kind in ("#TRACEBACK", "#UNSERIALIZABLE"):
        if not isinstance(result, str):
            raise TypeError("Result {0!r} (kind '{1}') type is {2}, not str".format(
                result, kind, type(result)))
        if kind == "#UNSERIALIZABLE":
            return RemoteError("Unserializable message: %s\n" % result)
        return RemoteError(result)
    return ValueError("Unrecognized message type {!r}".format(kind))


def dispatch(c: Any, id: Any, methodname: str, args: tuple = (), kwds: dict = {}) -> Any:
    """Send a message to manager using connection `c` and return response"""
    c.send((id, methodname, args, kwds))
    kind, result = c.recv()
    if kind == "#RETURN":
        return result
    try:
        raise convert_to_error(kind, result)
    finally:
        del result  # else the exception's frame keeps it: a cycle


def all_methods(obj: Any) -> "list[str]":
    """Return a list of names of methods of `obj`"""
    names = []
    for name in dir(obj):
        if callable(getattr(obj, name, None)):
            names.append(name)
    return names


def public_methods(obj: Any) -> "list[str]":
    """Return a list of names of methods of `obj` which do not start with '_'"""
    return [name for name in all_methods(obj) if name[0] != "_"]


listener_client = {
    "pickle": (connection.Listener, connection.Client),
    "xmlrpclib": (connection.XmlListener, connection.XmlClient),
}


def _format_exc() -> str:
    return traceback.format_exc()


# ---------------------------------------------------------------------------
# the server


class Server:
    """Server class which runs in a process controlled by a manager"""

    public = ["shutdown", "create", "accept_connection", "get_methods",
              "debug_info", "number_of_objects", "dummy", "incref", "decref"]

    def __init__(self, registry: dict, address: Any, authkey: bytes,
                 serializer: str) -> None:
        if not isinstance(authkey, bytes):
            raise TypeError("Authkey {0!r} is type {1!s}, not bytes".format(
                authkey, type(authkey)))
        if serializer not in listener_client:
            raise ValueError("unknown serializer %r" % (serializer,))
        self.registry = registry
        self.authkey = process.AuthenticationString(authkey)
        self.serializer = serializer
        # clients are authenticated by the accepter thread alone (see
        # _Handshake): a silent or slow one costs a descriptor, not a thread
        self.listener = connection.Listener(address=_default_address(address),
                                            backlog=_LISTEN_BACKLOG)
        self.address = self.listener.address
        self.id_to_obj: Dict[Any, tuple] = {"0": (None, (), None)}
        self.id_to_refcount: Dict[Any, int] = {}
        self.id_to_local_proxy_obj: Dict[Any, tuple] = {}
        self.mutex = threading.Lock()
        self.stop_event = threading.Event()
        self._controls = {name: getattr(self, name) for name in self.public}

    def serve_forever(self) -> None:
        """Run the server forever"""
        process.current_process()._manager_server = self  # type: ignore[attr-defined]
        try:
            accepter = threading.Thread(target=self.accepter, daemon=True,
                                        name="gomp-manager-accepter")
            accepter.start()
            try:
                while not self.stop_event.is_set():
                    self.stop_event.wait(1)
            except (KeyboardInterrupt, SystemExit):
                pass
        finally:
            if sys.stdout != sys.__stdout__:
                sys.stdout = sys.__stdout__
                sys.stderr = sys.__stderr__
            sys.exit(0)

    def accepter(self) -> None:
        """Accept and authenticate clients until the server stops, handing
        each authenticated one to a thread of its own.

        Nothing a client does stops this: a failure is logged and accepting
        goes on; the server stops only when its owner shuts it down."""
        while not self.stop_event.is_set():
            try:
                self._accept_forever()
                return
            except Exception as e:
                util.info("manager: accepting clients failed (%r); going on", e)
                self.stop_event.wait(_ACCEPT_RETRY)

    def _accept_forever(self) -> None:
        listener = self.listener._listener  # the SocketListener
        sock = listener._socket if listener is not None else None
        if sock is None:
            return  # closed before serving
        sock.setblocking(False)
        # only processes of our user may talk to a Unix socket (its file may
        # be in a directory others can reach: the user chose the address)
        check_peer = sock.family == socket.AF_UNIX
        sel = selectors.DefaultSelector()
        # clients being authenticated, oldest first (all get the same time)
        pending: Dict[socket.socket, _Handshake] = {}

        def drop(hs: _Handshake, why: Any) -> None:
            del pending[hs.sock]
            sel.unregister(hs.sock)
            hs.sock.close()
            util.info("manager: dropped a client before authentication (%s)", why)

        paused_until: Optional[float] = None
        sel.register(sock, selectors.EVENT_READ)
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                while pending:
                    hs = next(iter(pending.values()))
                    if hs.deadline > now:
                        break
                    drop(hs, "no answer in %g s" % AUTH_TIMEOUT)
                if paused_until is not None and now >= paused_until:
                    paused_until = None
                    sel.register(sock, selectors.EVENT_READ)
                # wake at the oldest client's deadline, the end of a pause,
                # or soon enough to see the server stop
                wake = now + _STOP_CHECK
                if pending:
                    wake = min(wake, next(iter(pending.values())).deadline)
                if paused_until is not None:
                    wake = min(wake, paused_until)
                for key, _events in sel.select(max(wake - now, 0.0)):
                    if key.fileobj is sock:
                        if not self._accept_some(sock, sel, pending, drop, check_peer):
                            # out of descriptors, say: retry a moment later
                            # rather than spin on a listener that stays ready
                            sel.unregister(sock)
                            paused_until = time.monotonic() + resource_sharer._ACCEPT_PAUSE
                        continue
                    hs = key.data
                    if pending.get(hs.sock) is not hs:
                        continue  # dropped earlier in this round
                    try:
                        done = hs.step(self.authkey)
                    except Exception as e:  # that client's failure: it alone goes
                        drop(hs, e or type(e).__name__)
                        continue
                    if done:
                        del pending[hs.sock]
                        sel.unregister(hs.sock)
                        self._start_serving(hs)
        finally:
            for hs in pending.values():
                hs.sock.close()
            sel.close()

    def _accept_some(self, sock: socket.socket, sel: selectors.BaseSelector,
                     pending: "Dict[socket.socket, _Handshake]", drop: Callable[..., None],
                     check_peer: bool) -> bool:
        """Accept the clients waiting on sock (a few dozen at most, so that
        those being authenticated get their turn) and send each its
        challenge. Returns False if accepting failed for want of a
        resource."""
        for _ in range(_ACCEPT_BATCH):
            try:
                s, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # that client left already
                if sock.fileno() < 0:
                    raise  # the listener was closed
                util.info("manager: cannot accept a client (%r)", e)
                return False
            if check_peer and not resource_sharer._same_user(s):
                s.close()
                continue
            if len(pending) >= MAX_UNAUTHENTICATED:
                # the oldest is the likeliest to be one that never answers
                drop(next(iter(pending.values())), "too many clients authenticating")
            try:
                s.setblocking(False)
                connection._no_delay(s)
                hs = _Handshake(s, peer, time.monotonic() + AUTH_TIMEOUT)
                sel.register(s, selectors.EVENT_READ, hs)
            except Exception as e:
                s.close()
                util.info("manager: dropped a client before authentication (%r)", e)
                continue
            pending[s] = hs
        return True

    def _start_serving(self, hs: "_Handshake") -> None:
        """Serve an authenticated client in a thread of its own; if there
        is none to be had, that client alone is hung up on."""
        try:
            hs.sock.setblocking(True)
            conn = connection.Connection(hs.sock.detach())
        except OSError:
            hs.sock.close()
            return
        try:
            conn._local = _same_host(conn.fileno(), hs.peer)  # type: ignore[attr-defined]
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()
        except Exception as e:  # RuntimeError: can't start new thread
            util.info("manager: cannot serve a client (%r); hanging up", e)
            conn.close()

    def handle_request(self, conn: Any) -> None:
        """Handle a new connection: authenticate it, then serve its requests
        until it closes"""
        try:
            connection._handshake(conn, self.authkey, server=True)
        except Exception as e:
            util.info("manager: a client failed to authenticate: %s", e)
            conn.close()
            return
        self._serve_connection(conn)

    def _serve_connection(self, conn: Any) -> None:
        """Serve the requests of an authenticated connection until it
        closes, then close it."""
        try:
            if self.serializer == "xmlrpclib":
                conn = connection.ConnectionWrapper(conn, connection._xml_dumps,
                                                    connection._xml_loads)
            self.serve_client(conn)
        except SystemExit:
            pass
        finally:
            conn.close()

    def serve_client(self, conn: Any) -> None:
        """Handle requests from the proxies in a particular process/thread"""
        recv = conn.recv
        send = conn.send
        send_bytes = conn.send_bytes
        plain_wire = self.serializer == "pickle"
        id_to_obj = self.id_to_obj
        controls = self._controls
        stop = self.stop_event
        while not stop.is_set():
            try:
                request = recv()
            except (EOFError, OSError):
                return  # the client closed its end, or died
            except Exception:
                msg: Any = ("#TRACEBACK", _format_exc())
            else:
                try:
                    ident, methodname, args, kwds = request
                    if ident is None:
                        if methodname == "accept_connection":
                            newconn = self._accept_connection(conn, *args, **kwds)
                            if newconn is not conn:
                                conn.close()
                                conn = newconn
                                recv = conn.recv
                                send = conn.send
                                send_bytes = conn.send_bytes
                            continue
                        func = controls.get(methodname)
                        if func is None:
                            raise AttributeError("%r unrecognized" % (methodname,))
                        msg = ("#RETURN", func(conn, *args, **kwds))
                    else:
                        try:
                            obj, exposed, gettypeid = id_to_obj[ident]
                        except KeyError:
                            try:
                                obj, exposed, gettypeid = self.id_to_local_proxy_obj[ident]
                            except KeyError:
                                raise KeyError(ident) from None
                        if methodname not in exposed:
                            msg = self._fallback(conn, ident, obj, exposed, methodname,
                                                 args, kwds)
                        else:
                            try:
                                res = getattr(obj, methodname)(*args, **kwds)
                            except Exception as e:
                                msg = ("#ERROR", (e, _format_exc()))
                            else:
                                typeid = gettypeid and gettypeid.get(methodname)
                                if typeid:
                                    rident, rexposed = self.create(conn, typeid, res)
                                    msg = ("#PROXY", (rexposed, Token(typeid, self.address,
                                                                      rident)))
                                else:
                                    msg = ("#RETURN", res)
                except Exception:
                    msg = ("#TRACEBACK", _format_exc())
            try:
                try:
                    if plain_wire and core_types_only(msg[1]):
                        send_bytes(_plain_dumps(msg))
                    else:
                        send(msg)
                except (EOFError, BrokenPipeError, ConnectionError):
                    raise
                except Exception:
                    if msg[0] == "#ERROR":
                        # the exception itself does not pickle: its text does
                        send(("#TRACEBACK", msg[1][1]))
                    else:
                        send(("#UNSERIALIZABLE", _format_exc()))
            except Exception as e:
                util.info("manager: cannot reply to a client (%r); dropping it", e)
                return
            msg = request = None  # do not keep the last result alive

    def _fallback(self, conn: Any, ident: Any, obj: Any, exposed: Any, methodname: str,
                  args: tuple, kwds: dict) -> Any:
        fallback = self.fallback_mapping.get(methodname)
        if fallback is None:
            return ("#TRACEBACK", "AttributeError: method %r of %r object is not in "
                    "exposed=%r\n" % (methodname, type(obj), exposed))
        try:
            return ("#RETURN", fallback(self, conn, ident, obj, *args, **kwds))
        except Exception:
            return ("#TRACEBACK", _format_exc())

    def fallback_getvalue(self, conn: Any, ident: Any, obj: Any) -> Any:
        return obj

    def fallback_str(self, conn: Any, ident: Any, obj: Any) -> str:
        return str(obj)

    def fallback_repr(self, conn: Any, ident: Any, obj: Any) -> str:
        return repr(obj)

    fallback_mapping = {
        "__str__": fallback_str,
        "__repr__": fallback_repr,
        "#GETVALUE": fallback_getvalue,
    }

    def _accept_connection(self, c: Any, name: str = "", want_pipe: bool = False) -> Any:
        """Name the thread serving c and, for a client on this machine, move
        the conversation to a shared-memory pipe. Returns the connection to
        go on serving."""
        threading.current_thread().name = name or threading.current_thread().name
        if not want_pipe or not getattr(c, "_local", False):
            c.send(("#RETURN", None))
            return c
        try:
            ours, theirs = connection.Pipe()
        except Exception:
            c.send(("#RETURN", None))
            return c
        try:
            c.send(("#RETURN", theirs))
        finally:
            theirs.close()
        # the client says whether it could open its end
        try:
            ok = c.recv()
        except (EOFError, OSError):
            ours.close()
            raise SystemExit
        if ok:
            return ours
        ours.close()
        return c

    def accept_connection(self, c: Any, name: str) -> None:
        """Name the thread serving this connection"""
        threading.current_thread().name = name

    def dummy(self, c: Any) -> None:
        pass

    def debug_info(self, c: Any) -> str:
        """Return some info --- useful to spot problems with refcounting"""
        with self.mutex:
            lines = []
            for ident in sorted(self.id_to_refcount):
                if ident != "0":
                    lines.append("  %s:       refcount=%s\n    %s" % (
                        ident, self.id_to_refcount[ident], str(self.id_to_obj[ident][0])[:75]))
            return "\n".join(lines)

    def number_of_objects(self, c: Any) -> int:
        """Number of shared objects"""
        return len(self.id_to_refcount)

    def shutdown(self, c: Any) -> None:
        """Shutdown this process"""
        try:
            c.send(("#RETURN", None))
        except Exception:
            pass
        finally:
            self.stop_event.set()
        raise SystemExit  # the reply is sent: this thread is done

    def create(self, c: Any, typeid: str, /, *args: Any, **kwds: Any) -> Tuple[str, tuple]:
        """Create a new shared object and return its id"""
        with self.mutex:
            callable_, exposed, method_to_typeid, proxytype = self.registry[typeid]
        if callable_ is None:
            if kwds or len(args) != 1:
                raise ValueError("Without callable, must have one non-keyword argument")
            obj = args[0]
        else:
            obj = callable_(*args, **kwds)
        if exposed is None:
            exposed = public_methods(obj)
        if method_to_typeid is not None:
            if not isinstance(method_to_typeid, dict):
                raise TypeError("Method_to_typeid {0!r}: type {1!s}, not dict".format(
                    method_to_typeid, type(method_to_typeid)))
            exposed = list(exposed) + list(method_to_typeid)
        ident = "%x" % id(obj)
        with self.mutex:
            self.id_to_obj[ident] = (obj, frozenset(exposed), method_to_typeid)
            self.id_to_refcount[ident] = self.id_to_refcount.get(ident, 0) + 1
        return ident, tuple(exposed)

    def get_methods(self, c: Any, token: Token) -> tuple:
        """Return the methods of the shared object indicated by token"""
        return tuple(self.id_to_obj[token.id][1])

    def incref(self, c: Any, ident: Any) -> None:
        with self.mutex:
            try:
                self.id_to_refcount[ident] += 1
            except KeyError:
                # no reference left outside, but one inside the manager (a
                # proxy stored in another managed object) brings it back
                if ident in self.id_to_local_proxy_obj:
                    self.id_to_refcount[ident] = 1
                    self.id_to_obj[ident] = self.id_to_local_proxy_obj[ident]
                else:
                    raise

    def decref(self, c: Any, ident: Any) -> None:
        self._decref_many((ident,), strict=True)

    def decref_many(self, c: Any, idents: Sequence[Any]) -> None:
        self._decref_many(idents, strict=False)

    def _decref_many(self, idents: Sequence[Any], strict: bool) -> None:
        dead = []
        with self.mutex:
            for ident in idents:
                count = self.id_to_refcount.get(ident)
                if count is None:
                    if ident in self.id_to_local_proxy_obj or not strict:
                        continue
                    raise KeyError(ident)
                if count <= 0:
                    raise AssertionError("Id {0!s} ({1!r}) has refcount {2:n}, not 1+".format(
                        ident, self.id_to_obj[ident], count))
                if count == 1:
                    del self.id_to_refcount[ident]
                    # dropped outside the lock: the object may hold proxies
                    # whose own release comes back here
                    dead.append(self.id_to_obj.pop(ident, None))
                else:
                    self.id_to_refcount[ident] = count - 1
        del dead[:]


Server.public.append("decref_many")


def _same_host(fd: int, peer: Any) -> bool:
    """Whether the peer of an accepted socket runs on this machine (it can
    then share memory with the server)."""
    if not isinstance(peer, tuple):
        return True  # a Unix socket
    sock = socket.socket(fileno=fd)
    try:
        local = sock.getsockname()[0]
    finally:
        sock.detach()
    host = str(peer[0])
    return host == local or ipaddress.ip_address(host.split("%")[0]).is_loopback


# seconds a new client of a manager has to pass the authentication handshake
AUTH_TIMEOUT = 5.0
# clients being authenticated at once: a new one beyond that replaces the
# oldest, so that connections that say nothing cannot lock others out
MAX_UNAUTHENTICATED = 64
# clients queued till the accepter takes them (the stdlib's: 16), so that
# a burst of them is not refused
_LISTEN_BACKLOG = 128
# clients the accepter takes in one round, so that those being
# authenticated get their turn
_ACCEPT_BATCH = 64
# the accepter sees the server stop within this (seconds)
_STOP_CHECK = 0.5
# the accepter's pause before it starts over after an unexpected failure
_ACCEPT_RETRY = 0.1
# while a manager's server starts, whether its process died is checked
# this often (seconds)
_START_CHECK = 0.1
_MSG_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


class _Handshake:
    """The server's side of the stdlib's mutual authentication for one
    client (``deliver_challenge`` then ``answer_challenge``, byte for byte),
    driven by the accepter's selector: it never blocks, so a client that
    says nothing, or garbage, delays no other.

    It reads exactly the handshake's messages, never past them: what the
    client sends next is left for the thread that serves it."""

    __slots__ = ("sock", "peer", "deadline", "_stage", "_challenge", "_buf", "_size")

    def __init__(self, sock: socket.socket, peer: Any, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self._stage = 0  # 0: its answer, 1: its challenge, 2: its welcome
        self._buf = bytearray()
        self._size = -1  # of the message being read; -1 while in the header
        self._challenge = b"{sha256}" + os.urandom(connection.MESSAGE_LENGTH)
        self._send(connection._CHALLENGE + self._challenge)

    def _send(self, payload: bytes) -> None:
        data = struct.pack("!i", len(payload)) + payload
        # a handshake writes under 200 bytes in all, which a socket's buffer
        # always holds: a short write means the client is gone
        if self.sock.send(data, _MSG_NOSIGNAL) != len(data):
            raise OSError("short write to a client")

    def _message(self) -> Optional[bytes]:
        """The next whole message from the client, or None until it has
        all arrived. Raises EOFError if the client hung up."""
        while True:
            if self._size < 0:
                want = 4 - len(self._buf)
            else:
                want = self._size - len(self._buf)
                if want == 0:
                    message = bytes(self._buf)
                    self._buf.clear()
                    self._size = -1
                    return message
            try:
                chunk = self.sock.recv(want)
            except (BlockingIOError, InterruptedError):
                return None
            if not chunk:
                raise EOFError("the client hung up")
            self._buf += chunk
            if self._size < 0 and len(self._buf) == 4:
                size, = struct.unpack("!i", self._buf)
                # checked before anything is read or allocated for it
                if not 0 <= size <= connection._AUTH_MESSAGE_MAX:
                    raise OSError("bad message length")
                self._size = size
                self._buf.clear()

    def step(self, authkey: bytes) -> bool:
        """Go on with what the client sent. Returns True once it has
        authenticated; raises AuthenticationError for a wrong key or
        protocol, EOFError or OSError if the client hung up."""
        while True:
            message = self._message()
            if message is None:
                return False
            if self._stage == 0:
                try:
                    connection._verify_challenge(authkey, self._challenge, message)
                except AuthenticationError:
                    try:
                        self._send(connection._FAILURE)
                    except OSError:
                        pass
                    raise
                self._send(connection._WELCOME)
                self._stage = 1
            elif self._stage == 1:
                if not message.startswith(connection._CHALLENGE):
                    raise AuthenticationError("Protocol error, expected challenge")
                message = message[len(connection._CHALLENGE):]
                if len(message) < connection._MD5ONLY_MESSAGE_LENGTH:
                    raise AuthenticationError("challenge too short: %d bytes" % len(message))
                self._send(connection._create_response(authkey, message))
                self._stage = 2
            else:
                if message != connection._WELCOME:
                    raise AuthenticationError("digest sent was rejected")
                return True


def _default_address(address: Any) -> Any:
    """Where a manager listens: the address its owner gave, else (as the
    stdlib) a Unix socket in this process's temporary directory, which only
    its user can enter (mode 0700)."""
    if address is None:
        return connection.arbitrary_address("AF_UNIX")
    return address


# ---------------------------------------------------------------------------
# connections of the client side: one per thread per manager


class _State:
    __slots__ = ["value"]
    INITIAL = 0
    STARTED = 1
    SHUTDOWN = 2


State = _State

# per manager address: a thread-local holding this thread's connection
_address_to_local: Dict[Any, Any] = {}
_local_mutex = threading.Lock()
# references to release, gathered by finalizers that run while their thread
# is in the middle of a call (or that have no connection)
_pending_decrefs: "list[tuple]" = []
_busy = threading.local()


def _want_pipe(address: Any) -> bool:
    """Whether to ask the manager for a shared-memory pipe (it offers one
    only to a client on its own machine)."""
    return True


class ProcessLocalSet(set):
    """A set that a child process gets empty."""

    def __init__(self) -> None:
        util.register_after_fork(self, lambda obj: obj.clear())

    def __reduce__(self) -> Any:
        return type(self), ()


def _tls_for(address: Any) -> Any:
    tls = _address_to_local.get(address)
    if tls is None:
        with _local_mutex:
            tls = _address_to_local.get(address)
            if tls is None:
                tls = _address_to_local[address] = threading.local()
    return tls


def _open_connection(address: Any, authkey: bytes, serializer: str) -> Any:
    """A new authenticated connection to the manager at address, on a
    shared-memory pipe when the manager is on this machine."""
    client = listener_client[serializer][1]
    conn = client(address, authkey=authkey)
    name = process.current_process().name
    if threading.current_thread().name != "MainThread":
        name += "|" + threading.current_thread().name
    want_pipe = serializer == "pickle" and _want_pipe(address)
    try:
        conn.send((None, "accept_connection", (name, want_pipe), {}))
        try:
            kind, result = conn.recv()
        except EOFError:
            raise  # the manager hung up
        except Exception as e:
            # the reply carried a pipe end whose descriptors could not be
            # fetched from the manager (say, another network namespace):
            # the conversation stays on the socket
            util.debug("manager: no shared-memory pipe (%s)", e)
            conn.send(False)
            return conn
        if kind != "#RETURN":
            try:
                raise convert_to_error(kind, result)
            finally:
                del result  # else the exception's frame keeps it: a cycle
        if result is None:
            return conn
        conn.send(True)
    except BaseException:
        conn.close()
        raise
    conn.close()
    return result


def _get_connection(address: Any, authkey: bytes, serializer: str) -> Any:
    tls = _tls_for(address)
    try:
        return tls.connection
    except AttributeError:
        conn = tls.connection = _open_connection(address, authkey, serializer)
        return conn


def _drop_connection(address: Any) -> None:
    """Forget this thread's connection to address (after a call was
    interrupted half-way, its next reply would be out of step)."""
    tls = _address_to_local.get(address)
    conn = getattr(tls, "connection", None)
    if conn is not None:
        del tls.connection
        try:
            conn.close()
        except Exception:
            pass


def _plain_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)


def _roundtrip(conn: Any, request: tuple, address: Any) -> Tuple[str, Any]:
    try:
        conn.send(request)
    except Exception as e:
        if not isinstance(e, (OSError, EOFError)):
            raise  # the request did not pickle: nothing was sent
        _drop_connection(address)
        raise
    except BaseException:
        _drop_connection(address)
        raise
    try:
        return conn.recv()
    except BaseException:
        # interrupted between request and reply (Ctrl-C, a dead manager):
        # this connection is out of step, the next call uses a new one
        _drop_connection(address)
        raise


def _call(address: Any, authkey: bytes, serializer: str, ident: Any, methodname: str,
          args: tuple = (), kwds: dict = {}) -> Any:
    """One request and its reply over this thread's connection to address."""
    conn = _get_connection(address, authkey, serializer)
    _busy.on = True
    try:
        kind, result = _roundtrip(conn, (ident, methodname, args, kwds), address)
    finally:
        _busy.on = False
    if kind == "#RETURN":
        return result
    try:
        raise convert_to_error(kind, result)
    finally:
        del result  # else the exception's frame keeps it: a cycle


def _flush_decrefs() -> None:
    """Send the reference releases that finalizers left for later."""
    if getattr(_busy, "on", False):
        return
    by_address: Dict[Any, tuple] = {}
    while _pending_decrefs:
        try:
            address, authkey, serializer, ident = _pending_decrefs.pop()
        except IndexError:
            break
        entry = by_address.setdefault(address, (authkey, serializer, []))
        entry[2].append(ident)
    for address, (authkey, serializer, idents) in by_address.items():
        try:
            _call(address, authkey, serializer, None, "decref_many", (idents,))
        except Exception as e:
            util.debug("... decref failed %s", e)


# releases still waiting when the process exits go out before the managers
# it started shut down (exit priority 0)
util.Finalize(None, _flush_decrefs, exitpriority=5)


# ---------------------------------------------------------------------------
# managers


class BaseManager:
    """Base class for managers"""

    _registry: Dict[str, tuple] = {}
    _Server = Server

    def __init__(self, address: Any = None, authkey: Optional[bytes] = None,
                 serializer: str = "pickle", ctx: Any = None, *,
                 shutdown_timeout: float = 1.0) -> None:
        if authkey is None:
            authkey = process.current_process().authkey
        if serializer not in listener_client:
            raise ValueError("unknown serializer %r" % (serializer,))
        self._address = address
        self._authkey = process.AuthenticationString(authkey)
        self._state = _State()
        self._state.value = _State.INITIAL
        self._serializer = serializer
        self._Listener, self._Client = listener_client[serializer]
        if ctx is None:
            from . import context
            ctx = context._default_context.get_context()
        self._ctx = ctx
        self._shutdown_timeout = shutdown_timeout
        self._process: Any = None

    def _check_initial(self, what: str = "server") -> None:
        if self._state.value != _State.INITIAL:
            if self._state.value == _State.STARTED:
                raise ProcessError("Already started %s" % what)
            if self._state.value == _State.SHUTDOWN:
                raise ProcessError("Manager has shut down")
            raise ProcessError("Unknown state {!r}".format(self._state.value))

    def get_server(self) -> Server:
        """Return server object with serve_forever() method and address attribute"""
        self._check_initial()
        return self._Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self) -> None:
        """Connect manager object to the server process"""
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            dispatch(conn, None, "dummy")
        finally:
            conn.close()
        self._state.value = _State.STARTED

    def start(self, initializer: Optional[Callable[..., Any]] = None,
              initargs: Iterable[Any] = ()) -> None:
        """Spawn a server process for this manager object"""
        self._check_initial()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = connection.Pipe(duplex=False)
        self._process = self._ctx.Process(
            target=type(self)._run_server,
            args=(self._registry, self._address, self._authkey, self._serializer,
                  writer, initializer, tuple(initargs)))
        ident = ":".join(str(i) for i in getattr(self._process, "_identity", ()))
        self._process.name = type(self).__name__ + ("-" + ident if ident else "")
        self._process.start()
        writer.close()
        try:
            while not reader.poll(_START_CHECK):
                if not self._process.is_alive():
                    raise EOFError
            self._address = reader.recv()
        except EOFError:
            self._process.join(self._shutdown_timeout)
            raise ProcessError("the manager's process exited before it started "
                               "serving (exit code %r)" % (self._process.exitcode,)) from None
        finally:
            reader.close()
        self._state.value = _State.STARTED
        self.shutdown = util.Finalize(
            self, type(self)._finalize_manager,
            args=(self._process, self._address, self._authkey, self._state,
                  self._Client, self._shutdown_timeout),
            exitpriority=0)

    @classmethod
    def _run_server(cls, registry: dict, address: Any, authkey: bytes, serializer: str,
                    writer: Any, initializer: Optional[Callable[..., Any]] = None,
                    initargs: tuple = ()) -> None:
        """Create a server, report its address and run it"""
        # Ctrl-C in a terminal reaches the whole process group: the manager
        # stays up until its owner shuts it down
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if initializer is not None:
            initializer(*initargs)
        server = cls._Server(registry, address, authkey, serializer)
        writer.send(server.address)
        writer.close()
        util.info("manager serving at %r", server.address)
        server.serve_forever()

    def _create(self, typeid: str, /, *args: Any, **kwds: Any) -> Tuple[Token, tuple]:
        """Create a new shared object; return the token and exposed tuple"""
        assert self._state.value == _State.STARTED, "server not yet started"
        if _pending_decrefs:
            _flush_decrefs()
        ident, exposed = _call(self._address, self._authkey, self._serializer, None,
                               "create", (typeid,) + args, kwds)
        return Token(typeid, self._address, ident), exposed

    def join(self, timeout: Optional[float] = None) -> None:
        """Join the manager process (if it has been spawned)"""
        if self._process is not None:
            self._process.join(timeout)
            if not self._process.is_alive():
                self._process = None

    def _control(self, methodname: str, args: tuple = ()) -> Any:
        if _pending_decrefs:
            _flush_decrefs()
        return _call(self._address, self._authkey, self._serializer, None, methodname, args)

    def _debug_info(self) -> str:
        """Return some info about the servers shared objects and connections"""
        return self._control("debug_info")

    def _number_of_objects(self) -> int:
        """Return the number of shared objects"""
        return self._control("number_of_objects")

    def __enter__(self) -> "BaseManager":
        if self._state.value == _State.INITIAL:
            self.start()
        if self._state.value != _State.STARTED:
            if self._state.value == _State.INITIAL:
                raise ProcessError("Unable to start server")
            if self._state.value == _State.SHUTDOWN:
                raise ProcessError("Manager has shut down")
            raise ProcessError("Unknown state {!r}".format(self._state.value))
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.shutdown()

    def shutdown(self) -> None:  # replaced by a Finalize once started
        """Shut down the manager's process"""

    @staticmethod
    def _finalize_manager(process_: Any, address: Any, authkey: bytes, state: _State,
                          _Client: Any, shutdown_timeout: float) -> None:
        """Shutdown the manager process; will be registered as a finalizer"""
        if process_.is_alive():
            try:
                conn = _Client(address, authkey=authkey)
                try:
                    dispatch(conn, None, "shutdown")
                finally:
                    conn.close()
            except Exception:
                pass
            process_.join(timeout=shutdown_timeout)
            if process_.is_alive():
                process_.terminate()
                process_.join(timeout=shutdown_timeout)
                if process_.is_alive():
                    process_.kill()
                    process_.join()
        state.value = _State.SHUTDOWN
        with _local_mutex:
            tls = _address_to_local.pop(address, None)
        conn = getattr(tls, "connection", None)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    @property
    def address(self) -> Any:
        return self._address

    @classmethod
    def register(cls, typeid: str, callable: Optional[Callable[..., Any]] = None,
                 proxytype: Any = None, exposed: Optional[Sequence[str]] = None,
                 method_to_typeid: Optional[Dict[str, str]] = None,
                 create_method: bool = True) -> None:
        """Register a typeid with the manager type"""
        if "_registry" not in cls.__dict__:
            cls._registry = cls._registry.copy()
        if proxytype is None:
            proxytype = AutoProxy
        exposed = exposed or getattr(proxytype, "_exposed_", None)
        method_to_typeid = method_to_typeid or getattr(proxytype, "_method_to_typeid_", None)
        if method_to_typeid:
            for key, value in list(method_to_typeid.items()):
                assert type(key) is str, "%r is not a string" % key
                assert type(value) is str, "%r is not a string" % value
        cls._registry[typeid] = (callable, exposed, method_to_typeid, proxytype)
        if create_method:
            def create(self: "BaseManager", /, *args: Any, **kwds: Any) -> Any:
                token, exp = self._create(typeid, *args, **kwds)
                return _adopt_proxy(proxytype, token, self._serializer, self, self._authkey,
                                    exp)
            create.__name__ = typeid
            create.__qualname__ = "%s.%s" % (cls.__name__, typeid)
            setattr(cls, typeid, create)


def _adopt_proxy(proxytype: Any, token: Token, serializer: str, manager: Any,
                 authkey: bytes, exposed: Any) -> Any:
    """A proxy for an object the server just created, taking over the
    reference that creation counted (no separate incref/decref)."""
    proxy = proxytype(token, serializer, manager=manager, authkey=authkey,
                      exposed=exposed, incref=False)
    adopt = getattr(proxy, "_adopt_reference", None)
    if adopt is not None:
        adopt()
    else:  # not a BaseProxy: it did not count itself
        _call(token.address, authkey, serializer, None, "decref", (token.id,))
    return proxy


# ---------------------------------------------------------------------------
# proxies


class BaseProxy:
    """A base for proxies of shared objects"""

    _address_to_local = _address_to_local
    _mutex = util.ForkAwareThreadLock()

    def __init__(self, token: Token, serializer: str, manager: Any = None,
                 authkey: Optional[bytes] = None, exposed: Any = None, incref: bool = True,
                 manager_owned: bool = False) -> None:
        self._tls = _tls_for(token.address)
        self._idset: "set[Any]" = set()
        self._token = token
        self._id = token.id
        self._address = token.address
        self._manager = manager
        self._serializer = serializer
        self._plain_wire = serializer == "pickle"
        self._Client = listener_client[serializer][1]
        # True only for a proxy unpickled inside the manager's own process
        # (a managed object holding another): it owns no reference
        self._owned_by_manager = manager_owned
        if authkey is not None:
            self._authkey = process.AuthenticationString(authkey)
        elif manager is not None:
            self._authkey = manager._authkey
        else:
            self._authkey = process.current_process().authkey
        if incref:
            self._incref()

    def _connection(self) -> Any:
        try:
            return self._tls.connection
        except AttributeError:
            conn = self._tls.connection = _open_connection(self._address, self._authkey,
                                                           self._serializer)
            return conn

    def _connect(self) -> None:
        self._connection()

    def _callmethod(self, methodname: str, args: tuple = (), kwds: dict = {}) -> Any:
        """Try to call a method of the referent and return a copy of the result"""
        if _pending_decrefs:
            _flush_decrefs()
        try:
            conn = self._tls.connection
        except AttributeError:
            conn = self._connection()
        _busy.on = True
        try:
            if self._plain_wire and not kwds and core_types_only(args):
                # the common call: core types only, which the plain pickler
                # writes as the ForkingPickler would, sent as ready bytes
                try:
                    conn.send_bytes(_plain_dumps((self._id, methodname, args, kwds)))
                    kind, result = conn.recv()
                except BaseException:
                    _drop_connection(self._address)
                    raise
            else:
                kind, result = _roundtrip(conn, (self._id, methodname, args, kwds),
                                          self._address)
        finally:
            _busy.on = False
        if kind == "#RETURN":
            return result
        if kind == "#PROXY":
            exposed, token = result
            token.address = self._address
            if self._manager is not None:
                proxytype = self._manager._registry[token.typeid][-1]
            else:
                proxytype = _proxytype_for(token.typeid)
            return _adopt_proxy(proxytype, token, self._serializer, self._manager,
                                self._authkey, exposed)
        try:
            raise convert_to_error(kind, result)
        finally:
            del result  # else the exception's frame keeps it: a cycle

    def _getvalue(self) -> Any:
        """Get a copy of the value of the referent"""
        return self._callmethod("#GETVALUE")

    def _incref(self) -> None:
        if self._owned_by_manager:
            return
        _call(self._address, self._authkey, self._serializer, None, "incref", (self._id,))
        self._adopt_reference()

    def _adopt_reference(self) -> None:
        """Count this proxy's reference as ours: release it when the proxy
        goes away."""
        self._idset.add(self._id)
        state = self._manager and self._manager._state
        self._close = util.Finalize(
            self, BaseProxy._decref,
            args=(self._token, self._authkey, state, self._tls, self._idset,
                  self._serializer),
            exitpriority=10)

    @staticmethod
    def _decref(token: Token, authkey: bytes, state: Any, tls: Any, idset: Any,
                serializer: Any) -> None:
        idset.discard(token.id)
        if state is not None and state.value != _State.STARTED:
            return  # the manager is gone, and the object with it
        # a finalizer may run in the middle of this thread's own call (the
        # collector runs anywhere): then the release waits for the next one
        _pending_decrefs.append((token.address, authkey, serializer, token.id))
        if not getattr(_busy, "on", False):
            _flush_decrefs()

    def _after_fork(self) -> None:
        self._manager = None
        try:
            self._incref()
        except Exception as e:
            util.info("incref failed: %s" % e)

    def __reduce__(self) -> Any:
        kwds: Dict[str, Any] = {}
        if get_spawning_popen() is not None:
            kwds["authkey"] = self._authkey
        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (RebuildProxy, (type(self), self._token, self._serializer, kwds))

    def __deepcopy__(self, memo: Any) -> Any:
        return self._getvalue()

    def __repr__(self) -> str:
        return "<%s object, typeid %r at %#x>" % (
            type(self).__name__, self._token.typeid, id(self))

    def __str__(self) -> str:
        """Return representation of the referent (or a fall-back if that fails)"""
        try:
            return self._callmethod("__repr__")
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


def _proxytype_for(typeid: str) -> Any:
    """The proxy type registered for typeid by any manager class (a proxy
    in a process that has no manager object, such as a child)."""
    for cls in _manager_classes():
        entry = cls.__dict__.get("_registry", {}).get(typeid)
        if entry is not None:
            return entry[-1]
    return AutoProxy


def _manager_classes() -> "list[type]":
    seen: "list[type]" = []
    todo = [BaseManager]
    while todo:
        c = todo.pop()
        seen.append(c)
        todo.extend(c.__subclasses__())
    return seen[::-1]


def RebuildProxy(func: Any, token: Token, serializer: str, kwds: dict) -> Any:
    """Function used for unpickling proxy objects."""
    server = getattr(process.current_process(), "_manager_server", None)
    if server is not None and server.address == token.address:
        kwds["manager_owned"] = True
        if token.id not in server.id_to_local_proxy_obj:
            server.id_to_local_proxy_obj[token.id] = server.id_to_obj[token.id]
    incref = kwds.pop("incref", True) and \
        not getattr(process.current_process(), "_inheriting", False)
    return func(token, serializer, incref=incref, **kwds)


def _make_method(name: str) -> Callable[..., Any]:
    def method(self: BaseProxy, /, *args: Any, **kwds: Any) -> Any:
        return self._callmethod(name, args, kwds)
    method.__name__ = name
    return method


def MakeProxyType(name: str, exposed: Iterable[str], _cache: dict = {}) -> type:
    """Return a proxy type whose methods are given by `exposed`"""
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass
    namespace: Dict[str, Any] = {meth: _make_method(meth) for meth in exposed}
    namespace["_exposed_"] = exposed
    proxytype = type(name, (BaseProxy,), namespace)
    _cache[(name, exposed)] = proxytype
    return proxytype


def AutoProxy(token: Token, serializer: str, manager: Any = None,
              authkey: Optional[bytes] = None, exposed: Any = None, incref: bool = True,
              manager_owned: bool = False) -> BaseProxy:
    """Return an auto-proxy for `token`"""
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = process.current_process().authkey
    if exposed is None:
        exposed = _call(token.address, authkey, serializer, None, "get_methods", (token,))
    proxytype = MakeProxyType("AutoProxy[%s]" % token.typeid, exposed)
    proxy = proxytype(token, serializer, manager=manager, authkey=authkey, incref=incref,
                      manager_owned=manager_owned)
    proxy._isauto = True
    return proxy


# ---------------------------------------------------------------------------
# what SyncManager serves


class Namespace:
    def __init__(self, /, **kwds: Any) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        items = sorted("%s=%r" % (name, value) for name, value in self.__dict__.items()
                       if not name.startswith("_"))
        return "%s(%s)" % (type(self).__name__, ", ".join(items))


class Value:
    def __init__(self, typecode: Any, value: Any, lock: Any = True) -> None:
        self._typecode = typecode
        self._value = value

    def get(self) -> Any:
        return self._value

    def set(self, value: Any) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "%s(%r, %r)" % (type(self).__name__, self._typecode, self._value)

    value = property(get, set)


def Array(typecode: Any, sequence: Any, lock: Any = True) -> array.array:
    return array.array(typecode, sequence)


def _Pool(*args: Any, **kwds: Any) -> Any:
    from .pool import Pool
    return Pool(*args, **kwds)


class IteratorProxy(BaseProxy):
    _exposed_ = ("__next__", "send", "throw", "close")

    def __iter__(self) -> "IteratorProxy":
        return self

    def __next__(self, *args: Any) -> Any:
        return self._callmethod("__next__", args)

    def send(self, *args: Any) -> Any:
        return self._callmethod("send", args)

    def throw(self, *args: Any) -> Any:
        return self._callmethod("throw", args)

    def close(self, *args: Any) -> Any:
        return self._callmethod("close", args)


class AcquirerProxy(BaseProxy):
    _exposed_ = ("acquire", "release")

    def acquire(self, blocking: bool = True, timeout: Optional[float] = None) -> bool:
        args = (blocking,) if timeout is None else (blocking, timeout)
        return self._callmethod("acquire", args)

    def release(self) -> None:
        return self._callmethod("release")

    def __enter__(self) -> bool:
        return self._callmethod("acquire")

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        return self._callmethod("release")


class ConditionProxy(AcquirerProxy):
    _exposed_ = ("acquire", "release", "wait", "notify", "notify_all")

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._callmethod("wait", (timeout,))

    def notify(self, n: int = 1) -> None:
        return self._callmethod("notify", (n,))

    def notify_all(self) -> None:
        return self._callmethod("notify_all")

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        result = predicate()
        if result:
            return result
        endtime = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    _exposed_ = ("is_set", "set", "clear", "wait")

    def is_set(self) -> bool:
        return self._callmethod("is_set")

    def set(self) -> None:
        return self._callmethod("set")

    def clear(self) -> None:
        return self._callmethod("clear")

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._callmethod("wait", (timeout,))


class BarrierProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "wait", "abort", "reset")

    def wait(self, timeout: Optional[float] = None) -> int:
        return self._callmethod("wait", (timeout,))

    def abort(self) -> None:
        return self._callmethod("abort")

    def reset(self) -> None:
        return self._callmethod("reset")

    @property
    def parties(self) -> int:
        return self._callmethod("__getattribute__", ("parties",))

    @property
    def n_waiting(self) -> int:
        return self._callmethod("__getattribute__", ("n_waiting",))

    @property
    def broken(self) -> bool:
        return self._callmethod("__getattribute__", ("broken",))


class NamespaceProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "__setattr__", "__delattr__")

    def __getattr__(self, key: str) -> Any:
        if key[0] == "_":
            return object.__getattribute__(self, key)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__getattribute__", (key,))

    def __setattr__(self, key: str, value: Any) -> None:
        if key[0] == "_":
            return object.__setattr__(self, key, value)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__setattr__", (key, value))

    def __delattr__(self, key: str) -> None:
        if key[0] == "_":
            return object.__delattr__(self, key)
        callmethod = object.__getattribute__(self, "_callmethod")
        return callmethod("__delattr__", (key,))


class ValueProxy(BaseProxy):
    _exposed_ = ("get", "set")

    def get(self) -> Any:
        return self._callmethod("get")

    def set(self, value: Any) -> None:
        return self._callmethod("set", (value,))

    value = property(get, set)

    __class_getitem__ = classmethod(types.GenericAlias)


BaseListProxy = MakeProxyType("BaseListProxy", (
    "__add__", "__contains__", "__delitem__", "__getitem__", "__len__",
    "__mul__", "__reversed__", "__rmul__", "__setitem__",
    "append", "count", "extend", "index", "insert", "pop", "remove",
    "reverse", "sort", "__imul__"))


class ListProxy(BaseListProxy):  # type: ignore[misc, valid-type]
    def __iadd__(self, value: Any) -> "ListProxy":
        self._callmethod("extend", (value,))
        return self

    def __imul__(self, value: Any) -> "ListProxy":
        self._callmethod("__imul__", (value,))
        return self


_DictProxyBase = MakeProxyType("DictProxy", (
    "__contains__", "__delitem__", "__getitem__", "__iter__", "__len__",
    "__setitem__", "clear", "copy", "get", "items",
    "keys", "pop", "popitem", "setdefault", "update", "values"))


class DictProxy(_DictProxyBase):  # type: ignore[misc, valid-type]
    _method_to_typeid_ = {"__iter__": "Iterator"}

    # the hot paths, without the generic method's packing of arguments
    def __getitem__(self, key: Any) -> Any:
        return self._callmethod("__getitem__", (key,))

    def __setitem__(self, key: Any, value: Any) -> None:
        return self._callmethod("__setitem__", (key, value))


ArrayProxy = MakeProxyType("ArrayProxy", ("__len__", "__getitem__", "__setitem__"))

BasePoolProxy = MakeProxyType("PoolProxy", (
    "apply", "apply_async", "close", "imap", "imap_unordered", "join",
    "map", "map_async", "starmap", "starmap_async", "terminate"))
BasePoolProxy._method_to_typeid_ = {  # type: ignore[attr-defined]
    "apply_async": "AsyncResult",
    "map_async": "AsyncResult",
    "starmap_async": "AsyncResult",
    "imap": "Iterator",
    "imap_unordered": "Iterator",
}


class PoolProxy(BasePoolProxy):  # type: ignore[misc, valid-type]
    def __enter__(self) -> "PoolProxy":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.terminate()


class SyncManager(BaseManager):
    """
    Subclass of `BaseManager` which supports a number of shared object types.

    The types registered are those intended for the synchronization
    of threads, plus `dict`, `list` and `Namespace`.

    The `multiprocessing.Manager()` function creates started instances of
    this class.
    """


SyncManager.register("Queue", queue.Queue)
SyncManager.register("JoinableQueue", queue.Queue)
SyncManager.register("Event", threading.Event, EventProxy)
SyncManager.register("Lock", threading.Lock, AcquirerProxy)
SyncManager.register("RLock", threading.RLock, AcquirerProxy)
SyncManager.register("Semaphore", threading.Semaphore, AcquirerProxy)
SyncManager.register("BoundedSemaphore", threading.BoundedSemaphore, AcquirerProxy)
SyncManager.register("Condition", threading.Condition, ConditionProxy)
SyncManager.register("Barrier", threading.Barrier, BarrierProxy)
SyncManager.register("Pool", _Pool, PoolProxy)
SyncManager.register("list", list, ListProxy)
SyncManager.register("dict", dict, DictProxy)
SyncManager.register("Value", Value, ValueProxy)
SyncManager.register("Array", Array, ArrayProxy)
SyncManager.register("Namespace", Namespace, NamespaceProxy)
# types returned by methods of PoolProxy
SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
SyncManager.register("AsyncResult", create_method=False)


# ---------------------------------------------------------------------------
# SharedMemoryManager


class _SharedMemoryTracker:
    """Manages one or more shared memory segments."""

    def __init__(self, name: str, segment_names: Optional["list[str]"] = None) -> None:
        self.shared_memory_context_name = name
        self.segment_names = list(segment_names or [])

    def register_segment(self, segment_name: str) -> None:
        """Adds the supplied shared memory block name to tracker."""
        # the stdlib's resource tracker (a process of its own) unlinks the
        # segment should this process be killed
        from . import resource_tracker
        resource_tracker.register(_tracker_name(segment_name), "shared_memory")
        self.segment_names.append(segment_name)

    def destroy_segment(self, segment_name: str) -> None:
        """Calls unlink() on the shared memory block with the supplied name
        and removes it from the list of blocks being tracked."""
        from . import shared_memory
        from . import resource_tracker
        self.segment_names.remove(segment_name)
        try:
            # tracked by name below, not again by this handle
            segment = shared_memory.SharedMemory(segment_name, track=False)
            segment.close()
            segment.unlink()
        finally:
            resource_tracker.unregister(_tracker_name(segment_name), "shared_memory")

    def unlink(self) -> None:
        """Calls destroy_segment() on all tracked shared memory blocks."""
        for segment_name in self.segment_names[:]:
            try:
                self.destroy_segment(segment_name)
            except FileNotFoundError:
                pass  # unlinked by a client already

    def __del__(self) -> None:
        try:
            self.unlink()
        except Exception:
            pass

    def __getstate__(self) -> Tuple[str, "list[str]"]:
        return (self.shared_memory_context_name, self.segment_names)

    def __setstate__(self, state: Tuple[str, "list[str]"]) -> None:
        self.__init__(*state)  # type: ignore[misc]


class SharedMemoryServer(Server):
    public = Server.public + ["track_segment", "release_segment", "list_segments"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Server.__init__(self, *args, **kwargs)
        address = self.address
        if isinstance(address, bytes):
            address = os.fsdecode(address)
        self.shared_memory_context = _SharedMemoryTracker(
            "shm_%s_%d" % (address, os.getpid()))

    def create(self, c: Any, typeid: str, /, *args: Any, **kwargs: Any) -> Tuple[str, tuple]:
        """Create a new distributed-shared object (not backed by a shared
        memory block) and return its id to be used in a Proxy Object."""
        if hasattr(self.registry[typeid][-1], "_shared_memory_proxy"):
            kwargs["shared_memory_context"] = self.shared_memory_context
        return Server.create(self, c, typeid, *args, **kwargs)

    def shutdown(self, c: Any) -> None:
        """Call unlink() on all tracked shared memory, terminate the Server."""
        self.shared_memory_context.unlink()
        return Server.shutdown(self, c)

    def track_segment(self, c: Any, segment_name: str) -> None:
        """Adds the supplied shared memory block name to Server's tracker."""
        self.shared_memory_context.register_segment(segment_name)

    def release_segment(self, c: Any, segment_name: str) -> None:
        """Calls unlink() on the shared memory block with the supplied name
        and removes it from the tracker instance inside the Server."""
        self.shared_memory_context.destroy_segment(segment_name)

    def list_segments(self, c: Any) -> "list[str]":
        """Returns a list of names of shared memory blocks that the Server
        is currently tracking."""
        return self.shared_memory_context.segment_names


class SharedMemoryManager(BaseManager):
    """Like SyncManager but uses SharedMemoryServer instead of Server.

    It provides methods for creating and returning SharedMemory instances
    and for creating a list-like object (ShareableList) backed by shared
    memory.  It also provides methods that create and return Proxy Objects
    that support synchronization across processes (i.e. multi-process-safe
    locks and semaphores).
    """

    _Server = SharedMemoryServer

    def get_server(self) -> Server:
        """Better than monkeypatching for now; merge into Server ultimately"""
        if self._state.value != _State.INITIAL:
            if self._state.value == _State.STARTED:
                raise ProcessError("Already started SharedMemoryServer")
            if self._state.value == _State.SHUTDOWN:
                raise ProcessError("SharedMemoryManager has shut down")
            raise ProcessError("Unknown state {!r}".format(self._state.value))
        return self._Server(self._registry, self._address, self._authkey, self._serializer)

    def SharedMemory(self, size: int) -> Any:
        """Returns a new SharedMemory instance with the specified size in
        bytes, to be tracked by the manager."""
        from . import shared_memory
        sms = shared_memory.SharedMemory(None, create=True, size=size)
        # handed over first: the server's process may share our tracker,
        # which must then end up knowing the name once, from the server
        _hand_over(sms)
        try:
            self._control("track_segment", (sms.name,))
        except BaseException:
            sms.unlink()
            raise
        return sms

    def ShareableList(self, sequence: Optional[Iterable[Any]]) -> Any:
        """Returns a new ShareableList instance populated with the values
        from the input sequence, to be tracked by the manager."""
        from . import shared_memory
        sl = shared_memory.ShareableList(sequence)
        # handed over first: the server's process may share our tracker,
        # which must then end up knowing the name once, from the server
        _hand_over(sl.shm)
        try:
            self._control("track_segment", (sl.shm.name,))
        except BaseException:
            sl.shm.unlink()
            raise
        return sl


def _tracker_name(segment_name: str) -> str:
    return segment_name if segment_name.startswith("/") else "/" + segment_name


def _hand_over(segment: Any) -> None:
    """The manager now answers for the segment (it unlinks it at shutdown,
    and its resource tracker does if it dies): this process's tracker
    forgets it, or it would report it leaked at exit."""
    if getattr(segment, "_tracked", False):
        from . import resource_tracker
        try:
            resource_tracker.unregister(_tracker_name(segment.name), "shared_memory")
        except Exception:
            return
        segment._tracked = False


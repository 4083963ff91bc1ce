"""Handing descriptors to another process on request: the stdlib's
``multiprocessing.resource_sharer``.

An object pickled with a descriptor outside a process start and outside a
pipe message (both carry descriptors themselves) leaves a duplicate here,
under a random 128-bit key; the process that unpickles it fetches the
duplicate once, over a Unix socket, with the key.

Nothing listens where another user can reach it: the socket is a file in
this process's temporary directory (mode 0700, see
:func:`gomp.util.get_temp_dir`), and a peer that does not run as our user
(``SO_PEERCRED``) is hung up on at once. One thread serves every peer with
a selector: a peer that connects and says nothing delays no other, and is
dropped after :data:`PEER_TIMEOUT` seconds; at most :data:`MAX_PEERS` are
served at once, a new one taking the place of the oldest.
"""
from __future__ import annotations

import errno
import os
import selectors
import socket
import struct
import threading
import time
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

from . import util

__all__ = ["stop", "DupFd"]

# seconds a peer gets to send its key
PEER_TIMEOUT = 5.0
# seconds a fetch may take (the serving process may be busy for a while)
FETCH_TIMEOUT = 20.0
# peers being served at once; a new one beyond that replaces the oldest
# (the likeliest to be one that never sends its key)
MAX_PEERS = 64
# seconds the server stops accepting after accept() failed (out of
# descriptors, say), rather than spin on a listener that stays ready
_ACCEPT_PAUSE = 0.05
# a fetch whose server's backlog is full retries connecting this often
# (seconds) until FETCH_TIMEOUT
_CONNECT_RETRY = 0.005
_KEY_LEN = 16
_FOUND, _GONE = b"\x01", b"\x00"


class _ResourceSharer:
    """Keeps duplicates of descriptors until a process fetches them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Dict[bytes, List[int]] = {}
        self._listener: Optional[socket.socket] = None
        self._address: Optional[str] = None
        self._wakeup: Optional[Tuple[int, int]] = None
        self._thread: Optional[threading.Thread] = None
        self._pid = -1

    def register(self, fds: "List[int]") -> Tuple[str, bytes]:
        """Keep duplicates of fds; returns (address, key) to fetch them."""
        dups = []
        try:
            for fd in fds:
                dups.append(os.dup(fd))
            with self._lock:
                if self._pid != os.getpid():
                    self._start()
                key = os.urandom(_KEY_LEN)
                self._pending[key] = dups
                assert self._address is not None
                return self._address, key
        except BaseException:
            for fd in dups:
                os.close(fd)
            raise

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop the server and drop what was not fetched."""
        with self._lock:
            if self._pid != os.getpid():
                self._forget()  # a forked copy: the server is the parent's
                return
            thread, wakeup = self._thread, self._wakeup
        if thread is None or wakeup is None:
            return
        # joined without the lock, which the thread takes to answer
        os.write(wakeup[1], b"x")
        thread.join(timeout)
        if thread.is_alive():
            util.sub_warning("resource_sharer thread did not stop when asked")
        with self._lock:
            if self._thread is thread:
                self._thread = None
                self._close()

    def _start(self) -> None:
        # in a process forked from one that served, drop the parent's state
        # (its descriptors here are copies)
        self._forget()
        address = os.path.join(util.get_temp_dir(),
                               "fds-%d-%s" % (os.getpid(), os.urandom(6).hex()))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        wakeup: Optional[Tuple[int, int]] = None
        sel: Optional[selectors.BaseSelector] = None
        try:
            listener.bind(address)
            bound = True
            listener.listen(MAX_PEERS)
            listener.setblocking(False)
            wakeup = os.pipe()
            # everything the server needs is made here: should the process
            # be out of descriptors or threads, the caller gets the error
            # rather than an address that nobody serves
            sel = selectors.DefaultSelector()
            sel.register(listener, selectors.EVENT_READ)
            sel.register(wakeup[0], selectors.EVENT_READ)
            thread = threading.Thread(target=self._serve, args=(listener, wakeup[0], sel),
                                      name="gomp-resource-sharer", daemon=True)
            thread.start()
        except BaseException:
            if sel is not None:
                sel.close()
            for fd in wakeup or ():
                os.close(fd)
            listener.close()
            if bound:
                os.unlink(address)
            raise
        self._listener, self._address = listener, address
        self._wakeup, self._thread = wakeup, thread
        self._pid = os.getpid()

    def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._address is not None:
            try:
                os.unlink(self._address)
            except OSError:
                pass
            self._address = None
        if self._wakeup is not None:
            for fd in self._wakeup:
                os.close(fd)
            self._wakeup = None
        for fds in self._pending.values():
            for fd in fds:
                os.close(fd)
        self._pending.clear()
        self._pid = -1

    def _forget(self) -> None:
        # a fork copied the parent's state: close our copies, never its file
        if self._listener is not None:
            self._listener.close()
        if self._wakeup is not None:
            for fd in self._wakeup:
                os.close(fd)
        for fds in self._pending.values():
            for fd in fds:
                os.close(fd)
        self._pending = {}
        self._listener = self._address = self._wakeup = self._thread = None
        self._pid = -1

    def _serve(self, listener: socket.socket, wakeup: int, sel: selectors.BaseSelector) -> None:
        # peer -> (deadline, key bytes so far)
        peers: Dict[socket.socket, Tuple[float, bytes]] = {}

        def drop(peer: socket.socket) -> None:
            del peers[peer]
            sel.unregister(peer)
            peer.close()

        paused_until: Optional[float] = None
        try:
            while True:
                # peers are kept oldest first, and all get the same time
                wake = next(iter(peers.values()))[0] if peers else None
                if paused_until is not None:
                    if time.monotonic() >= paused_until:
                        paused_until = None
                        sel.register(listener, selectors.EVENT_READ)
                    else:
                        wake = paused_until if wake is None else min(wake, paused_until)
                timeout = None if wake is None else max(0.0, wake - time.monotonic())
                for key, _events in sel.select(timeout):
                    obj = key.fileobj
                    if obj == wakeup:
                        return
                    if obj is listener:
                        if not self._accept(listener, sel, peers, drop):
                            sel.unregister(listener)
                            paused_until = time.monotonic() + _ACCEPT_PAUSE
                        continue
                    if obj not in peers:
                        continue  # dropped earlier in this round
                    assert isinstance(obj, socket.socket)
                    deadline, got = peers[obj]
                    try:
                        chunk = obj.recv(_KEY_LEN - len(got))
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        drop(obj)
                        continue
                    got += chunk
                    if len(got) < _KEY_LEN:
                        peers[obj] = (deadline, got)
                        continue
                    self._answer(obj, got)
                    drop(obj)
                now = time.monotonic()
                for peer in [p for p, (d, _) in peers.items() if d <= now]:
                    drop(peer)
        finally:
            for peer in list(peers):
                peer.close()
            sel.close()

    def _accept(self, listener: socket.socket, sel: selectors.BaseSelector,
                peers: "Dict[socket.socket, Tuple[float, bytes]]",
                drop: "Callable[[socket.socket], None]") -> bool:
        """Accept a peer; returns False if accept() failed for want of a
        resource."""
        try:
            peer, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as e:
            # a peer that left at once is no reason to stop accepting
            return e.errno in (errno.ECONNABORTED, errno.EPROTO)
        if not _same_user(peer):
            peer.close()
            return True
        if len(peers) >= MAX_PEERS:
            drop(next(iter(peers)))
        try:
            peer.setblocking(False)
            sel.register(peer, selectors.EVENT_READ)
        except (OSError, ValueError):
            peer.close()  # this peer only
            return True
        peers[peer] = (time.monotonic() + PEER_TIMEOUT, b"")
        return True

    def _answer(self, peer: socket.socket, key: bytes) -> None:
        with self._lock:
            fds = self._pending.pop(key, None)
        try:
            # one byte and a few descriptors fit in any socket buffer: the
            # non-blocking send does not fail for want of room
            if fds is None:
                peer.send(_GONE)
            else:
                socket.send_fds(peer, [_FOUND], fds)
        except OSError:
            pass
        finally:
            for fd in fds or ():
                os.close(fd)


def _same_user(peer: socket.socket) -> bool:
    """Whether the process at the other end of peer runs as our user."""
    try:
        creds = peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _fetch(address: str, key: bytes, count: int) -> "List[int]":
    """Fetch the count descriptors kept under key by the process serving
    at address (once: a second fetch fails)."""
    deadline = time.monotonic() + FETCH_TIMEOUT
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(FETCH_TIMEOUT)
        while True:
            try:
                s.connect(address)
                break
            except BlockingIOError:
                # the server's backlog is full (a Unix socket with a timeout
                # says so at once instead of waiting): it is busy accepting
                if time.monotonic() > deadline:
                    raise
                time.sleep(_CONNECT_RETRY)
        s.sendall(key)
        msg, fds, _flags, _addr = socket.recv_fds(s, 1, max(count, 1),
                                                  getattr(socket, "MSG_CMSG_CLOEXEC", 0))
    if msg != _FOUND or len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise OSError("the process that pickled the descriptor no longer has it "
                      "(an object holding one is unpickled only once)")
    return list(fds)


_resource_sharer = _ResourceSharer()
stop = _resource_sharer.stop


class DupFds:
    """Several descriptors which another process can fetch, once."""

    def __init__(self, fds: "List[int]") -> None:
        self._count = len(fds)
        self._id = _resource_sharer.register(list(fds))

    def detach(self) -> "List[int]":
        """Get the descriptors (new ones, owned by the caller)."""
        address, key = self._id
        return _fetch(address, key, self._count)


class DupFd:
    """Wrapper for fd which can be used at any time."""

    def __init__(self, fd: int) -> None:
        self._id = _resource_sharer.register([fd])

    def detach(self) -> int:
        """Get the fd.  This should only be called once."""
        address, key = self._id
        return _fetch(address, key, 1)[0]


def _reset_after_fork(sharer: _ResourceSharer) -> None:
    # a child forked (by os.fork) must not serve or close its parent's socket
    sharer._lock = threading.Lock()
    sharer._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _reset_after_fork(_resource_sharer))

"""Pipe: round trip of a small object, and 64 MiB send_bytes/recv_bytes,
between two processes (an echo child started once per row, with each start
method for the stdlib); the same 64 MiB
over a Listener/Client socket connection."""
from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.connection
import time

import gomp
from run import Case

import _connection_targets

ROUND_TRIPS = 5000
SMALL = (1, "abc", 2.5)
BIG = 64 << 20


class _Child:
    """A child started on first use and stopped at exit."""

    def __init__(self, ctx, target) -> None:
        self.ctx, self.target = ctx, target
        self.conn = None

    def get(self):
        if self.conn is None:
            a, b = self.ctx.Pipe()
            self.proc = self.ctx.Process(target=self.target, args=(b,))
            self.proc.start()
            b.close()
            self.conn = a
            atexit.register(self.stop)
        return self.conn

    def stop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.send(None) if self.target is _connection_targets.echo \
                    else self.conn.send_bytes(b"")
            except OSError:
                pass
            self.proc.join(10)
            self.conn.close()
            self.conn = None


def _round_trip(child: _Child) -> float:
    conn = child.get()
    for _ in range(200):  # warm up (spin-waits, caches)
        conn.send(SMALL)
        conn.recv()
    t = time.perf_counter()
    for _ in range(ROUND_TRIPS):
        conn.send(SMALL)
        conn.recv()
    return (time.perf_counter() - t) / ROUND_TRIPS * 1e6


class _SocketChild(_Child):
    """An echo child connected through a Listener/Client socket."""

    def get(self):
        if self.conn is None:
            stdlib = self.ctx is not gomp
            mod = multiprocessing.connection if stdlib else gomp.connection
            with mod.Listener() as listener:
                self.proc = self.ctx.Process(target=_connection_targets.socket_echo_bytes,
                                             args=(listener.address, stdlib))
                self.proc.start()
                self.conn = listener.accept()
            atexit.register(self.stop)
        return self.conn


_payload = b""


def _throughput(child: _Child) -> float:
    global _payload
    if len(_payload) != BIG:
        _payload = bytes(range(256)) * (BIG // 256)
    if child.conn is None:
        # the first transfers also fault in the ring and the heap
        for _ in range(2):
            child.get().send_bytes(_payload)
            child.get().recv_bytes()
    conn = child.get()
    t = time.perf_counter()
    conn.send_bytes(_payload)
    back = conn.recv_bytes()  # the child echoes it: 2 x 64 MiB moved
    elapsed = time.perf_counter() - t
    assert len(back) == BIG
    return 2 * BIG / elapsed / 1e6


def cases():
    ctxs = {"gomp": gomp}
    ctxs.update({f"stdlib {m}": multiprocessing.get_context(m)
                 for m in ("fork", "forkserver", "spawn")})
    echo = {k: _Child(c, _connection_targets.echo) for k, c in ctxs.items()}
    echo_bytes = {k: _Child(c, _connection_targets.echo_bytes) for k, c in ctxs.items()}
    sockets = {k: _SocketChild(c, _connection_targets.echo_bytes) for k, c in ctxs.items()}
    return [
        Case("pipe round trip, small object", "µs",
             {k: (lambda c=c: _round_trip(c)) for k, c in echo.items()},
             baseline="stdlib spawn", goal="gomp >= 3x stdlib"),
        Case("pipe 64 MiB send_bytes/recv_bytes", "MB/s",
             {k: (lambda c=c: _throughput(c)) for k, c in echo_bytes.items()},
             baseline="stdlib spawn", higher_is_better=True, goal="gomp >= 2x stdlib"),
        Case("socket 64 MiB send_bytes/recv_bytes (Listener/Client)", "MB/s",
             {k: (lambda c=c: _throughput(c)) for k, c in sockets.items()},
             baseline="stdlib spawn", higher_is_better=True),
    ]

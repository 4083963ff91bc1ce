"""Functions the scaling benchmarks run in children (importable by reference)."""
from __future__ import annotations

import time

SMALL = b"0123456789"


def pair_producer(q, n: int, ready, go) -> None:
    ready.release()
    go.wait()
    for i in range(n):
        q.put((i, SMALL))


def pair_consumer(q, n: int, ready, go, done) -> None:
    ready.release()
    go.wait()
    for _ in range(n):
        q.get()
    done.put(time.monotonic())  # system-wide clock: comparable with the parent's


def payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def sweep_producer(conn, q) -> None:
    """For each (size, n) that arrives: make the payload, say "ready", put
    it n times. None ends."""
    while True:
        cmd = conn.recv()
        if cmd is None:
            break
        size, n = cmd
        data = payload(size)
        conn.send("ready")
        for _ in range(n):
            q.put(data)
    conn.close()


def work(x: int) -> int:
    """A small task (tens of microseconds of CPU)."""
    s = 0
    for i in range(500):
        s += i
    return x + s

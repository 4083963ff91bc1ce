"""Functions the queue benchmarks run in children (importable by reference)."""
from __future__ import annotations

import time

SMALL = b"0123456789"


def _wait_until(t0: float) -> None:
    while True:
        left = t0 - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.01))


def produce_small(q, n: int, t0: float) -> None:
    _wait_until(t0)
    for i in range(n):
        q.put((i, SMALL))


def produce_big(q, n: int, size: int, t0: float) -> None:
    payload = b"x" * size
    _wait_until(t0)
    for _ in range(n):
        q.put(payload)


def consume_small(q, n: int, done) -> None:
    for _ in range(n):
        q.get()
    done.put(time.time())

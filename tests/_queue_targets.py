"""Functions the queue tests run in children."""
from __future__ import annotations

import os
import time


def produce(q, tag, n):
    for i in range(n):
        q.put((tag, i))


def produce_many(q, tag, n):
    q.put_many([(tag, i) for i in range(n)])


def consume(q, out, n):
    out.put([q.get() for _ in range(n)])


def put_and_exit(q, n, big):
    for i in range(n):
        q.put(i)
    q.put(b"x" * big)
    q.put("end")


def put_cancel_and_exit(q, big):
    q.cancel_join_thread()
    for _ in range(4):
        q.put(b"y" * big)


def echo(inq, outq):
    while True:
        item = inq.get()
        if item is None:
            break
        outq.put(item)


def hold_get(q, ready):
    ready.put(os.getpid())
    q.get()  # blocks holding the consumer lock


def put_big(q, n):
    q.put(b"z" * n)


def worker_tasks(q, results):
    while True:
        item = q.get()
        try:
            if item is None:
                return
            results.put(item * 2)
        finally:
            q.task_done()


def simple_roundtrip(sq_in, sq_out):
    sq_out.put(sq_in.get() + 1)


def sleep_then_put(q, delay, item):
    time.sleep(delay)
    q.put(item)


def produce_mixed(q, tag, n):
    # small, medium and ring-sized items, so frames wrap and messages stream
    for i in range(n):
        size = (0, 100, 5000, 40000, 200000)[i % 5]
        q.put((tag, i, b"m" * size))


def consume_mixed(q, out, n, batch):
    got = []
    while len(got) < n:
        if batch:
            got += [(t, i, len(b)) for t, i, b in q.get_many(n - len(got), timeout=30)]
        else:
            t, i, b = q.get(timeout=30)
            got.append((t, i, len(b)))
    out.put(got)


def get_one(q, ready):
    ready.put("go")
    q.get()


def produce_forever(q, tag):
    i = 0
    while True:
        size = (0, 10, 3000, 30000, 150000)[i % 5]
        q.put((tag, i, b"p" * size))
        i += 1


def consume_forever(q):
    while True:
        q.get()


def put_items(q, items):
    for item in items:
        q.put(item)


def get_into(q, out):
    out.put(q.get())

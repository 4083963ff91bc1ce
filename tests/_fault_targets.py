"""What the participants of the fault matrix run in children (importable by
name). Messages carry (tag, seq) and a payload derived from them, so that
the receiver checks each one whole."""
from __future__ import annotations

import os
import time


def payload(tag, seq, size):
    unit = b"%d:%d;" % (tag, seq)
    return (unit * (size // len(unit) + 1))[:size]


def intact(tag, seq, data):
    return data == payload(tag, seq, len(data))


# -- Queue, JoinableQueue


def produce(q, tag, sizes):
    for seq, size in enumerate(sizes):
        q.put((tag, seq, payload(tag, seq, size)))
        if seq % 16 == 15:
            time.sleep(0.001)  # spread the work, so that a kill lands inside it


def consume(q, out, joinable):
    while True:
        item = q.get()
        if item is None:
            if joinable:
                q.task_done()
            return
        tag, seq, data = item
        out.put((tag, seq, intact(tag, seq, data)))
        if joinable:
            q.task_done()


# -- Pipe


def pipe_send(conn, sizes):
    for seq, size in enumerate(sizes):
        conn.send((0, seq, payload(0, seq, size)))
    conn.close()


def pipe_recv(conn, out):
    while True:
        try:
            tag, seq, data = conn.recv()
        except EOFError:
            return
        out.put((tag, seq, intact(tag, seq, data)))


def pipe_echo(conn):
    while True:
        try:
            conn.send(conn.recv())
        except EOFError:
            return


# -- Pool


_counts = None


def pool_init(counts):
    global _counts
    _counts = counts


def pool_task(seq, pause):
    with _counts.get_lock():  # a worker killed here leaves the lock to others
        _counts[seq] += 1
    time.sleep(pause)
    return seq, os.getpid()


# -- managers


def manager_client(lst, tag, sizes):
    for seq, size in enumerate(sizes):
        lst.append((tag, seq, payload(tag, seq, size)))


def pool_task_args(args):
    return pool_task(*args)

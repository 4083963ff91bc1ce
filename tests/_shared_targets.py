"""What the children of the shared_memory and sharedctypes tests run
(importable by reference, from gomp's children and the stdlib's)."""
from __future__ import annotations

import ctypes


def write_shared_memory(shared_memory_class, name, data):
    """Attach to the block by name (with the parent's library's class) and
    write data at its start."""
    shm = shared_memory_class(name)
    shm.buf[:len(data)] = data
    shm.close()


def edit_shareable_list(sl):
    sl[0] = sl[0] * 2
    sl[1] = "child"
    sl.shm.close()


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def write_shared_ctypes(v, a, s, raw, pt):
    v.value += 1
    a[0] = 10
    a[1:3] = [20, 30]
    s.value = b"from child"
    raw[2] = 7
    pt.x, pt.y = 1.5, -2.5


def add_under_lock(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def keep_value(v, ready, stop, out):
    ready.set()
    stop.wait(10)
    out.value = v.value

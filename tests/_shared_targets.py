"""What the children of the shared_memory and sharedctypes tests run
(importable by reference, from gomp's children and the stdlib's)."""
from __future__ import annotations


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

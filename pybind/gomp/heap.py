"""Shared memory for gomp's own objects (the stdlib's ``multiprocessing.heap``).

Locks, semaphores, conditions and events are records of 64 bytes (1088
for a semaphore) carved out of shared arenas (see :class:`SyncHeap`), and
ctypes objects (``Value``, ``Array`` ...) blocks of other arenas (see
:class:`Heap`). A segment is an anonymous memfd mapped by the Go core:
it has no name in /dev/shm, so nothing outlives the processes that use
it, however they die. Children get segments as descriptors passed at start, and map
each one once however many objects travel in it.
"""
from __future__ import annotations

import bisect
import mmap
import os
import threading
import weakref
from typing import Any, Dict, List, Tuple

from . import _core
from . import context
from . import util
from .reduction import ForkingPickler

__all__ = ["Segment", "new_segment", "Heap", "BufferWrapper", "SyncHeap", "Record", "new_record"]

# the C type; the Go core is loaded only when one is made
Segment, _ = _core.ext().sync_types()

# segments mapped in this process, by inode, so that a segment that comes
# back (several objects in one arena, a lock passed twice) is mapped once
_mapped: "weakref.WeakValueDictionary[Tuple[int, int], Any]" = weakref.WeakValueDictionary()
_mapped_lock = threading.Lock()


def _key(fd: int) -> Tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def new_segment(size: int, name: str = "segment") -> Any:
    """A new zero-filled segment of at least size bytes."""
    _core.go()
    seg = Segment(size, name)
    with _mapped_lock:
        _mapped[_key(seg.fd)] = seg
    return seg


def _rebuild_segment(dupfd: Any) -> Any:
    fd = dupfd.detach()
    _core.go()
    key = _key(fd)
    with _mapped_lock:
        seg = _mapped.get(key)
        if seg is not None and not seg.closed:
            os.close(fd)
            return seg
        seg = Segment.from_fd(fd)
        _mapped[key] = seg
        return seg


def _reduce_segment(seg: Any) -> Any:
    popen = context.get_spawning_popen()
    if popen is None:
        raise RuntimeError("gomp shared memory can only be passed to a process as an "
                           "argument when it starts (or through a Pool initializer)")
    return _rebuild_segment, (popen.DupFd(popen.duplicate_for_child(seg.fd)),)


ForkingPickler.register(Segment, _reduce_segment)


class Heap:
    """A first-fit allocator over arenas (segments of ARENA_SIZE bytes or,
    for large objects, of their own size). Blocks are 16-byte aligned.
    Freed blocks are merged with free neighbours. A block starts with a
    count of the references processes hold to it (see BufferWrapper); a
    block freed while another process still has it waits until it has
    none."""

    ARENA_SIZE = 1 << 20
    ALIGN = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arenas: List[Any] = []
        # per arena: sorted starts and, in step, stops of its free extents
        self._free: Dict[int, Tuple[List[int], List[int]]] = {}
        self._pending: List[Tuple[Any, int, int]] = []
        # blocks given back, taken in by malloc: free() runs from __del__,
        # maybe from a garbage collection inside malloc, so it only appends
        self._returned: List[Tuple[Any, int, int]] = []

    def _fit(self, size: int) -> Any:
        for i, arena in enumerate(self._arenas):
            starts, stops = self._free[i]
            for j in range(len(starts)):
                if stops[j] - starts[j] >= size:
                    start = starts[j]
                    if stops[j] - start == size:
                        del starts[j], stops[j]
                    else:
                        starts[j] = start + size
                    return arena, start, start + size
        return None

    def malloc(self, size: int) -> Tuple[Any, int, int]:
        """A block of at least size bytes: (arena, start, stop)."""
        if size < 0:
            raise ValueError("Size {0:n} out of range".format(size))
        size = max(self.ALIGN, (size + self.ALIGN - 1) & ~(self.ALIGN - 1))
        with self._lock:
            while self._returned:
                self._free_or_defer(self._returned.pop())
            block = self._fit(size)
            if block is None and self._pending:
                pending, self._pending = self._pending, []
                for b in pending:
                    self._free_or_defer(b)
                block = self._fit(size)
            if block is not None:
                return block
            arena_size = max(self.ARENA_SIZE,
                             (size + mmap.PAGESIZE - 1) & ~(mmap.PAGESIZE - 1))
            arena = new_segment(arena_size, "heap")
            self._arenas.append(arena)
            i = len(self._arenas) - 1
            self._free[i] = ([size], [arena_size]) if size < arena_size else ([], [])
            return arena, 0, size

    def free(self, block: Tuple[Any, int, int]) -> None:
        self._returned.append(block)

    def _free_or_defer(self, block: Tuple[Any, int, int]) -> None:
        arena, start, stop = block
        if arena.load(start) != 0:
            self._pending.append(block)
            return
        for i, a in enumerate(self._arenas):
            if a is arena:
                break
        else:
            return
        starts, stops = self._free[i]
        j = bisect.bisect_left(starts, start)
        # merge with the extent after, then with the one before
        if j < len(starts) and starts[j] == stop:
            stop = stops[j]
            del starts[j], stops[j]
        if j > 0 and stops[j - 1] == start:
            stops[j - 1] = stop
        else:
            starts.insert(j, start)
            stops.insert(j, stop)


_heap = Heap()

# bytes before an object's data: the block's reference count (4 bytes),
# padded so that the data stays 16-byte aligned
_HEADER = 16


def _drop_block_reference(arena: Any, header: int) -> None:
    arena.add(header, -1)


class BufferWrapper:
    """A block of the heap for one ctypes object. The process that made it
    frees it when the object goes, but the block is reused only once every
    process it was passed to has dropped it or exited."""

    def __init__(self, size: int) -> None:
        arena, start, stop = _heap.malloc(size + _HEADER)
        self._state = (arena, start + _HEADER, size)
        self._owner = os.getpid()
        self._block = (arena, start, stop)
        # a reused block holds old data: objects start zero-filled
        memoryview(arena)[start:start + _HEADER + size] = bytes(_HEADER + size)
        arena.store(start, 1)

    def create_memoryview(self) -> memoryview:
        arena, start, size = self._state
        return memoryview(arena)[start:start + size]

    def __getstate__(self) -> Any:
        if context.get_spawning_popen() is None:
            raise RuntimeError("shared ctypes objects can only be passed to a process as an "
                               "argument when it starts (or through a Pool initializer)")
        arena, start, _ = self._state
        arena.add(start - _HEADER, 1)  # the new process's reference
        return self._state

    def __setstate__(self, state: Any) -> None:
        self._state = state
        self._owner = None
        arena, start, _ = state
        util.Finalize(self, _drop_block_reference, args=(arena, start - _HEADER),
                      exitpriority=0)

    def __del__(self) -> None:
        if getattr(self, "_owner", None) == os.getpid():
            try:
                _drop_block_reference(self._block[0], self._block[1])
                _heap.free(self._block)
            except Exception:
                pass  # at interpreter shutdown


# Every record keeps at byte 60 the number of references processes hold
# to it (gomp/sync.go: LockRecord.Refs), so that the process that made it
# reuses its slot only once no other process can still use it.
REFS = 60
RECORD_ALIGN = 64


class Record:
    """A reference to a record in a sync arena: (segment, offset). The
    process that allocated it gives the slot back when its last reference
    goes; a reference pickled for a process being started counts as one
    more until that process drops it or exits (a process killed while
    holding one leaves the slot unused: never reused while in use)."""

    __slots__ = ("seg", "off", "_owner", "__weakref__")

    def __init__(self, seg: Any, off: int, owner: Any) -> None:
        self.seg, self.off, self._owner = seg, off, owner

    def __reduce__(self) -> Any:
        if context.get_spawning_popen() is None:
            raise RuntimeError("gomp shared objects can only be passed to a process as an "
                               "argument when it starts (or through a Pool initializer)")
        self.seg.add(self.off + REFS, 1)
        return _rebuild_record, (self.seg, self.off)

    def __del__(self) -> None:
        # a received reference is dropped by its finalizer (see below)
        if self._owner is not None and self._owner[0] == os.getpid():
            try:
                _drop_reference(self.seg, self.off)
                self._owner[1].release(self)
            except Exception:
                pass  # at interpreter shutdown


def _drop_reference(seg: Any, off: int) -> None:
    seg.add(off + REFS, -1)


def _rebuild_record(seg: Any, off: int) -> Record:
    rec = Record(seg, off, None)
    # dropped when the record goes, or when the process exits
    util.Finalize(rec, _drop_reference, args=(seg, off), exitpriority=0)
    return rec


class SyncHeap:
    """Slots for records, one size class per record size, in arenas of
    ARENA_SIZE bytes. A freed slot waits until its reference count is 0."""

    ARENA_SIZE = 64 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: Dict[int, List[Tuple[Any, int]]] = {}
        self._pending: Dict[int, List[Tuple[Any, int]]] = {}
        # slots given back, taken in by alloc (see Heap._returned)
        self._returned: List[Tuple[int, Any, int]] = []

    def alloc(self, size: int) -> Record:
        size = (size + RECORD_ALIGN - 1) // RECORD_ALIGN * RECORD_ALIGN
        with self._lock:
            while self._returned:
                rsize, rseg, roff = self._returned.pop()
                self._pending.setdefault(rsize, []).append((rseg, roff))
            free = self._free.setdefault(size, [])
            pending = self._pending.setdefault(size, [])
            if not free and pending:
                still = []
                for seg, off in pending:
                    (free if seg.load(off + REFS) == 0 else still).append((seg, off))
                pending[:] = still
            if not free:
                arena = new_segment(max(self.ARENA_SIZE, size), "sync")
                free.extend((arena, off) for off in
                            range((arena.size // size - 1) * size, -1, -size))
            seg, off = free.pop()
        memoryview(seg)[off:off + size] = bytes(size)
        seg.store(off + REFS, 1)
        return Record(seg, off, (os.getpid(), self, size))

    def release(self, rec: Record) -> None:
        self._returned.append((rec._owner[2], rec.seg, rec.off))


_sync_heap = SyncHeap()


def new_record(size: int) -> Record:
    """A zero-filled record of size bytes (at most ARENA_SIZE) in a shared
    arena, with one reference: this process's."""
    return _sync_heap.alloc(size)

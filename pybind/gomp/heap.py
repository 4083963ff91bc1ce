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
import copyreg
import mmap
import os
import sys
import threading
import weakref
from collections import defaultdict
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple

from . import _core
from . import _layout
from . import context
from . import util
from .context import assert_spawning
from .reduction import ForkingPickler

__all__ = ["Segment", "new_segment", "Arena", "Heap", "BufferWrapper", "SyncHeap", "Record",
           "new_record"]

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


# copyreg, not only ForkingPickler: libraries pickle processes with picklers
# of their own (loky's), which start from copyreg's table
copyreg.pickle(Segment, _reduce_segment)


class Arena(Segment):
    """A shared memory segment that a Heap carves blocks out of.

    ``Arena(size)`` makes a new zero-filled one; ``Arena(size, fd)`` maps
    the segment whose descriptor another process passed (the arena then
    owns fd); a segment that arrives more than once is mapped once. An
    arena is a gomp segment: a buffer, with atomic word operations;
    ``buffer`` is the arena itself, as the stdlib's is its mapping."""

    __slots__ = ()

    def __new__(cls, size: int, fd: int = -1) -> "Arena":
        _core.go()
        if fd == -1:
            arena = super().__new__(cls, size, "heap")
            with _mapped_lock:
                _mapped[_key(arena.fd)] = arena
            return arena
        key = _key(fd)
        with _mapped_lock:
            known = _mapped.get(key)
            if isinstance(known, cls) and not known.closed:
                os.close(fd)
                return known
            arena = cls.from_fd(fd)
            _mapped[key] = arena
            return arena

    @property
    def buffer(self) -> "Arena":
        return self

    def __repr__(self) -> str:
        return "<%s size=%d fd=%d>" % (type(self).__name__, self.size, self.fd)


def reduce_arena(a: Arena) -> Any:
    if a.fd == -1:
        raise ValueError("Arena is unpicklable: it is closed")
    from . import reduction
    return rebuild_arena, (a.size, reduction.DupFd(a.fd))


def rebuild_arena(size: int, dupfd: Any) -> Arena:
    return Arena(size, dupfd.detach())


# in copyreg's table too, as Segment (see above)
copyreg.pickle(Arena, reduce_arena)


class Heap:
    """Blocks of shared memory for objects that processes share, carved out
    of arenas as the stdlib's heap does (best fit; a freed block merges
    with its free neighbours; an arena larger than
    ``_DISCARD_FREE_SPACE_LARGER_THAN`` goes once it is all free). The
    stdlib's fields are kept, for code and tests that look at them.

    A block made by :class:`BufferWrapper` starts with a count of the
    processes that use it; when its owner gives it back while another
    process still uses it, it is reused only once that count is 0 (see
    ``_release``), so an object the parent dropped stays valid in a child.
    """

    _alignment = 16
    # arenas are memfd segments whose pages are touched only as blocks use
    # them, and each one is a descriptor to pass to every child: start at
    # 1 MiB, where the stdlib starts at a page
    _DEFAULT_SIZE = 1 << 20
    _DISCARD_FREE_SPACE_LARGER_THAN = 4 * 1024 ** 2
    _DOUBLE_ARENA_SIZE_UNTIL = 4 * 1024 ** 2

    def __init__(self, size: int = _DEFAULT_SIZE) -> None:
        self._lastpid = os.getpid()
        self._lock = threading.Lock()
        # the size of the next arena
        self._size = size
        # sorted lengths of free blocks, and the free blocks of each length
        self._lengths: List[int] = []
        self._len_to_seq: Dict[int, List[Tuple[Arena, int, int]]] = {}
        # free blocks by (arena, start) and by (arena, stop), for merging
        self._start_to_block: Dict[Tuple[Arena, int], Tuple[Arena, int, int]] = {}
        self._stop_to_block: Dict[Tuple[Arena, int], Tuple[Arena, int, int]] = {}
        # (start, stop) of the blocks in use, by arena
        self._allocated_blocks: "defaultdict[Arena, set]" = defaultdict(set)
        self._arenas: List[Arena] = []
        # blocks freed while the lock was held (by a collection in malloc)
        self._pending_free_blocks: List[Tuple[Arena, int, int]] = []
        # blocks given back by their owner while other processes use them
        self._held_elsewhere: List[Tuple[Arena, int, int]] = []
        self._n_mallocs = 0
        self._n_frees = 0

    @staticmethod
    def _roundup(n: int, alignment: int) -> int:
        # alignment is a power of 2
        mask = alignment - 1
        return (n + mask) & ~mask

    def _new_arena(self, size: int) -> Tuple[Arena, int, int]:
        length = self._roundup(max(self._size, size), mmap.PAGESIZE)
        if self._size < self._DOUBLE_ARENA_SIZE_UNTIL:
            self._size *= 2
        util.info("allocating a new mmap of length %d", length)
        arena = Arena(length)
        self._arenas.append(arena)
        return (arena, 0, length)

    def _discard_arena(self, arena: Arena) -> None:
        # an arena that is all free goes, if it is large
        length = arena.size
        if length < self._DISCARD_FREE_SPACE_LARGER_THAN:
            return
        blocks = self._allocated_blocks.pop(arena)
        assert not blocks
        del self._start_to_block[(arena, 0)]
        del self._stop_to_block[(arena, length)]
        self._arenas.remove(arena)
        seq = self._len_to_seq[length]
        seq.remove((arena, 0, length))
        if not seq:
            del self._len_to_seq[length]
            self._lengths.remove(length)

    def _malloc(self, size: int) -> Tuple[Arena, int, int]:
        # the smallest free block that is large enough
        i = bisect.bisect_left(self._lengths, size)
        if i == len(self._lengths):
            if not self._release_unused_elsewhere():
                return self._new_arena(size)
            i = bisect.bisect_left(self._lengths, size)
            if i == len(self._lengths):
                return self._new_arena(size)
        length = self._lengths[i]
        seq = self._len_to_seq[length]
        block = seq.pop()
        if not seq:
            del self._len_to_seq[length], self._lengths[i]
        arena, start, stop = block
        del self._start_to_block[(arena, start)]
        del self._stop_to_block[(arena, stop)]
        return block

    def _add_free_block(self, block: Tuple[Arena, int, int]) -> None:
        # merge with the free blocks before and after it
        arena, start, stop = block
        prev_block = self._stop_to_block.get((arena, start))
        if prev_block is not None:
            start, _ = self._absorb(prev_block)
        next_block = self._start_to_block.get((arena, stop))
        if next_block is not None:
            _, stop = self._absorb(next_block)
        block = (arena, start, stop)
        length = stop - start
        seq = self._len_to_seq.get(length)
        if seq is None:
            seq = self._len_to_seq[length] = []
            bisect.insort(self._lengths, length)
        seq.append(block)
        self._start_to_block[(arena, start)] = block
        self._stop_to_block[(arena, stop)] = block

    def _absorb(self, block: Tuple[Arena, int, int]) -> Tuple[int, int]:
        # take a free block out of the free lists, to merge it
        arena, start, stop = block
        del self._start_to_block[(arena, start)]
        del self._stop_to_block[(arena, stop)]
        length = stop - start
        seq = self._len_to_seq[length]
        seq.remove(block)
        if not seq:
            del self._len_to_seq[length]
            self._lengths.remove(length)
        return start, stop

    def _remove_allocated_block(self, block: Tuple[Arena, int, int]) -> None:
        arena, start, stop = block
        blocks = self._allocated_blocks[arena]
        blocks.remove((start, stop))
        if not blocks:
            self._discard_arena(arena)

    def _free_pending_blocks(self) -> None:
        while self._pending_free_blocks:
            block = self._pending_free_blocks.pop()
            self._add_free_block(block)
            self._remove_allocated_block(block)

    def _release_unused_elsewhere(self) -> bool:
        """Free the blocks that other processes have stopped using; returns
        whether there were any."""
        held = self._held_elsewhere
        unused = [b for b in held if b[0].load(b[1]) == 0]
        for block in unused:
            held.remove(block)  # in place: _release appends without the lock
            self._add_free_block(block)
            self._remove_allocated_block(block)
        return bool(unused)

    def free(self, block: Tuple[Arena, int, int]) -> None:
        """Give block back to the heap."""
        # free() may run from a finalizer in a garbage collection that
        # malloc() started, holding the lock: then it only queues the block
        if os.getpid() != self._lastpid:
            raise ValueError(
                "My pid ({0:n}) is not last pid {1:n}".format(os.getpid(), self._lastpid))
        self._n_frees += 1
        if not self._lock.acquire(False):
            self._pending_free_blocks.append(block)
            return
        try:
            self._free_pending_blocks()
            self._add_free_block(block)
            self._remove_allocated_block(block)
        finally:
            self._lock.release()

    def _release(self, block: Tuple[Arena, int, int]) -> None:
        """Drop the owner's reference to a counted block (see BufferWrapper)
        and free it, or, while other processes still use it, keep it until
        they stop."""
        arena, start, _ = block
        if arena.add(start, -1) == 1:  # the count was ours alone
            self.free(block)
            return
        # no lock: this may run in a collection that malloc() started
        self._n_frees += 1
        self._held_elsewhere.append(block)

    def malloc(self, size: int) -> Tuple[Arena, int, int]:
        """A block of at least size bytes: (arena, start, stop)."""
        if size < 0:
            raise ValueError("Size {0:n} out of range".format(size))
        if sys.maxsize <= size:
            raise OverflowError("Size {0:n} too large".format(size))
        _core.go()  # before the lock (see SyncHeap.alloc)
        if os.getpid() != self._lastpid:
            self.__init__()  # type: ignore[misc]  # forked: start afresh
        with self._lock:
            self._n_mallocs += 1
            self._free_pending_blocks()
            size = self._roundup(max(size, 1), self._alignment)
            arena, start, stop = self._malloc(size)
            real_stop = start + size
            if real_stop < stop:
                # the rest of a larger block stays free
                self._add_free_block((arena, real_stop, stop))
            self._allocated_blocks[arena].add((start, real_stop))
            return (arena, start, real_stop)


# bytes before an object's data: the block's reference count (4 bytes),
# padded so that the data stays 16-byte aligned
_HEADER = 16


def _drop_block_reference(arena: Any, header: int) -> None:
    arena.add(header, -1)


class BufferWrapper:
    """A block of the heap for one shared object. The process that made it
    gives it back when the object goes, but the block is reused only once
    every process it was passed to has dropped it or exited."""

    _heap = Heap()

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("Size {0:n} out of range".format(size))
        if sys.maxsize <= size:
            raise OverflowError("Size {0:n} too large".format(size))
        heap = BufferWrapper._heap
        block = heap.malloc(size + _HEADER)
        arena, start, stop = block
        # a reused block holds old data: objects start zero-filled
        memoryview(arena)[start:stop] = bytes(stop - start)
        arena.store(start, 1)  # this process's reference
        self._state = (arena, start + _HEADER, size)
        self._owner = (os.getpid(), heap, block)

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
        owner = getattr(self, "_owner", None)
        try:
            if owner is not None and owner[0] == os.getpid():
                owner[1]._release(owner[2])
        except Exception:
            pass  # at interpreter shutdown (os may be gone already)


# Every record keeps the number of references processes hold to it
# (gomp/sync.go: LockRecord.Refs), so that the process that made it reuses
# its slot only once no other process can still use it.
REFS = _layout.RECORD_OFF_REFS
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
        self._lastpid = os.getpid()
        self._lock = threading.Lock()
        self._free: Dict[int, List[Tuple[Any, int]]] = {}
        self._pending: Dict[int, List[Tuple[Any, int]]] = {}
        # slots given back, taken in by alloc (see Heap._returned)
        self._returned: List[Tuple[int, Any, int]] = []

    def alloc(self, size: int) -> Record:
        size = (size + RECORD_ALIGN - 1) // RECORD_ALIGN * RECORD_ALIGN
        # Go is loaded before the lock is taken: loading it may fork the
        # spawn zygote, which must not inherit the lock held
        _core.go()
        if os.getpid() != self._lastpid:
            self.__init__()  # type: ignore[misc]  # a fork of ours: start afresh
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

"""gomp.heap: the stdlib's Heap, BufferWrapper and Arena over gomp's memfd
arenas."""
from __future__ import annotations

import gc
import os
import pickle
import random

import pytest

import gomp
from gomp import heap


@pytest.fixture
def fresh_heap():
    """A pristine BufferWrapper._heap for the test, as the stdlib's tests
    make one."""
    old = heap.BufferWrapper._heap
    heap.BufferWrapper._heap = h = heap.Heap()
    yield h
    heap.BufferWrapper._heap = old


def _layout(h):
    """Every block of h, free or in use, sorted: (arena index, start, stop)."""
    blocks = []
    for seq in h._len_to_seq.values():
        for arena, start, stop in seq:
            blocks.append((h._arenas.index(arena), start, stop, "free"))
    for arena, used in h._allocated_blocks.items():
        for start, stop in used:
            blocks.append((h._arenas.index(arena), start, stop, "used"))
    return sorted(blocks)


def test_blocks_tile_the_arenas_and_all_go_when_freed(fresh_heap):
    h = fresh_heap
    h._DISCARD_FREE_SPACE_LARGER_THAN = 0
    rng = random.Random(1)
    blocks = []
    for _ in range(3000):
        blocks.append(heap.BufferWrapper(int(rng.lognormvariate(0, 1) * 1000)))
        if len(blocks) > 50:
            del blocks[rng.randrange(50)]
    with h._lock:
        layout = _layout(h)
        assert sum(stop - start for _, start, stop, _ in layout) == \
            sum(a.size for a in h._arenas)
        for (ai, _, stop, _), (bi, bstart, _, _) in zip(layout, layout[1:]):
            if ai == bi:
                assert stop == bstart  # adjacent, no gap, no overlap
            else:
                assert stop == h._arenas[ai].size and bstart == 0
        # no two free neighbours: they are merged
        free = [(a, s, e) for a, s, e, kind in layout if kind == "free"]
        assert not any(x[0] == y[0] and x[2] == y[1] for x, y in zip(free, free[1:]))
    rng.shuffle(blocks)
    del blocks[:]
    assert h._n_frees == h._n_mallocs
    assert h._pending_free_blocks == []
    assert h._arenas == [] and len(h._allocated_blocks) == 0
    assert h._len_to_seq == {} and h._lengths == []


def test_small_arenas_are_kept_for_reuse(fresh_heap):
    b = heap.BufferWrapper(100)
    arena = b._state[0]
    del b
    assert fresh_heap._arenas == [arena]  # below _DISCARD_FREE_SPACE_LARGER_THAN
    c = heap.BufferWrapper(100)
    assert c._state[0] is arena


@pytest.mark.timeout(120)
def test_blocks_freed_by_the_garbage_collector(fresh_heap):
    # frees from a collection that malloc() itself started must not deadlock
    thresholds = gc.get_threshold()
    gc.set_threshold(10)
    try:
        for _ in range(5000):
            a = heap.BufferWrapper(1)
            b = heap.BufferWrapper(1)
            a.buddy, b.buddy = b, a
        del a, b
        gc.collect()
        heap.BufferWrapper(1)  # takes in what was queued meanwhile
    finally:
        gc.set_threshold(*thresholds)
    assert fresh_heap._pending_free_blocks == []
    assert fresh_heap._n_frees == fresh_heap._n_mallocs


def test_malloc_arguments(fresh_heap):
    with pytest.raises(ValueError):
        fresh_heap.malloc(-1)
    with pytest.raises(OverflowError):
        fresh_heap.malloc(2 ** 64)
    arena, start, stop = fresh_heap.malloc(0)
    assert stop - start == fresh_heap._alignment and start % fresh_heap._alignment == 0


def test_arena_is_a_buffer_mapped_once(fresh_heap):
    a = heap.Arena(1 << 16)
    assert a.size == 1 << 16 and a.buffer is a and a.fd >= 0
    memoryview(a)[:3] = b"abc"
    # what a receiving process does with a descriptor of it
    b = heap.rebuild_arena(a.size, _Dup(os.dup(a.fd)))
    assert b is a
    rebuild, (size, dupfd) = heap.reduce_arena(a)
    assert rebuild is heap.rebuild_arena and size == a.size


class _Dup:
    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return self.fd


def test_arena_pickles_through_the_forking_pickler():
    a = heap.Arena(1 << 16)
    memoryview(a)[:5] = b"hello"
    data = gomp.reduction.ForkingPickler.dumps(a)
    b = pickle.loads(data)  # fetched from this process (the sharer)
    assert bytes(memoryview(b)[:5]) == b"hello"


def test_stdlib_names():
    from gomp import context
    assert heap.assert_spawning is context.assert_spawning
    assert isinstance(heap.BufferWrapper._heap, heap.Heap)

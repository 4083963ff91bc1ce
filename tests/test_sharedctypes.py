"""Value, Array, RawValue, RawArray and gomp.sharedctypes."""
from __future__ import annotations

import ctypes
import multiprocessing
import pickle

import pytest

import gomp
from gomp import sharedctypes


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def _child_writes(v, a, s, raw, pt):
    v.value += 1
    a[0] = 10
    a[1:3] = [20, 30]
    s.value = b"from child"
    raw[2] = 7
    pt.x, pt.y = 1.5, -2.5


def _add_many(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def test_typecodes_and_types():
    for code in "cubBhHiIlLqQfd":
        std = multiprocessing.get_context("spawn").RawValue(code)
        mine = gomp.RawValue(code)
        assert type(mine) is type(std)
        assert mine.value == std.value
    assert gomp.RawValue(ctypes.c_int, 5).value == 5
    assert gomp.RawValue("d", 2.5).value == 2.5


def test_value_with_lock():
    v = gomp.Value("i", 7)
    assert v.value == 7
    v.value = 8
    assert v.get_obj().value == 8
    assert v.get_lock().acquire() and v.acquire()
    v.release()
    v.get_lock().release()
    with v:
        v.value += 1
    assert v.value == 9
    assert repr(v) == "<Synchronized wrapper for c_int(9)>"
    assert type(v.get_lock()).__name__ == "RLock"


def test_value_lock_options():
    raw = gomp.Value("i", 3, lock=False)
    assert isinstance(raw, ctypes.c_int) and not hasattr(raw, "get_lock")
    lock = gomp.Lock()
    v = gomp.Value("i", lock=lock)
    assert v.get_lock() is lock
    with pytest.raises(AttributeError):
        gomp.Value("i", lock=object())


def test_array():
    a = gomp.Array("i", range(5))
    assert len(a) == 5 and a[:] == [0, 1, 2, 3, 4] and a[-1] == 4
    a[1:3] = [10, 20]
    assert list(a) == [0, 10, 20, 3, 4]
    assert a[::2] == [0, 20, 4]
    z = gomp.Array("d", 3)
    assert z[:] == [0.0, 0.0, 0.0]
    with pytest.raises(IndexError):
        a[5]
    s = gomp.Array("c", b"hello")
    assert s.value == b"hello" and s.raw == b"hello"
    s.value = b"hi"
    assert s.value == b"hi" and s.raw == b"hi\x00lo"
    assert type(s).__name__ == "SynchronizedString"
    raw = gomp.RawArray("B", 4)
    assert bytes(raw) == b"\x00" * 4


def test_memory_is_zeroed_when_reused():
    for _ in range(50):
        a = gomp.RawArray("b", 1000)
        assert not any(a)
        a[:] = [1] * 1000
        del a


def test_structures_and_copy():
    p = gomp.Value(Point, 1.0, 2.0)
    assert (p.x, p.y) == (1.0, 2.0)
    p.x = 3.0
    assert p.get_obj().x == 3.0
    raw = gomp.RawValue(Point, 4.0, 5.0)
    c = sharedctypes.copy(raw)
    raw.x = 0.0
    assert (c.x, c.y) == (4.0, 5.0)
    arr = gomp.RawArray(Point, [(1, 2), (3, 4)])
    assert arr[1].y == 4


def test_synchronized():
    raw = gomp.RawArray("i", 3)
    s = sharedctypes.synchronized(raw)
    s[0] = 5
    assert raw[0] == 5
    with pytest.raises(AssertionError):
        sharedctypes.synchronized(s)


def test_pickling_outside_process_start_raises():
    for obj in (gomp.Value("i"), gomp.Array("i", 2), gomp.RawValue("i"), gomp.RawArray("i", 2)):
        with pytest.raises(RuntimeError):
            gomp.reduction.ForkingPickler.dumps(obj)
    with pytest.raises(RuntimeError):
        pickle.dumps(gomp.Value("i"))


@pytest.mark.timeout(30)
def test_objects_reach_a_child():
    v, a, s = gomp.Value("i", 1), gomp.Array("i", 3), gomp.Array("c", 16)
    raw, pt = gomp.RawArray("b", 4), gomp.Value(Point)
    p = gomp.Process(target=_child_writes, args=(v, a, s, raw, pt))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert v.value == 2
    assert a[:] == [10, 20, 30]
    assert s.value == b"from child"
    assert raw[2] == 7
    assert (pt.x, pt.y) == (1.5, -2.5)


@pytest.mark.timeout(60)
def test_four_processes_add_under_get_lock():
    v = gomp.Value("i", 0)
    ps = [gomp.Process(target=_add_many, args=(v, 1000)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    assert v.value == 4000


def test_large_array_gets_its_own_arena():
    a = gomp.RawArray("d", 300_000)  # 2.4 MB, more than an arena
    a[-1] = 1.5
    assert a[-1] == 1.5 and a[0] == 0.0


def _keep_value(v, ready, stop, out):
    ready.set()
    stop.wait(10)
    out.value = v.value


@pytest.mark.timeout(30)
def test_value_dropped_by_parent_stays_with_child():
    # Process drops its arguments once started: the parent's Value goes
    ready, stop, out = gomp.Event(), gomp.Event(), gomp.Value("i", 0)
    p = gomp.Process(target=_keep_value, args=(gomp.Value("i", 1234), ready, stop, out))
    p.start()
    assert ready.wait(10)
    others = [gomp.Value("i", -1) for _ in range(100)]
    stop.set()
    p.join(10)
    assert out.value == 1234
    assert all(o.value == -1 for o in others)

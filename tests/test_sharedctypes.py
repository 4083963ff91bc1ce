"""Value, Array, RawValue, RawArray and gomp.sharedctypes. The tests taking
``mp`` run on gomp and on the stdlib's spawn context, those marked
gomp_extension on gomp alone."""
from __future__ import annotations

import ctypes
import multiprocessing.sharedctypes
import pickle

import pytest

import _shared_targets as T
from _shared_targets import Point

# the stdlib's, bound before any test may install gomp in its place
STDLIB_TYPES = dict(multiprocessing.sharedctypes.typecode_to_type)


def test_typecodes_and_types(mp):
    for code in "cubBhHiIlLqQfd":
        v = mp.RawValue(code)
        assert type(v) is STDLIB_TYPES[code]
        assert v.value == STDLIB_TYPES[code]().value
    assert mp.RawValue(ctypes.c_int, 5).value == 5
    assert mp.RawValue("d", 2.5).value == 2.5


def test_value_with_lock(mp):
    v = mp.Value("i", 7)
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


def test_value_lock_options(mp):
    raw = mp.Value("i", 3, lock=False)
    assert isinstance(raw, ctypes.c_int) and not hasattr(raw, "get_lock")
    lock = mp.Lock()
    v = mp.Value("i", lock=lock)
    assert v.get_lock() is lock
    with pytest.raises(AttributeError):
        mp.Value("i", lock=object())


def test_array(mp):
    a = mp.Array("i", range(5))
    assert len(a) == 5 and a[:] == [0, 1, 2, 3, 4] and a[-1] == 4
    a[1:3] = [10, 20]
    assert list(a) == [0, 10, 20, 3, 4]
    assert a[::2] == [0, 20, 4]
    z = mp.Array("d", 3)
    assert z[:] == [0.0, 0.0, 0.0]
    with pytest.raises(IndexError):
        a[5]
    s = mp.Array("c", b"hello")
    assert s.value == b"hello" and s.raw == b"hello"
    s.value = b"hi"
    assert s.value == b"hi" and s.raw == b"hi\x00lo"
    assert type(s).__name__ == "SynchronizedString"
    raw = mp.RawArray("B", 4)
    assert bytes(raw) == b"\x00" * 4


def test_memory_is_zeroed_when_reused(mp):
    for _ in range(50):
        a = mp.RawArray("b", 1000)
        assert not any(a)
        a[:] = [1] * 1000
        del a


def test_structures_and_copy(mp, mp_sharedctypes):
    p = mp.Value(Point, 1.0, 2.0)
    assert (p.x, p.y) == (1.0, 2.0)
    p.x = 3.0
    assert p.get_obj().x == 3.0
    raw = mp.RawValue(Point, 4.0, 5.0)
    c = mp_sharedctypes.copy(raw)
    raw.x = 0.0
    assert (c.x, c.y) == (4.0, 5.0)
    arr = mp.RawArray(Point, [(1, 2), (3, 4)])
    assert arr[1].y == 4


def test_synchronized(mp, mp_sharedctypes):
    raw = mp.RawArray("i", 3)
    s = mp_sharedctypes.synchronized(raw)
    s[0] = 5
    assert raw[0] == 5
    with pytest.raises(AssertionError):
        mp_sharedctypes.synchronized(s)


def test_pickling_outside_process_start_raises(mp):
    for obj in (mp.Value("i"), mp.Array("i", 2), mp.RawValue("i"), mp.RawArray("i", 2)):
        with pytest.raises(RuntimeError):
            mp.reducer.ForkingPickler.dumps(obj)
    with pytest.raises(RuntimeError):
        pickle.dumps(mp.Value("i"))


@pytest.mark.timeout(30)
def test_objects_reach_a_child(mp):
    v, a, s = mp.Value("i", 1), mp.Array("i", 3), mp.Array("c", 16)
    raw, pt = mp.RawArray("b", 4), mp.Value(Point)
    p = mp.Process(target=T.write_shared_ctypes, args=(v, a, s, raw, pt))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert v.value == 2
    assert a[:] == [10, 20, 30]
    assert s.value == b"from child"
    assert raw[2] == 7
    assert (pt.x, pt.y) == (1.5, -2.5)


@pytest.mark.timeout(60)
def test_four_processes_add_under_get_lock(mp):
    v = mp.Value("i", 0)
    ps = [mp.Process(target=T.add_under_lock, args=(v, 1000)) for _ in range(4)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
        assert p.exitcode == 0
    assert v.value == 4000


def test_large_array_gets_its_own_arena(mp):
    a = mp.RawArray("d", 300_000)  # 2.4 MB, more than an arena
    a[-1] = 1.5
    assert a[-1] == 1.5 and a[0] == 0.0


@pytest.mark.gomp_extension
@pytest.mark.timeout(30)
def test_value_dropped_by_parent_stays_with_child(mp):
    # Process drops its arguments once started: the parent's Value goes
    # (the stdlib's child then fails to attach it: FileNotFoundError)
    ready, stop, out = mp.Event(), mp.Event(), mp.Value("i", 0)
    p = mp.Process(target=T.keep_value, args=(mp.Value("i", 1234), ready, stop, out))
    p.start()
    assert ready.wait(10)
    others = [mp.Value("i", -1) for _ in range(100)]
    stop.set()
    p.join(10)
    assert out.value == 1234
    assert all(o.value == -1 for o in others)

"""ctypes objects in shared memory (the stdlib's
``multiprocessing.sharedctypes``).

The objects live in arenas of :mod:`gomp.heap` (anonymous memfd
segments); ``Value`` and ``Array`` pair them with a gomp lock (an RLock
unless given one). As in the stdlib they reach other processes as
arguments of a process being started.
"""
from __future__ import annotations

import ctypes
import weakref
from typing import Any, Optional

from . import context
from .heap import BufferWrapper
from .reduction import _register_own

__all__ = ["RawValue", "RawArray", "Value", "Array", "copy", "synchronized"]

typecode_to_type = {
    "c": ctypes.c_char, "u": ctypes.c_wchar,
    "b": ctypes.c_byte, "B": ctypes.c_ubyte,
    "h": ctypes.c_short, "H": ctypes.c_ushort,
    "i": ctypes.c_int, "I": ctypes.c_uint,
    "l": ctypes.c_long, "L": ctypes.c_ulong,
    "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float, "d": ctypes.c_double,
}


def _new_value(type_: Any) -> Any:
    wrapper = BufferWrapper(ctypes.sizeof(type_))
    return rebuild_ctype(type_, wrapper, None)


def RawValue(typecode_or_type: Any, *args: Any) -> Any:
    """Returns a ctypes object allocated from shared memory."""
    type_ = typecode_to_type.get(typecode_or_type, typecode_or_type)
    obj = _new_value(type_)
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type: Any, size_or_initializer: Any) -> Any:
    """Returns a ctypes array allocated from shared memory."""
    type_ = typecode_to_type.get(typecode_or_type, typecode_or_type)
    if isinstance(size_or_initializer, int):
        return _new_value(type_ * size_or_initializer)
    values = list(size_or_initializer)
    obj = _new_value(type_ * len(values))
    obj.__init__(*values)
    return obj


def _check_lock(lock: Any) -> None:
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % lock)


def _with_lock(obj: Any, lock: Any, ctx: Any) -> Any:
    # lock=False: the raw object; True/None: a new RLock; else the lock given
    if lock is False:
        return obj
    ctx = ctx or context._default_context.get_context()
    if lock in (True, None):
        lock = ctx.RLock()
    _check_lock(lock)
    return synchronized(obj, lock, ctx=ctx)


def Value(typecode_or_type: Any, *args: Any, lock: Any = True, ctx: Any = None) -> Any:
    """Return a synchronization wrapper for a Value."""
    return _with_lock(RawValue(typecode_or_type, *args), lock, ctx)


def Array(typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True,
          ctx: Any = None) -> Any:
    """Return a synchronization wrapper for a RawArray."""
    return _with_lock(RawArray(typecode_or_type, size_or_initializer), lock, ctx)


def copy(obj: Any) -> Any:
    """A new shared ctypes object with a copy of obj's contents."""
    new_obj = _new_value(type(obj))
    ctypes.memmove(ctypes.addressof(new_obj), ctypes.addressof(obj), ctypes.sizeof(obj))
    return new_obj


def synchronized(obj: Any, lock: Any = None, ctx: Any = None) -> Any:
    """Wrap a shared ctypes object with a lock."""
    assert not isinstance(obj, SynchronizedBase), "object already synchronized"
    ctx = ctx or context._default_context.get_context()
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    cls = type(obj)
    try:
        scls = _struct_wrappers[cls]
    except KeyError:
        names = [field[0] for field in cls._fields_]
        attrs = {name: _field_property(name) for name in names}
        scls = _struct_wrappers[cls] = type("Synchronized" + cls.__name__,
                                            (Synchronized,), attrs)
    return scls(obj, lock, ctx)


_struct_wrappers: "weakref.WeakKeyDictionary[type, type]" = weakref.WeakKeyDictionary()


def _field_property(name: str) -> property:
    def get(self: Any) -> Any:
        with self._lock:
            return getattr(self._obj, name)

    def set(self: Any, value: Any) -> None:
        with self._lock:
            setattr(self._obj, name, value)

    return property(get, set, doc="the field %r, under the lock" % name)


#
# Pickling: the block travels as (arena, offset, size), the arena as a
# descriptor passed at start; the ctypes type by reference.
#

def reduce_ctype(obj: Any) -> Any:
    context.assert_spawning(obj)
    if isinstance(obj, ctypes.Array):
        return rebuild_ctype, (obj._type_, obj._wrapper, obj._length_)
    return rebuild_ctype, (type(obj), obj._wrapper, None)


def rebuild_ctype(type_: Any, wrapper: Any, length: Optional[int]) -> Any:
    if length is not None:
        type_ = type_ * length
    _register_own(type_, reduce_ctype)
    arena, start, size = wrapper._state
    obj = type_.from_buffer(arena, start)
    obj._wrapper = wrapper
    return obj


class SynchronizedBase:
    """A shared ctypes object with the lock that guards it."""

    def __init__(self, obj: Any, lock: Any = None, ctx: Any = None) -> None:
        self._obj = obj
        if lock is None:
            lock = (ctx or context._default_context.get_context()).RLock()
        self._lock = lock
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> None:
        return self._lock.__exit__(*args)

    def __reduce__(self) -> Any:
        context.assert_spawning(self)
        return synchronized, (self._obj, self._lock)

    def get_obj(self) -> Any:
        """The wrapped ctypes object."""
        return self._obj

    def get_lock(self) -> Any:
        """The lock that guards it."""
        return self._lock

    def __repr__(self) -> str:
        return "<%s wrapper for %s>" % (type(self).__name__, self._obj)


def _locked_property(name: str, doc: str) -> property:
    """An attribute of the wrapped object, read and written under the lock."""
    def get(self: Any) -> Any:
        with self._lock:
            return getattr(self._obj, name)

    def set_(self: Any, value: Any) -> None:
        with self._lock:
            setattr(self._obj, name, value)

    return property(get, set_, doc=doc)


class Synchronized(SynchronizedBase):
    """A shared ctypes value; ``value`` is read and written under the lock."""

    value = _locked_property("value", "The shared value.")


class SynchronizedArray(SynchronizedBase):
    """A shared ctypes array; items and slices are accessed under the lock."""

    def __len__(self) -> int:
        return len(self._obj)

    def __getitem__(self, i: Any) -> Any:
        with self._lock:
            return self._obj[i]

    def __setitem__(self, i: Any, value: Any) -> None:
        with self._lock:
            self._obj[i] = value


class SynchronizedString(SynchronizedArray):
    """A shared char array with ``value`` and ``raw``, under the lock."""

    value = _locked_property("value", "The bytes up to the first NUL.")
    raw = _locked_property("raw", "All the bytes of the array.")

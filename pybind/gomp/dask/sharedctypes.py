"""``Value`` on a Dask cluster: a ``distributed.Variable`` (held by the
scheduler) read and written through ``.value``, with a ``distributed.Lock``
for ``get_lock()``. The typecode is checked against the stdlib's and the
value converted through it, as a ctypes object would convert it; any other
type (``object``, a class) keeps any picklable value."""
from __future__ import annotations

import ctypes
from typing import Any, Optional

import distributed

from . import _pickled
from ._shared import SharedHandle
from .synchronize import Lock

__all__ = ["Value"]

# the stdlib's typecodes (multiprocessing.sharedctypes.typecode_to_type)
_TYPECODES = {
    "c": ctypes.c_char, "u": ctypes.c_wchar, "b": ctypes.c_byte, "B": ctypes.c_ubyte,
    "h": ctypes.c_short, "H": ctypes.c_ushort, "i": ctypes.c_int, "I": ctypes.c_uint,
    "l": ctypes.c_long, "L": ctypes.c_ulong, "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong, "f": ctypes.c_float, "d": ctypes.c_double,
}


class Value(SharedHandle):
    """A value shared through the Dask scheduler."""

    def __init__(self, typecode_or_type: Any, *args: Any, lock: Any = True,
                 client: Any, name: str) -> None:
        ctype = _TYPECODES.get(typecode_or_type, typecode_or_type)
        if isinstance(typecode_or_type, str) and typecode_or_type not in _TYPECODES:
            raise TypeError("unknown typecode %r" % (typecode_or_type,))
        self._ctype = ctype if isinstance(ctype, type) and issubclass(ctype, ctypes._SimpleCData) \
            else None
        if len(args) > 1:
            raise TypeError("Value() takes one initial value, got %d" % len(args))
        initial = args[0] if args else (self._ctype().value if self._ctype else None)
        super().__init__(name, client)
        self.value = initial
        if lock is True:
            self._lock: Optional[Any] = Lock(client=client, name=name + "-lock")
        elif lock is False:
            self._lock = None
        else:
            self._lock = lock

    def _connect(self, client: Optional[Any]) -> Any:
        return distributed.Variable(name=self._name, client=client)

    @property
    def value(self) -> Any:
        return _pickled.loads(self._dask.get())

    @value.setter
    def value(self, v: Any) -> None:
        if self._ctype is not None:
            v = self._ctype(v).value  # the ctype's conversion and range
        self._dask.set(_pickled.dumps(v))

    def get_lock(self) -> Any:
        """The lock that guards updates (a ctx.Lock())."""
        if self._lock is None:
            raise AttributeError("a Value made with lock=False has no lock")
        return self._lock

    def get_obj(self) -> "Value":
        return self

    def acquire(self, *args: Any) -> bool:
        return self.get_lock().acquire(*args)

    def release(self) -> None:
        self.get_lock().release()

    def __enter__(self) -> bool:
        return self.get_lock().__enter__()

    def __exit__(self, *args: Any) -> None:
        self.get_lock().__exit__(*args)

    def __repr__(self) -> str:
        return "<%s %r>" % (type(self).__name__, self.value)

"""Values that travel through the scheduler (a Queue's items, a Value's
value) go pickled: Dask keeps msgpack data there, which would turn a tuple
into a list; a pickle gives back the object that was put."""
from __future__ import annotations

from typing import Any

from distributed.protocol.pickle import dumps as _dumps, loads as _loads

__all__ = ["dumps", "loads"]


def dumps(obj: Any) -> bytes:
    """obj pickled, by value where it cannot be found by reference."""
    return _dumps(obj)


def loads(data: bytes) -> Any:
    return _loads(data)

"""Process pools (not in gomp yet)."""
from ._missing import missing_class

__all__ = ["Pool", "ThreadPool"]

Pool = missing_class("pool.Pool")
ThreadPool = missing_class("pool.ThreadPool")
AsyncResult = missing_class("pool.AsyncResult")
ApplyResult = AsyncResult
MapResult = missing_class("pool.MapResult")
IMapIterator = missing_class("pool.IMapIterator")

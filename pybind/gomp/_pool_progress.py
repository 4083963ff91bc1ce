"""The pool's results with a progress bar (``progress=`` on ``Pool.map``,
``imap``, ``imap_unordered``, ``starmap`` and their ``_async`` forms).

Each is the plain result class with a :class:`gomp._progress.Progress`
fed where results are delivered: the pool's result thread hands a message's
results to their job at once (``_set``, ``_set_many``), so the bar moves
once per message, never from a worker. The bar closes

* when the last task's result is delivered, before ``map()`` returns or
  the result becomes ready, so that the bar is complete by then;
* when the waiting caller leaves on an exception: Ctrl-C in ``get()`` or
  ``wait()``, an error raised out of an imap iterator's ``next()`` (a
  failed task, an interrupt); a ``next(timeout)`` that runs out leaves it
  open, as the iteration may go on;
* when the pool is terminated (``_fail_all``).

``pool.py`` picks these classes only when a bar is asked for (and closes
the bar of a result it fails on terminate), so a call without one runs the
plain classes' code.
"""
from __future__ import annotations

from ._progress import Progress, make, total_of
from .context import TimeoutError
from .pool import IMapIterator, IMapUnorderedIterator, MapResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

__all__ = ["make", "total_of", "chunksize", "MapResultWithProgress",
           "IMapIteratorWithProgress", "IMapUnorderedIteratorWithProgress"]

# map() with a bar and no chunksize: at least this many chunks (or one per
# task), so that the bar moves in steps of 1% at most instead of the
# default chunking's eighths (4 chunks per worker)
STEPS = 100


def chunksize(default: int, n: int) -> int:
    """The chunksize map() uses with a bar, given the one it uses without
    and the number of tasks."""
    return max(1, min(default, -(-n // STEPS)))


class MapResultWithProgress(MapResult):
    """``map_async()``'s result, counting chunks on a bar."""

    def __init__(self, pool: Any, chunksize: int, length: int,
                 callback: Optional[Callable], error_callback: Optional[Callable],
                 bar: Progress) -> None:
        self._progress = bar
        MapResult.__init__(self, pool, chunksize, length, callback, error_callback)
        if self._ready:  # nothing to run
            bar.close()

    def _set(self, i: int, success_result: tuple) -> None:
        bar = self._progress
        # the last chunk may be short: the bar stops at its total
        bar.update(self._chunksize)
        if self._number_left <= 1:
            bar.close()
        MapResult._set(self, i, success_result)

    def wait(self, timeout: Optional[float] = None) -> None:
        try:
            MapResult.wait(self, timeout)
        except BaseException:
            self._progress.close()
            raise


class _Counting:
    """What imap's iterators with a bar add to the plain ones."""

    _index: int
    _length: Optional[int]

    def __init__(self, pool: Any, bar: Progress, chunksize: int = 1) -> None:
        self._progress = bar
        self._chunksize = chunksize
        super().__init__(pool)  # type: ignore[call-arg]

    def _count(self, items: list) -> None:
        """Put a message's results on the bar: a task each, or a chunk's
        worth (a failed chunk counts whole)."""
        cs = self._chunksize
        if cs == 1:
            self._progress.update(len(items))
        else:
            self._progress.update(sum(len(v) if ok and type(v) is list else cs
                                      for _i, (ok, v) in items))

    def _closed_if_done(self) -> None:
        if self._index == self._length:
            self._progress.close()

    def _set(self, i: int, obj: tuple) -> None:
        self._count([(i, obj)])
        super()._set(i, obj)  # type: ignore[misc]
        self._closed_if_done()

    def _set_many(self, items: list) -> None:
        # counted before the reader is woken, so that a reader that sees
        # the end sees the whole count
        self._count(items)
        super()._set_many(items)  # type: ignore[misc]
        self._closed_if_done()

    def _set_length(self, length: int) -> None:
        super()._set_length(length)  # type: ignore[misc]
        self._closed_if_done()

    def next(self, timeout: Optional[float] = None) -> Any:
        """As the plain iterator's next(); the bar closes when the results
        end or one raises (an error, Ctrl-C), not when ``timeout`` runs out."""
        try:
            return super().next(timeout)  # type: ignore[misc]
        except TimeoutError:
            if timeout is None:
                self._progress.close()
            raise
        except BaseException:
            # StopIteration included: the end, seen by the reader
            self._progress.close()
            raise

    __next__ = next


class IMapIteratorWithProgress(_Counting, IMapIterator):
    """``imap()``'s iterator, counting results on a bar."""


class IMapUnorderedIteratorWithProgress(_Counting, IMapUnorderedIterator):
    """``imap_unordered()``'s iterator, counting results on a bar."""

"""Progress bars of completed tasks, drawn by tqdm in the parent.

``progress=True`` (or a dict of tqdm options) on ``Pool.map``, ``imap``,
``imap_unordered``, ``starmap`` and their ``_async`` forms shows a bar of
the tasks completed so far. The bar lives in the parent and only the
parent updates it, from the thread that receives results (once per batch
of results, not once per task), so workers neither know of it nor pay for
it. tqdm is optional: ``pip install "gomp-multiprocessing[progress]"``.

The API, for anything that completes tasks in the parent (the pool's
results, an executor's ``map``):

``make(progress, total) -> Optional[Progress]``
    What a ``progress=`` argument asks for: None for None or False; for
    True a :class:`Progress` with tqdm's defaults, for a mapping one with
    those tqdm options (``{}`` is True). ``total`` is the number of tasks,
    or None when it is not known (tqdm then shows a count and a rate, with
    no end). Raises ImportError naming the extra when tqdm is not
    installed, TypeError for anything else than a bool, None or a mapping.

``total_of(iterable) -> Optional[int]``
    ``len(iterable)`` when it has a length, None otherwise (a generator).

``Progress.update(n=1)``
    ``n`` more tasks completed. Cheap, and safe from any thread: it counts,
    and hands the count to the bar at most once per ``mininterval`` (tqdm's
    option, 0.1 s by default). The count never passes the total (a caller
    that counts a failed chunk whole need not know how many tasks it had).
    After ``close()`` it does nothing.

``Progress.close()``
    Hands the bar what was counted since it last drew and closes it (it
    stays on screen unless ``leave=False``). Idempotent and thread-safe:
    the thread that completes the last task and the caller's thread
    leaving on an error or Ctrl-C may both call it.

``iterate(results, progress, total) -> Iterator``
    ``results`` (an iterator of results, one per task) as a generator that
    counts each result it yields and closes the bar when the results end,
    when one raises (an error, a timeout) and when the consumer stops early
    or is interrupted (the generator is closed). With ``progress`` false it
    returns ``results`` itself, untouched. It counts a result when it is
    taken: where results are taken in submission order (an executor's
    ``map``) and completion order matters, call ``update(1)`` from each
    future's done-callback instead and ``close()`` when the caller is done.
"""
from __future__ import annotations

import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, Mapping, Optional, Union
    ProgressArg = Union[bool, None, Mapping[str, Any]]

__all__ = ["EXTRA", "Progress", "make", "total_of", "iterate"]

EXTRA = "gomp-multiprocessing[progress]"

# how often the bar is handed the count (seconds) when its options do not
# say (tqdm's own default mininterval)
_DEFAULT_INTERVAL = 0.1


def _tqdm_class() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as e:
        raise ImportError("progress bars need tqdm, which is not installed: "
                          "pip install \"%s\"" % EXTRA, name="tqdm") from e
    return tqdm


class Progress:
    """A tqdm bar of completed tasks, updated from any thread of the
    parent: ``update(n)`` as tasks complete, ``close()`` once (more calls
    do nothing)."""

    def __init__(self, total: Optional[int], options: Mapping[str, Any] = {}) -> None:
        kwds = {"total": total}
        kwds.update(options)
        self.bar = _tqdm_class()(**kwds)
        total = getattr(self.bar, "total", None)
        # what may still be counted (None: no limit)
        self._left: Optional[float] = None if total is None else total
        interval = getattr(self.bar, "mininterval", None)
        self._interval = _DEFAULT_INTERVAL if interval is None else float(interval)
        self._lock = threading.Lock()
        self._pending = 0
        self._last = 0.0  # the first update is drawn at once
        self.closed = False

    def update(self, n: int = 1) -> None:
        """n more tasks completed."""
        with self._lock:
            if self.closed:
                return
            if self._left is not None:
                n = min(n, self._left - self._pending)
            self._pending += n
            now = time.monotonic()
            if now - self._last >= self._interval:
                self._last = now
                self._hand_over()

    def _hand_over(self) -> None:
        n, self._pending = self._pending, 0
        if n:
            if self._left is not None:
                self._left -= n
            self.bar.update(n)

    def close(self) -> None:
        """Draw what was counted and close the bar (once)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                self._hand_over()
            finally:
                self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def total_of(iterable: Any) -> Optional[int]:
    """len(iterable), or None when it has no length."""
    try:
        return len(iterable)
    except TypeError:
        return None


def make(progress: ProgressArg, total: Optional[int]) -> Optional[Progress]:
    """The bar a ``progress=`` argument asks for, or None for none."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return Progress(total)
    if hasattr(progress, "keys"):
        return Progress(total, progress)
    raise TypeError("progress must be a bool or a dict of tqdm options, not %s"
                    % type(progress).__name__)


def iterate(results: Iterable[Any], progress: ProgressArg,
            total: Optional[int] = None) -> Iterable[Any]:
    """results, counted on a bar as they are taken (see the module's
    docstring); results itself when progress is false."""
    bar = make(progress, total)
    if bar is None:
        return results
    return counted(iter(results), bar)


def counted(it: Iterator[Any], bar: Progress) -> Iterator[Any]:
    """it's values, each counted on bar as it is taken; the bar closes
    however the iteration ends."""
    with bar:
        for value in it:
            bar.update(1)
            yield value

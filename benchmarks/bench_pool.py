"""Pools: per-task overhead, task throughput, a big map, and start-up.

gomp's Pool against the stdlib's (spawn, its portable default, and fork
where it matters), loky and mpire where they have the operation. Pools are
made once per row and reused across repeats, except in the start-up case.
"""
from __future__ import annotations

import atexit
import compileall
import multiprocessing
import os
import time
from typing import Any, Callable, Dict

import gomp
from run import Case

import _pool_targets as T

# an installed gomp has its bytecode compiled, as the stdlib has; a source
# tree run with PYTHONDONTWRITEBYTECODE would compile gomp in every worker
compileall.compile_dir(os.path.dirname(gomp.__file__), quiet=1)

N_APPLY = 3000
N_IMAP = 5000
N_MAP = 1_000_000
WORKERS = 2

_closers: "list[Callable[[], Any]]" = []


@atexit.register
def _close_all() -> None:
    for close in reversed(_closers):
        try:
            close()
        except Exception:
            pass


def _stdlib_pool(method: str) -> Any:
    p = multiprocessing.get_context(method).Pool(WORKERS)
    _closers.append(p.terminate)
    return p


def _gomp_pool() -> Any:
    p = gomp.Pool(WORKERS)
    _closers.append(p.terminate)
    return p


def _loky() -> Any:
    try:
        import loky
    except ImportError:
        return None
    ex = loky.ProcessPoolExecutor(WORKERS)
    _closers.append(lambda: ex.shutdown(wait=True, kill_workers=True))
    return ex


def _mpire() -> Any:
    try:
        from mpire import WorkerPool
    except ImportError:
        return None
    wp = WorkerPool(n_jobs=WORKERS, keep_alive=True)
    _closers.append(wp.terminate)
    return wp


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- apply_async: submit N tasks, then collect them

def _apply_pool(p: Any) -> Callable[[], float]:
    def run() -> None:
        rs = [p.apply_async(T.ident, (i,)) for i in range(N_APPLY)]
        for r in rs:
            r.get()
    return lambda: _timed(run) / N_APPLY * 1e6


def _apply_loky(ex: Any) -> Callable[[], float]:
    def run() -> None:
        fs = [ex.submit(T.ident, i) for i in range(N_APPLY)]
        for f in fs:
            f.result()
    return lambda: _timed(run) / N_APPLY * 1e6


def _apply_mpire(wp: Any) -> Callable[[], float]:
    def run() -> None:
        rs = [wp.apply_async(T.ident, (i,)) for i in range(N_APPLY)]
        for r in rs:
            r.get()
    return lambda: _timed(run) / N_APPLY * 1e6


# -- imap_unordered with chunksize=1

def _imap_pool(p: Any) -> Callable[[], float]:
    def run() -> None:
        for _ in p.imap_unordered(T.ident, range(N_IMAP), chunksize=1):
            pass
    return lambda: N_IMAP / _timed(run)


def _imap_mpire(wp: Any) -> Callable[[], float]:
    def run() -> None:
        for _ in wp.imap_unordered(T.ident, range(N_IMAP), chunk_size=1):
            pass
    return lambda: N_IMAP / _timed(run)


def _imap_loky(ex: Any) -> Callable[[], float]:
    # loky has no imap_unordered: its map(chunksize=1) is the nearest
    def run() -> None:
        for _ in ex.map(T.ident, range(N_IMAP), chunksize=1):
            pass
    return lambda: N_IMAP / _timed(run)


# -- map over a million tiny tasks

def _map_pool(p: Any) -> Callable[[], float]:
    return lambda: _timed(lambda: p.map(T.square, range(N_MAP))) * 1e3


def _map_list(p: Any, numbers: list) -> Callable[[], float]:
    return lambda: _timed(lambda: p.map(T.square, numbers)) * 1e3


def _map_loky(ex: Any) -> Callable[[], float]:
    chunk = -(-N_MAP // (WORKERS * 4))  # the stdlib's default chunking
    return lambda: _timed(lambda: list(ex.map(T.square, range(N_MAP), chunksize=chunk))) * 1e3


def _map_mpire(wp: Any) -> Callable[[], float]:
    return lambda: _timed(lambda: wp.map(T.square, range(N_MAP))) * 1e3


# -- a new pool of 2 and its first result

def _start_pool(make: Callable[[], Any]) -> Callable[[], float]:
    def once() -> float:
        t = time.perf_counter()
        p = make()
        p.apply(T.ident, (1,))
        elapsed = time.perf_counter() - t
        p.terminate()
        p.join()
        return elapsed * 1e3
    return once


def _start_loky() -> Callable[[], float]:
    import loky

    def once() -> float:
        t = time.perf_counter()
        ex = loky.ProcessPoolExecutor(WORKERS)
        ex.submit(T.ident, 1).result()
        elapsed = time.perf_counter() - t
        ex.shutdown(wait=True, kill_workers=True)
        return elapsed * 1e3
    return once


def _start_mpire(method: str) -> Callable[[], float]:
    from mpire import WorkerPool

    def once() -> float:
        t = time.perf_counter()
        wp = WorkerPool(n_jobs=WORKERS, start_method=method)
        wp.apply(T.ident, (1,))
        elapsed = time.perf_counter() - t
        wp.terminate()
        return elapsed * 1e3
    return once


def cases():
    g = _gomp_pool()
    spawn = _stdlib_pool("spawn")
    fork = _stdlib_pool("fork")
    ex = _loky()
    wp = _mpire()
    missing: Dict[str, str] = {}

    def peers(rows: Dict[str, Callable[[], float]], loky_row: Any, mpire_row: Any) -> None:
        if ex is not None and loky_row is not None:
            rows["loky"] = loky_row(ex)
        if wp is not None and mpire_row is not None:
            rows["mpire (fork)"] = mpire_row(wp)
        if ex is None:
            missing["loky"] = "not installed (pip install loky)"
        if wp is None:
            missing["mpire (fork)"] = "not installed (pip install mpire)"

    out = []
    rows = {"gomp": _apply_pool(g), "stdlib spawn": _apply_pool(spawn),
            "stdlib fork": _apply_pool(fork)}
    peers(rows, _apply_loky, _apply_mpire)
    out.append(Case("pool apply_async per task", "µs", rows, baseline="stdlib spawn",
                    goal="gomp >= 5x stdlib", skipped=dict(missing)))

    rows = {"gomp": _imap_pool(g), "stdlib spawn": _imap_pool(spawn),
            "stdlib fork": _imap_pool(fork)}
    peers(rows, _imap_loky, _imap_mpire)
    out.append(Case("pool imap_unordered chunksize=1", "task/s", rows, baseline="stdlib spawn",
                    higher_is_better=True, goal="gomp >= 5x stdlib", skipped=dict(missing)))

    rows = {"gomp": _map_pool(g), "stdlib spawn": _map_pool(spawn),
            "stdlib fork": _map_pool(fork)}
    peers(rows, _map_loky, _map_mpire)
    out.append(Case("pool map 1e6 tiny tasks", "ms", rows, baseline="stdlib spawn",
                    goal="gomp >= 1.5x stdlib", skipped=dict(missing)))

    # the same over a list: every number is pickled there and back
    numbers = list(range(N_MAP))
    rows = {"gomp": _map_list(g, numbers), "stdlib spawn": _map_list(spawn, numbers),
            "stdlib fork": _map_list(fork, numbers)}
    if wp is not None:
        rows["mpire (fork)"] = lambda: _timed(lambda: wp.map(T.square, numbers)) * 1e3
    out.append(Case("pool map over a list of 1e6", "ms", rows, baseline="stdlib spawn",
                    skipped={k: v for k, v in missing.items() if k != "loky"}))

    rows = {"gomp": _start_pool(lambda: gomp.Pool(WORKERS)),
            "stdlib spawn": _start_pool(lambda: multiprocessing.get_context("spawn").Pool(WORKERS)),
            "stdlib fork": _start_pool(lambda: multiprocessing.get_context("fork").Pool(WORKERS))}
    if ex is not None:
        rows["loky"] = _start_loky()
    if wp is not None:
        rows["mpire (fork)"] = _start_mpire("fork")
        rows["mpire (spawn)"] = _start_mpire("spawn")
    out.append(Case("Pool(2) start + first result", "ms", rows, baseline="stdlib spawn",
                    goal="gomp >= 5x stdlib spawn", skipped=dict(missing)))
    return out

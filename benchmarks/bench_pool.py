"""Pools: per-task overhead, task throughput, big maps, and start-up.

gomp's Pool against the stdlib's with each start method, and loky and mpire
where they have the operation. A pool is made on its row's first use and
reused across cases and repeats (closed at exit), except in the start-up
case, which makes a new pool per measurement.
"""
from __future__ import annotations

import atexit
import compileall
import multiprocessing
import os
import time
from typing import Any, Callable, Dict, Optional

import gomp
from run import Case, warmed

import _pool_targets as T

# an installed gomp has its bytecode compiled, as the stdlib has; a source
# tree run with PYTHONDONTWRITEBYTECODE would compile gomp in every worker
compileall.compile_dir(os.path.dirname(gomp.__file__), quiet=1)

N_APPLY = 3000
N_IMAP = 5000
WORKERS = 2
METHODS = ("fork", "forkserver", "spawn")

_pools: Dict[str, Any] = {}
_closers: "list[Callable[[], Any]]" = []


@atexit.register
def _close_all() -> None:
    for close in reversed(_closers):
        try:
            close()
        except Exception:
            pass


def _make(kind: str) -> Any:
    if kind == "gomp":
        p = gomp.Pool(WORKERS)
        _closers.append(p.terminate)
    elif kind.startswith("stdlib "):
        p = multiprocessing.get_context(kind.split()[1]).Pool(WORKERS)
        _closers.append(p.terminate)
    elif kind == "loky":
        import loky
        p = loky.ProcessPoolExecutor(WORKERS)
        _closers.append(lambda: p.shutdown(wait=True, kill_workers=True))
    else:  # mpire
        from mpire import WorkerPool
        p = WorkerPool(n_jobs=WORKERS, keep_alive=True)
        _closers.append(p.terminate)
    return p


def _pool(kind: str) -> Any:
    """The row's pool, made on first use, its workers up before it is used."""
    if kind not in _pools:
        p = _make(kind)
        naps = [0.05] * (2 * WORKERS)  # keeps each worker busy once: all are up
        if kind == "loky":
            list(p.map(time.sleep, naps))
        elif kind.startswith("mpire"):
            # apply, not map: an mpire pool kept alive across a map, then an
            # apply_async, then an imap_unordered of one function fails
            p.apply(T.ident, (0,))
        else:
            p.map(time.sleep, naps, chunksize=1)
        _pools[kind] = p
    return _pools[kind]


def _installed(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- apply_async: submit N tasks, then collect them

def _apply(kind: str) -> float:
    p = _pool(kind)
    if kind == "loky":
        submit, get = (lambda x: p.submit(T.ident, x)), (lambda f: f.result())
    else:
        submit, get = (lambda x: p.apply_async(T.ident, (x,))), (lambda r: r.get())

    def run() -> None:
        rs = [submit(i) for i in range(N_APPLY)]
        assert [get(r) for r in rs] == list(range(N_APPLY))
    return _timed(run) / N_APPLY * 1e6


# -- imap_unordered with chunksize=1

def _imap(kind: str) -> float:
    p = _pool(kind)
    if kind == "loky":  # loky has no imap_unordered: its map(chunksize=1) is the nearest
        it = lambda: p.map(T.ident, range(N_IMAP), chunksize=1)  # noqa: E731
    elif kind.startswith("mpire"):
        it = lambda: p.imap_unordered(T.ident, range(N_IMAP), chunk_size=1)  # noqa: E731
    else:
        it = lambda: p.imap_unordered(T.ident, range(N_IMAP), chunksize=1)  # noqa: E731
    got = []
    t = _timed(lambda: got.extend(it()))
    assert len(got) == N_IMAP
    return N_IMAP / t


# -- map of a trivial function over a range or a list

def _map(kind: str, items: Any, expected: "list[int]") -> float:
    p = _pool(kind)
    if kind == "loky":
        chunk = -(-len(items) // (WORKERS * 4))  # the stdlib's default chunking
        run = lambda: list(p.map(T.square, items, chunksize=chunk))  # noqa: E731
    else:
        run = lambda: p.map(T.square, items)  # noqa: E731
    out = []
    t = _timed(lambda: out.append(run()))
    assert out[0] == expected
    return t * 1e3


# -- a new pool of 2 and its first result

def _start(kind: str) -> float:
    method = kind[kind.index("(") + 1:-1] if "(" in kind else None
    t = time.perf_counter()
    if kind == "gomp":
        p = gomp.Pool(WORKERS)
        close = p.terminate
        assert p.apply(T.ident, (1,)) == 1
    elif kind.startswith("stdlib "):
        p = multiprocessing.get_context(kind.split()[1]).Pool(WORKERS)
        close = p.terminate
        assert p.apply(T.ident, (1,)) == 1
    elif kind == "loky":
        import loky
        p = loky.ProcessPoolExecutor(WORKERS)
        close = lambda: p.shutdown(wait=True, kill_workers=True)  # noqa: E731
        assert p.submit(T.ident, 1).result() == 1
    else:
        from mpire import WorkerPool
        p = WorkerPool(n_jobs=WORKERS, start_method=method)
        close = p.terminate
        assert p.apply(T.ident, (1,)) == 1
    elapsed = time.perf_counter() - t
    close()
    if hasattr(p, "join"):
        p.join()
    return elapsed * 1e3


def _rows(fn: Callable[[str], float], peers=("loky", "mpire (fork)"),
          warm: bool = False) -> "tuple[dict, dict]":
    """gomp's, the stdlib's and the installed peers' rows of fn, and why
    the others are missing."""
    rows: Dict[str, Callable[[], float]] = {}
    skipped: Dict[str, str] = {}
    for kind in ["gomp"] + [f"stdlib {m}" for m in METHODS] + list(peers):
        lib = kind.split(" (")[0]
        if lib in ("loky", "mpire") and not _installed(lib):
            skipped[kind] = f"not installed (pip install {lib})"
        else:
            row = lambda kind=kind: fn(kind)  # noqa: E731
            rows[kind] = warmed(row) if warm else row
    return rows, skipped


def _map_case(name: str, items: Any, goal: Optional[str] = None,
              peers=("loky", "mpire (fork)")) -> Case:
    expected: "list[int]" = []

    def run(kind: str) -> float:
        if not expected:
            expected.extend(x * x for x in items)
        return _map(kind, items, expected)
    rows, skipped = _rows(run, peers)
    return Case(name, "ms", rows, baseline="stdlib spawn", goal=goal, skipped=skipped)


def cases():
    out = []
    rows, skipped = _rows(_apply)
    out.append(Case("pool apply_async per task", "µs", rows, baseline="stdlib spawn",
                    goal="gomp >= 5x stdlib", skipped=skipped))
    rows, skipped = _rows(_imap)
    out.append(Case("pool imap_unordered chunksize=1", "task/s", rows, baseline="stdlib spawn",
                    higher_is_better=True, goal="gomp >= 5x stdlib", skipped=skipped))
    out.append(_map_case("pool map 1e6 tiny tasks", range(10 ** 6), goal="gomp >= 1.5x stdlib"))
    out.append(_map_case("pool map 4e5 tiny tasks", range(4 * 10 ** 5)))
    # over a list: every number is pickled there and back
    out.append(_map_case("pool map over a list of 1e6", list(range(10 ** 6)),
                         peers=("mpire (fork)",)))
    out.append(_map_case("pool map over a list of 1e5", list(range(10 ** 5))))
    # warmed: the first pool of a kind also starts its fork server or zygote
    rows, skipped = _rows(_start, peers=("loky", "mpire (fork)", "mpire (spawn)"), warm=True)
    out.append(Case("Pool(2) start + first result", "ms", rows, baseline="stdlib spawn",
                    goal="gomp >= 5x stdlib spawn", skipped=skipped))
    return out

"""concurrent.futures: the stdlib's ProcessPoolExecutor(2) run on gomp's
context (mp_context=gomp.get_context()) against the same executor on the
stdlib's contexts, loky's executors (its ProcessPoolExecutor and the one
get_reusable_executor keeps), and gomp.futures' executor, which runs on
gomp's Pool engine (goal: submit().result() 5x faster than the stdlib's
default context).

- submit(f, x).result(), one task at a time: the round trip per task;
- list(ex.map(f, range(20000), chunksize=100)): throughput.

An executor is made on its row's first use, its workers up before timing,
and kept for both cases (shut down after the last, or at exit).
"""
from __future__ import annotations

import atexit
import concurrent.futures
import importlib
import multiprocessing
import time
from typing import Any, Callable, Dict

import gomp
from run import Case

import _pool_targets as T

WORKERS = 2
N_SUBMIT = 500
N_MAP = 20_000
CHUNK = 100
METHODS = ("fork", "forkserver", "spawn")
# the stdlib's default start method (fork before 3.14), the ratios' baseline
DEFAULT = multiprocessing.get_context().get_start_method()

_executors: Dict[str, Any] = {}


@atexit.register
def _shutdown() -> None:
    while _executors:
        _, ex = _executors.popitem()
        try:
            if hasattr(ex, "_kill_workers"):  # loky: kill_workers=
                ex.shutdown(wait=True, kill_workers=True)
            else:
                ex.shutdown(wait=True, cancel_futures=True)
        except Exception:
            pass


def _make(kind: str) -> Any:
    if kind == "gomp":
        return concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=gomp.get_context())
    if kind == "gomp.futures":
        return importlib.import_module("gomp.futures").ProcessPoolExecutor(WORKERS)
    if kind == "loky":
        import loky
        return loky.ProcessPoolExecutor(WORKERS)
    if kind == "loky reusable":
        import loky
        return loky.get_reusable_executor(WORKERS)
    return concurrent.futures.ProcessPoolExecutor(
        WORKERS, mp_context=multiprocessing.get_context(kind.split()[1]))


def _executor(kind: str) -> Any:
    if kind not in _executors:
        ex = _executors[kind] = _make(kind)
        # every worker busy once: all started (the stdlib starts them on demand)
        list(ex.map(time.sleep, [0.05] * (2 * WORKERS)))
    return _executors[kind]


def _submit(kind: str) -> float:
    ex = _executor(kind)
    t = time.perf_counter()
    for i in range(N_SUBMIT):
        assert ex.submit(T.ident, i).result() == i
    return (time.perf_counter() - t) / N_SUBMIT * 1e6


def _map(kind: str) -> float:
    ex = _executor(kind)
    t = time.perf_counter()
    out = list(ex.map(T.square, range(N_MAP), chunksize=CHUNK))
    elapsed = time.perf_counter() - t
    assert out == [x * x for x in range(N_MAP)]
    return N_MAP / elapsed


def _rows(fn: Callable[[str], float]) -> "tuple[dict, dict]":
    rows: Dict[str, Callable[[], float]] = {}
    skipped: Dict[str, str] = {}
    kinds = ["gomp", "gomp.futures"] + [f"stdlib {m}" for m in METHODS] + ["loky",
                                                                            "loky reusable"]
    for kind in kinds:
        try:
            if kind != "gomp" and not kind.startswith("stdlib"):
                importlib.import_module(kind.split()[0])
        except ImportError:
            skipped[kind] = "not available" if kind == "gomp.futures" else "pip install loky"
            continue
        rows[kind] = lambda kind=kind: fn(kind)
    skipped["stdlib default context"] = f"is stdlib {DEFAULT} here"
    return rows, skipped


def cases():
    rows, skipped = _rows(_submit)
    out = [Case(f"ProcessPoolExecutor({WORKERS}) submit(f, x).result() per task", "µs",
                rows, baseline=f"stdlib {DEFAULT}", skipped=skipped,
                goal="gomp.futures 5x the stdlib's default context")]
    rows, skipped = _rows(_map)
    out.append(Case(f"ProcessPoolExecutor({WORKERS}).map over range({N_MAP}), "
                    f"chunksize={CHUNK}", "task/s", rows, baseline=f"stdlib {DEFAULT}",
                    higher_is_better=True, skipped=skipped, teardown=_shutdown))
    return out

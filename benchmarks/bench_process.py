"""Process start-up: Process(target=noop).start() + join()."""
from __future__ import annotations

import multiprocessing
import time

import gomp
from run import Case

import _targets


def _start_join(ctx) -> float:
    t = time.perf_counter()
    p = ctx.Process(target=_targets.noop)
    p.start()
    p.join()
    elapsed = time.perf_counter() - t
    assert p.exitcode == 0
    return elapsed * 1000


def _row(ctx):
    return lambda: _start_join(ctx)


def cases():
    rows = {
        "gomp (default: spawn)": _row(gomp),
        "gomp forkserver": _row(gomp.get_context("forkserver")),
        "stdlib spawn": _row(multiprocessing.get_context("spawn")),
        "stdlib forkserver": _row(multiprocessing.get_context("forkserver")),
        "stdlib fork": _row(multiprocessing.get_context("fork")),
    }
    # the first start of each also starts its zygote / fork server: not what
    # a program with many processes pays per process
    for fn in rows.values():
        fn()
    return [Case("process start+join", "ms", rows, baseline="stdlib spawn",
                 goal="gomp >= 5x stdlib spawn")]

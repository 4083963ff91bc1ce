"""Process start-up: Process(target=noop).start() + join(), from this
process, and from a parent whose resident memory was grown to 0, 1 and 4 GiB
first (fork copies the parent's page tables; spawn and forkserver do not)."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import gomp
from run import Case, warmed

import _targets

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES_GIB = (0, 1, 4)
STARTS_PER_RUN = 5  # start+joins per method in one _big_parent.py run (its median)
# bytecode caches are written and used, as for an installed program
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _start_join(ctx) -> float:
    t = time.perf_counter()
    p = ctx.Process(target=_targets.noop)
    p.start()
    p.join()
    elapsed = time.perf_counter() - t
    assert p.exitcode == 0
    return elapsed * 1000


def _row(ctx):
    # the first start of each also starts its zygote / fork server: not what
    # a program with many processes pays per process
    return warmed(lambda: _start_join(ctx))


class _BigParent:
    """One run of _big_parent.py measures every method at once (the
    allocation is the slow part); each row takes its figure from the
    latest run, and the row that finds its figure taken starts a new one."""

    def __init__(self, gib: int) -> None:
        self.gib, self.figures = gib, {}
        self.error = None

    def take(self, row: str) -> float:
        if self.error:
            raise self.error
        if row not in self.figures:
            done = subprocess.run([sys.executable, os.path.join(HERE, "_big_parent.py"),
                                   str(self.gib), str(STARTS_PER_RUN)],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  env=_ENV, timeout=600)
            if done.returncode != 0:
                self.error = RuntimeError(f"_big_parent.py {self.gib}: exit {done.returncode}: "
                                          + " | ".join(done.stderr.strip().splitlines()[-3:]))
                raise self.error
            out = json.loads(done.stdout.strip().splitlines()[-1])
            assert out["rss_mib"] >= self.gib * 1024, out  # the memory really was resident
            self.figures = out["ms"]
        return self.figures.pop(row)


def cases():
    rows = {
        "gomp": _row(gomp),
        "gomp forkserver": _row(gomp.get_context("forkserver")),
        "stdlib fork": _row(multiprocessing.get_context("fork")),
        "stdlib forkserver": _row(multiprocessing.get_context("forkserver")),
        "stdlib spawn": _row(multiprocessing.get_context("spawn")),
    }
    out = [Case("process start+join", "ms", rows, baseline="stdlib spawn",
                goal="gomp >= 5x stdlib spawn")]
    for gib in SIZES_GIB:
        run = _BigParent(gib)
        out.append(Case(f"process start+join, parent grown by {gib} GiB", "ms",
                        {row: (lambda row=row, run=run: run.take(row))
                         for row in ["gomp"] + [f"stdlib {m}" for m in
                                                ("fork", "forkserver", "spawn")]},
                        baseline="stdlib fork", repeat=3,
                        table="process start+join vs parent size (RSS grown first; "
                              f"median of {STARTS_PER_RUN} per run)",
                        param=f"+{gib} GiB"))
    return out

"""Whole programs: the tiny scripts in benchmarks/programs/, each run as a
new `python` and timed from outside (the wall time of the subprocess, from
launch to exit), under gomp and under the stdlib with each start method.

`python -c pass` is shown for scale: the interpreter's own start-up, which
every row pays. Each script runs once untimed first, so the page cache and
the bytecode caches are warm, as for a program run more than once.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from run import Case, warmed

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")
METHODS = {"gomp": "gomp", "stdlib fork": "fork", "stdlib forkserver": "forkserver",
           "stdlib spawn": "spawn"}

# bytecode caches are written and used, as for an installed program
_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(argv: "list[str]") -> float:
    t = time.perf_counter()
    done = subprocess.run(argv, env=_env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{argv[1:]} exited with {done.returncode}: {' | '.join(tail)}")
    return elapsed * 1e3


def _program(script: str, method: str):
    return warmed(lambda: _run([sys.executable, os.path.join(PROGRAMS, script), method]))


def cases():
    out = []
    for script, title in (("import_only.py", "import + set_start_method only"),
                          ("one_process.py", "start and join one Process(target=noop)"),
                          ("pool_map.py", "Pool(2).map(f, range(10000))")):
        rows = {"python -c pass": warmed(lambda: _run([sys.executable, "-c", "pass"]))}
        rows.update({row: _program(script, m) for row, m in METHODS.items()})
        out.append(Case(f"program: {title} (python {script})", "ms", rows,
                        baseline="stdlib fork", context=("python -c pass",)))
    return out

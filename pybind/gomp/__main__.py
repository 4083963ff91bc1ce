"""Run a program with gomp installed as ``multiprocessing``.

    python -m gomp script.py [args...]
    python -m gomp -m module [args...]

The program, the libraries it imports (concurrent.futures, joblib, dask...)
and every Python process it starts get gomp whenever they import
``multiprocessing`` (see :func:`gomp.install`).
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import List

__all__ = ["main"]

USAGE = "usage: python -m gomp [-m module | script.py] [args...]"


def main(argv: List[str]) -> None:
    """Install gomp, then run argv as ``python`` would."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + __doc__.strip(), file=sys.stderr if not argv else sys.stdout)
        sys.exit(2 if not argv else 0)
    from . import install
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            sys.exit(USAGE)
        sys.argv = argv[1:]
        # as `python -m`: the module runs as __main__ (the directory we run
        # in is first on sys.path already)
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return
    script = argv[0]
    sys.argv = list(argv)
    # as `python script.py`: its directory, not ours, comes first on sys.path
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])

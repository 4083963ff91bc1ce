"""What a progress bar adds to a Pool.map: the same map of N tasks of a
fixed cost (busy CPU, so that the parent's work competes with the
workers'), with and without ``progress=True``, interleaved, in one run.

    python benchmarks/progress_overhead.py [--tasks 100000] [--ms 1]
                                           [--workers 2] [--repeat 2]
                                           [--call map imap_unordered]

Prints each run's wall time and the parent's CPU time (all its threads:
the caller, the result thread that moves the bar, tqdm's), and the median
overhead of each. On a shared machine the wall time moves by more than the
bar costs; the parent's CPU time is what the bar adds, whatever else runs.
The bar is drawn on stderr as a user would see it. Needs tqdm (pip install "gomp-multiprocessing[progress]").
Not part of run.py: at the default size one run takes N * ms / workers
(50 s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gomp  # noqa: E402

import _pool_targets as T  # noqa: E402


def run(pool, call: str, args: list, progress: bool) -> "tuple[float, float]":
    """One call's wall time and the parent's CPU time (seconds)."""
    kw = {"progress": True} if progress else {}
    cpu = time.process_time()
    t = time.perf_counter()
    if call == "map":
        out = pool.map(T.spin, args, **kw)
    else:
        out = list(getattr(pool, call)(T.spin, args, **kw))
    elapsed = time.perf_counter() - t
    cpu = time.process_time() - cpu
    assert len(out) == len(args)
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--ms", type=float, default=1.0, help="each task's cost (ms of CPU)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--call", nargs="+", default=["map"],
                    choices=["map", "imap", "imap_unordered"])
    a = ap.parse_args()
    args = [a.ms / 1e3] * a.tasks
    print(f"{a.tasks} tasks of {a.ms} ms on {a.workers} workers, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cpus", flush=True)
    with gomp.Pool(a.workers) as pool:
        pool.map(T.spin, [0.01] * (2 * a.workers), chunksize=1)  # every worker up
        # tqdm is imported by the first bar (tens of ms, once per program)
        pool.map(T.spin, [0.0], progress={"disable": True})
        for call in a.call:
            times: "dict[bool, list[tuple[float, float]]]" = {False: [], True: []}
            for r in range(a.repeat):
                # alternate which goes first, so that drift hits both alike
                for progress in ((False, True) if r % 2 == 0 else (True, False)):
                    t, cpu = run(pool, call, args, progress)
                    times[progress].append((t, cpu))
                    print(f"  {call:15} progress={progress!s:5}  {t:8.3f} s wall, "
                          f"{cpu:6.3f} s parent CPU", flush=True)
            wall = [statistics.median(t for t, _c in times[p]) for p in (False, True)]
            cpu = [statistics.median(c for _t, c in times[p]) for p in (False, True)]
            print(f"{call}: wall {wall[0]:.3f} s without a bar, {wall[1]:.3f} s with one "
                  f"({(wall[1] / wall[0] - 1) * 100:+.2f}%); parent CPU {cpu[0]:.3f} s "
                  f"and {cpu[1]:.3f} s: the bar costs {cpu[1] - cpu[0]:+.3f} s of CPU, "
                  f"{(cpu[1] - cpu[0]) / wall[0] * 100:+.2f}% of the map's wall time",
                  flush=True)


if __name__ == "__main__":
    main()

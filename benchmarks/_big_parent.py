"""Process start+join from a parent that first grows its resident memory,
as a program that allocates and then starts processes does. Run as

    python _big_parent.py GIB N

it allocates GIB GiB (every page written, so resident), starts one process
per start method untimed (gomp's first: its zygote is made now, from a
parent this size), then times N start+joins per method, round-robin, and
prints one JSON line: the RSS and the median milliseconds per method.
"""
import json
import multiprocessing
import os
import statistics
import sys
import time

import gomp

METHODS = ["fork", "forkserver", "spawn"]


def noop():
    pass


def start_join(ctx) -> float:
    t = time.perf_counter()
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    elapsed = time.perf_counter() - t
    assert p.exitcode == 0, p.exitcode
    return elapsed * 1e3


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


if __name__ == "__main__":
    gib, n = float(sys.argv[1]), int(sys.argv[2])
    ballast = bytearray(b"\x01") * int(gib * (1 << 30))  # a fill: every page touched
    ctxs = {"gomp": gomp.get_context()}
    ctxs.update({f"stdlib {m}": multiprocessing.get_context(m) for m in METHODS})
    for ctx in ctxs.values():
        start_join(ctx)
    times = {k: [] for k in ctxs}
    for _ in range(n):
        for k, ctx in ctxs.items():
            times[k].append(start_join(ctx))
    print(json.dumps({"rss_mib": rss_mib(), "ms": {k: statistics.median(v)
                                                   for k, v in times.items()}}))
    del ballast

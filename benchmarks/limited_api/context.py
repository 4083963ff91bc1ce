"""The real extension's figures for the paths hotpaths.c mirrors, to put the
differences between its variants to scale (gomp imported from the path that
run.sh puts first on PYTHONPATH, with the extension it built).

    python context.py [ROUNDS]

Prints the median of each case over the rounds, in ns per call or per item.
"""
import statistics
import sys
import timeit

import gomp
from gomp import _gomp


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    ints = list(range(10**6))
    pairs = [(i, i + 1) for i in range(10**5)]
    a, b = gomp.Pipe()
    names = dict(sq=gomp.SimpleQueue(), q=gomp.Queue(), a=a, b=b, payload=b"x" * 100,
                 ints=ints, pairs=pairs, q_chunk=_gomp.pool_pack(ints),
                 m_chunk=_gomp.pool_pack(pairs), target=[None] * 10**6, _gomp=_gomp,
                 triple=(1, 2.0, "a"))
    # (name, statement, calls per measurement, items per call)
    cases = [
        ("SimpleQueue put(1); get() [ns/pair]", "sq.put(1); sq.get()", 100000, 1),
        ("Queue put(1); get() [ns/pair]", "q.put(1); q.get()", 100000, 1),
        ("Queue put((1, 2.0, 'a')); get() [ns/pair]", "q.put(triple); q.get()", 100000, 1),
        ("Pipe send_bytes(100 B); recv_bytes() [ns/pair]",
         "a.send_bytes(payload); b.recv_bytes()", 50000, 1),
        ("pool_pack 'q', 1e6 ints [ns/item]", "_gomp.pool_pack(ints)", 5, 10**6),
        ("pool_pack 'm', 1e5 2-tuples [ns/item]", "_gomp.pool_pack(pairs)", 5, 10**5),
        ("pool_unpack 'q' -> list [ns/item]", "_gomp.pool_unpack(q_chunk)", 5, 10**6),
        ("pool_unpack_into 'q' [ns/item]", "_gomp.pool_unpack_into(q_chunk, target, 0)", 5,
         10**6),
        ("pool_unpack 'm', 1e5 2-tuples [ns/item]", "_gomp.pool_unpack(m_chunk)", 5, 10**5),
    ]
    times = {name: [] for name, _, _, _ in cases}
    for _ in range(rounds):
        for name, stmt, number, per in cases:
            t = timeit.Timer(stmt, globals=names).timeit(number)
            times[name].append(t * 1e9 / number / per)
    print("  gomp's extension, Python %d.%d" % sys.version_info[:2])
    width = max(len(name) for name in times)
    for name, xs in times.items():
        print("  %-*s %9.1f" % (width, name, statistics.median(xs)))


if __name__ == "__main__":
    main()

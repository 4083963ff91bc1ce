"""Time the variants of hotpaths.c (built by run.sh) side by side in this
interpreter: every round runs every case on every variant, the variants in
a rotated order, reversed every other round, so that drift and warm-up hit
them alike.

    python bench.py EXT_DIR [ROUNDS]

EXT_DIR holds the variants built for this Python, hotpaths_<variant>.so.
Prints one JSON line per (case, variant): ns per call or per item, the
median, min and max over the rounds.
"""
import importlib
import json
import marshal
import os
import statistics
import sys
import timeit

# the order they print in; a variant whose floor is above this Python is
# not built
VARIANTS = ["normal", "normal_codec", "lim39", "lim39_codec", "lim310", "lim311", "lim312"]

N = 10**6
BATCH = 20000  # put_many's list: what the ring holds at once
ints = list(range(N))
floats = [float(i) for i in range(N)]
pairs = [(i, i + 1) for i in range(N)]
pairs_1e5 = pairs[:10**5]
messages = [b"x" * 50 + str(i).encode() for i in range(N)]
small_ints = list(range(10**5))
batch = list(range(BATCH))


def per_call(stmt, names, number, per=1):
    """ns per call of stmt (per item: divided by per)"""
    return timeit.Timer(stmt, globals=names).timeit(number) * 1e9 / number / per


def cases(m):
    """{name: a function that makes one measurement} for module m"""
    names = dict(m=m, r=m.Ring(), ints=ints, floats=floats, pairs=pairs, pairs_1e5=pairs_1e5,
                 messages=messages, small_ints=small_ints, batch=batch, q_chunk=m.pack(ints),
                 m_chunk=m.pack_marshal(pairs_1e5), target=[None] * N,
                 ba100=bytearray(100), ba1m=bytearray(1 << 20), mv100=memoryview(bytes(100)),
                 triple=(1, 2.0, "a"))

    def case(stmt, number, per=1):
        return lambda: per_call(stmt, names, number, per)

    out = {
        "call f(1), METH_O [ns/call]": case("m.noop_o(1)", 200000),
        "call get(), VARARGS [ns/call]": case("m.get_varargs()", 200000),
        "call get(True, None), VARARGS [ns/call]": case("m.get_varargs(True, None)", 200000),
        "call get(timeout=1.0), VARARGS [ns/call]": case("m.get_varargs(timeout=1.0)", 200000),
        "ring put(1); get() [ns/pair]": case("r.put(1); r.get()", 200000),
        "ring put((1, 2.0, 'a')); get() [ns/pair]": case("r.put(triple); r.get()", 100000),
        "ring put_many(ints); drain() [ns/item]": case("r.put_many(batch); r.drain()", 20, BATCH),
        "marshal dumps, small int [ns/item]": case("m.dumps_each(small_ints)", 5, 10**5),
        "marshal dumps+loads, small int [ns/item]": case("m.marshal_each(small_ints)", 5, 10**5),
        "pool_pack 'q', 1e6 ints [ns/item]": case("m.pack(ints)", 5, N),
        "pool_pack 'd', 1e6 floats [ns/item]": case("m.pack(floats)", 5, N),
        "pool_pack walk, 1e6 2-tuples [ns/item]": case("m.check_items(pairs)", 5, N),
        "pool_pack 'm', 1e5 2-tuples [ns/item]": case("m.pack_marshal(pairs_1e5)", 5, 10**5),
        "pool_unpack 'q' -> list [ns/item]": case("m.unpack(q_chunk)", 5, N),
        "pool_unpack_into 'q' [ns/item]": case("m.unpack_into(q_chunk, target)", 5, N),
        "pool_unpack 'm', 1e5 2-tuples [ns/item]": case("m.unpack_marshal(m_chunk)", 5, 10**5),
        "bytes (pointer, length), 1e6 [ns/item]": case("m.touch_bytes(messages)", 5, N),
        "send buffer, bytearray(100) [ns/call]": case("m.send_buf(ba100)", 200000),
        "send buffer, memoryview 100 B [ns/call]": case("m.send_buf(mv100)", 200000),
        "send buffer, bytearray(1 MiB) [ns/call]": case("m.send_buf(ba1m)", 500),
    }
    if hasattr(m, "get_fastcall"):  # the limited API has it from 3.10
        out["call get(), FASTCALL [ns/call]"] = case("m.get_fastcall()", 200000)
        out["call get(True, None), FASTCALL [ns/call]"] = case(
            "m.get_fastcall(True, None)", 200000)
        out["call get(timeout=1.0), FASTCALL [ns/call]"] = case(
            "m.get_fastcall(timeout=1.0)", 200000)
    return out


def check(name, m):
    """the variants compute the same things"""
    assert m.unpack(m.pack(ints[:1000])) == ints[:1000], name
    assert m.unpack_marshal(m.pack_marshal(pairs[:100])) == pairs[:100], name
    r = m.Ring()
    for x in [1, -5, 2**40, 1.5, "héllo", "a" * 300, (1, 2.0, "a", None, True), None, [1, 2],
              {"a": 1}, b"xy"]:
        r.put(x)
        y = r.get()
        assert y == x and type(y) is type(x), (name, x, y)
        assert m.unpack_marshal(bytes(8) + marshal.dumps(x)) == x, (name, x)


def main():
    ext_dir = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    sys.path.insert(0, ext_dir)
    variants = [v for v in VARIANTS
                if os.path.exists(os.path.join(ext_dir, "hotpaths_%s.so" % v))]
    mods = {v: importlib.import_module("hotpaths_" + v) for v in variants}
    for v, m in mods.items():
        check(v, m)
    timers = {v: cases(m) for v, m in mods.items()}
    names = sorted({c for t in timers.values() for c in t})
    times = {(c, v): [] for c in names for v in variants if c in timers[v]}
    for rnd in range(rounds):
        k = rnd % len(variants)
        order = variants[k:] + variants[:k]
        if rnd % 2:
            order.reverse()
        for c in names:
            for v in order:
                if (c, v) in times:
                    times[c, v].append(timers[v][c]())
    py = "%d.%d" % sys.version_info[:2]
    for (c, v), xs in times.items():
        print(json.dumps(dict(python=py, case=c, variant=v, median=statistics.median(xs),
                              min=min(xs), max=max(xs), rounds=len(xs))))


if __name__ == "__main__":
    main()

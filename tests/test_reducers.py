"""A reducer registered with ForkingPickler.register is used by every
primitive, as the stdlib uses it: the same program runs on gomp and on the
stdlib's spawn context, and must print the same."""
from __future__ import annotations

import ast
import sys

import pytest

import scripts

pytestmark = pytest.mark.timeout(120)

PROGRAM = """
import sys
if sys.argv[1] == "gomp":
    import gomp as mp
    from gomp.reduction import ForkingPickler
else:
    import multiprocessing
    mp = multiprocessing.get_context("spawn")
    from multiprocessing.reduction import ForkingPickler


class Tagged(dict):
    # a type the plain pickler handles by itself: only the registered
    # reducer adds "via"
    pass


def rebuild(items):
    d = Tagged(items)
    d["via"] = "reducer"
    return d


def reduce_tagged(obj):
    return rebuild, (dict(obj),)


# at the top level, so that every child (which runs it too) has it
ForkingPickler.register(Tagged, reduce_tagged)


def via(x):
    return x.get("via")


def exit_with_via(x):
    sys.exit(0 if via(x) == "reducer" else 3)


def make(_):
    return Tagged(a=1)


def put_from_child(q):
    q.put(Tagged(a=1))


def send_from_child(conn):
    conn.send(Tagged(a=1))


if __name__ == "__main__":
    out = {}
    a, b = mp.Pipe()
    a.send(Tagged(a=1))
    out["Pipe"] = via(b.recv())
    for name in ("Queue", "SimpleQueue", "JoinableQueue"):
        q = getattr(mp, name)()
        q.put(Tagged(a=1))
        out[name] = via(q.get())
    q = mp.Queue()
    p = mp.Process(target=put_from_child, args=(q,))
    p.start()
    out["Queue from a child"] = via(q.get(timeout=60))
    p.join()
    a, b = mp.Pipe()
    p = mp.Process(target=send_from_child, args=(a,))
    p.start()
    out["Pipe from a child"] = via(b.recv())
    p.join()
    p = mp.Process(target=exit_with_via, args=(Tagged(a=1),))
    p.start()
    p.join()
    out["Process argument"] = "reducer" if p.exitcode == 0 else p.exitcode
    with mp.Pool(1) as pool:
        out["Pool.apply argument"] = pool.apply(via, (Tagged(a=1),))
        out["Pool.apply result"] = via(pool.apply(make, (0,)))
        out["Pool.map argument"] = pool.map(via, [Tagged(a=1)] * 3)[0]
        out["Pool.imap result"] = via(next(pool.imap(make, [0])))
    with mp.Manager() as m:
        d = m.dict()
        d["k"] = Tagged(a=1)
        out["Manager dict"] = via(d["k"])
    print(repr(out))
"""


@pytest.mark.parametrize("module", ["gomp", "multiprocessing"])
def test_registered_reducer_is_used_by_every_primitive(tmp_path, module):
    script = scripts.write(tmp_path / "tagged.py", PROGRAM)
    r = scripts.run_script(script, module, timeout=100)
    assert r.returncode == 0, r.stderr
    out = ast.literal_eval(r.stdout.strip().splitlines()[-1])
    assert len(out) == 12
    assert {k: v for k, v in out.items() if v != "reducer"} == {}

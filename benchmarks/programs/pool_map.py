"""Map a trivial function over range(10000) with a pool of two workers.

    python pool_map.py gomp|fork|forkserver|spawn
"""
import sys

if sys.argv[1] == "gomp":
    import gomp as mp
else:
    import multiprocessing as mp


def f(x):
    return x + 1


if __name__ == "__main__":
    if sys.argv[1] != "gomp":
        mp.set_start_method(sys.argv[1])
    with mp.Pool(2) as pool:
        out = pool.map(f, range(10000))
    assert out == list(range(1, 10001))

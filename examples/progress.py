"""Progress bars on a pool's maps: ``progress=True``, or a dict of tqdm
options. The bar counts completed tasks; it is drawn by this process, never
by a worker. Needs tqdm:

    pip install "gomp-multiprocessing[progress]"
    python examples/progress.py
"""
import time

import gomp


def slow_square(x):
    time.sleep(0.005)
    return x * x


def numbers(n):
    """A generator: it has no length, so its bar counts with no total."""
    yield from range(n)


if __name__ == "__main__":
    with gomp.Pool(4) as pool:
        # the input has a length: the bar shows the total and an ETA
        squares = pool.map(slow_square, range(400), progress=True)
        print("sum of squares:", sum(squares))

        # tqdm's options: a description, a unit, a bar that goes away when done
        total = 0
        for sq in pool.imap_unordered(slow_square, numbers(200),
                                      progress={"desc": "generator", "unit": "n",
                                                "leave": False}):
            total += sq
        print("sum over the generator:", total)

        powers = pool.starmap(pow, [(2, k) for k in range(64)],
                              progress={"desc": "powers of two"})
        print("2**63 =", powers[-1])

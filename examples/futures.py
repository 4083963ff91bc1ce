"""concurrent.futures on gomp, two ways: a gomp context given as mp_context,
or the whole program run with gomp in place of multiprocessing:

    python examples/futures.py
    python -m gomp examples/futures.py --installed
"""
import concurrent.futures as cf
import math
import sys

PRIMES = [112272535095293, 112582705942171, 112272535095293, 115280095190773,
          115797848077099, 1099726899285419]


def is_prime(n):
    if n < 2 or n % 2 == 0:
        return n == 2
    return all(n % i for i in range(3, int(math.isqrt(n)) + 1, 2))


if __name__ == "__main__":
    if "--installed" in sys.argv:
        import multiprocessing
        kwargs = {}  # the executor's default context is gomp's
        print("multiprocessing is", multiprocessing.__name__)
    else:
        import gomp
        kwargs = {"mp_context": gomp.get_context("spawn")}
    with cf.ProcessPoolExecutor(max_workers=2, **kwargs) as executor:
        for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
            print("%d is prime: %s" % (number, prime))

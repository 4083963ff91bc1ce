"""Per-task timeouts: a call that runs too long is killed with its worker,
fails with a TimeoutError, and the rest goes on.

    python examples/timeouts.py
"""
import concurrent.futures
import time

import gomp
from gomp.futures import ProcessPoolExecutor


def work(seconds):
    time.sleep(seconds)
    return seconds


def square(x):
    return x * x


if __name__ == "__main__":
    with gomp.Pool(2) as pool:
        # each call may run 1 s from its start (not from when it was queued)
        stuck = pool.apply_async(work, (60,), timeout=1)
        quick = pool.map(square, range(5), timeout=1)
        t = time.monotonic()
        try:
            stuck.get()
        except gomp.TimeoutError as e:
            print("Pool: timed out after %.1f s: %s" % (time.monotonic() - t, e))
        print("Pool: the other tasks went on:", quick)

    # the executor: task_timeout= for every call, or submit_with_timeout() for one
    # (submit()'s keyword arguments all go to the function)
    with ProcessPoolExecutor(max_workers=2, task_timeout=5) as executor:
        stuck = executor.submit_with_timeout(1, work, 60)
        fine = executor.submit(work, 0.5)
        try:
            stuck.result()
        except concurrent.futures.TimeoutError as e:
            print("Executor: timed out:", e)
        print("Executor: the other call returned", fine.result())
        print("Executor: map still works:", list(executor.map(square, range(5))))

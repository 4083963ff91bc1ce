"""gomp.futures.ProcessPoolExecutor: the stdlib's executor API, where a
worker that dies fails only its own futures and the executor goes on.

    python examples/executor.py
"""
import os
import signal

from gomp.futures import ProcessPoolExecutor, WorkerLostError, get_reusable_executor


def square(x):
    return x * x


def crash():
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    with ProcessPoolExecutor(max_workers=2) as executor:
        print("map:", list(executor.map(square, range(8), chunksize=2)))
        others = [executor.submit(square, i) for i in range(5)]
        doomed = executor.submit(crash)
        try:
            doomed.result()
        except WorkerLostError as e:  # also a concurrent.futures BrokenProcessPool
            print("the crashed call failed alone with %s: %s" % (type(e).__name__, e))
        print("the other calls went on:", [f.result() for f in others])
        print("the executor is still usable:", executor.submit(square, 7).result())
    # one warm executor per process, as loky's get_reusable_executor keeps
    executor = get_reusable_executor(max_workers=2)
    assert get_reusable_executor(max_workers=2) is executor
    print("reusable executor:", executor.submit(square, 12).result())
    executor.shutdown()

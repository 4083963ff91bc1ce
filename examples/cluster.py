"""The Pool tour of the multiprocessing documentation ("Using a pool of
workers"), run on a Dask cluster: the same code as examples/pool.py, with
a pool from the 'dask' context. With no --address, a LocalCluster of worker
processes is started and shut down with the context.

    pip install "gomp-multiprocessing[dask]"
    python examples/cluster.py [--address tcp://scheduler:8786]
"""
import argparse
import os
import time

import gomp
from gomp import TimeoutError


def f(x):
    return x*x


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", help="a Dask scheduler's address (default: "
                    "$GOMP_DASK_ADDRESS, else a local cluster)")
    args = ap.parse_args()

    # the one line that differs: a context that runs on the cluster
    ctx = gomp.get_context("dask", address=args.address)
    print("running on", ctx.address)

    # start 4 worker processes
    with ctx.Pool(processes=4) as pool:

        # print "[0, 1, 4,..., 81]"
        print(pool.map(f, range(10)))

        # print same numbers in arbitrary order
        for i in pool.imap_unordered(f, range(10)):
            print(i)

        # evaluate "f(20)" asynchronously
        res = pool.apply_async(f, (20,))      # runs in *only* one process
        print(res.get(timeout=10))            # prints "400"

        # evaluate "os.getpid()" asynchronously
        res = pool.apply_async(os.getpid, ())  # runs in *only* one process
        print(res.get(timeout=10))            # prints the PID of that worker

        # launching multiple evaluations asynchronously *may* use more processes
        multiple_results = [pool.apply_async(os.getpid, ()) for i in range(4)]
        print([res.get(timeout=10) for res in multiple_results])

        # make a single worker sleep for 2 seconds
        res = pool.apply_async(time.sleep, (2,))
        try:
            print(res.get(timeout=1))
        except TimeoutError:
            print("We lacked patience and got a multiprocessing.TimeoutError")

        print("For the moment, the pool remains available for more work")

    # exiting the 'with'-block has stopped the pool
    print("Now the pool is closed and no longer available")
    ctx.close()

"""The Pool tour of the multiprocessing documentation (examples/pool.py),
run unchanged on a Dask cluster: its ``Pool`` is the 'dask' context's.
With no --address, a LocalCluster of worker processes is started and shut
down with the context.

    pip install "gomp-multiprocessing[dask]"
    python examples/cluster.py [--address tcp://scheduler:8786]

In a program of your own the change is one line:
``pool = gomp.get_context("dask").Pool()`` where it said ``gomp.Pool()``.
"""
import argparse
import os
import runpy

import gomp

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", help="a Dask scheduler's address (default: "
                    "$GOMP_DASK_ADDRESS, else a local cluster)")
    args = ap.parse_args()

    with gomp.get_context("dask", address=args.address) as ctx:
        print("running on", ctx.address)
        # what examples/pool.py's `from gomp import Pool` finds
        gomp.Pool = ctx.Pool
        runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pool.py"),
                       run_name="__main__")

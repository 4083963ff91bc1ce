"""A Pool on a Dask cluster: the per-task overhead of the 'dask' context's
Pool against the same work written directly with distributed's Client, and
against Ray's Pool (ray.util.multiprocessing) where Ray is installed.

- apply_async: N calls submitted, then every result got;
  direct: client.submit(f, x, pure=False) N times, then client.gather;
- map over range(N), chunksize=1 (one task per item, as client.map makes):
  direct: client.gather(client.map(f, range(N), pure=False)).

One LocalCluster (2 worker processes of 1 thread) is started on first use
and shared by the dask rows; Ray starts its own local instance in its row.
Both are shut down after the last case. Rows are skipped when distributed
(the 'dask' extra) or ray is not installed.
"""
from __future__ import annotations

import atexit
import importlib.util
import time
from typing import Any, Callable, Dict

from run import Case, warmed

import _pool_targets as T

WORKERS = 2
N_APPLY = 400
N_MAP = 1000

_made: Dict[str, Any] = {}


def _installed(name: str) -> bool:
    # found, not imported: importing distributed and ray here, when the
    # runner collects every area's cases, made them modules of the whole
    # run, which gomp's zygote then loads for every other row's children
    # (Pool(2) start + first result: 18 -> 29 ms)
    return importlib.util.find_spec(name) is not None


@atexit.register
def _shutdown() -> None:
    ray_pool = _made.pop("ray", None)
    if ray_pool is not None:
        import ray
        if ray.is_initialized():  # at exit, Ray may have shut itself down first
            ray_pool.terminate()
            ray.shutdown()
    _made.pop("gomp pool", None)
    for name in ("gomp", "client", "cluster"):
        obj = _made.pop(name, None)
        if obj is not None:
            obj.close()


def _client() -> Any:
    if "client" not in _made:
        import distributed
        _made["cluster"] = distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None)
        _made["client"] = distributed.Client(_made["cluster"])
    return _made["client"]


def _gomp_pool() -> Any:
    if "gomp" not in _made:
        import gomp
        _made["gomp"] = gomp.get_context("dask", address=_client())
        _made["gomp pool"] = _made["gomp"].Pool()
    return _made["gomp pool"]


def _ray_pool() -> Any:
    if "ray" not in _made:
        from ray.util.multiprocessing import Pool
        _made["ray"] = Pool(WORKERS)
        _made["ray"].map(T.ident, range(4 * WORKERS), chunksize=1)  # its actors up
    return _made["ray"]


def _per_task(fn: Callable[[], None], n: int) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / n * 1e6


def _apply_pool(pool: Any) -> float:
    def run() -> None:
        rs = [pool.apply_async(T.ident, (i,)) for i in range(N_APPLY)]
        assert [r.get() for r in rs] == list(range(N_APPLY))
    return _per_task(run, N_APPLY)


def _apply_direct() -> float:
    client = _client()

    def run() -> None:
        fs = [client.submit(T.ident, i, pure=False) for i in range(N_APPLY)]
        assert client.gather(fs) == list(range(N_APPLY))
    return _per_task(run, N_APPLY)


def _map_pool(pool: Any) -> float:
    def run() -> None:
        assert pool.map(T.square, range(N_MAP), chunksize=1) == [x * x for x in range(N_MAP)]
    return _per_task(run, N_MAP)


def _map_direct() -> float:
    client = _client()

    def run() -> None:
        fs = client.map(T.square, range(N_MAP), pure=False)
        assert client.gather(fs) == [x * x for x in range(N_MAP)]
    return _per_task(run, N_MAP)


def _rows(pool_fn: Callable[[Any], float], direct: Callable[[], float]) -> "tuple[dict, dict]":
    rows: Dict[str, Callable[[], float]] = {}
    skipped: Dict[str, str] = {}
    if _installed("distributed"):
        rows["gomp (dask context)"] = warmed(lambda: pool_fn(_gomp_pool()))
        rows["dask Client"] = warmed(direct)
    else:
        skipped["gomp (dask context)"] = skipped["dask Client"] = \
            'pip install "gomp-multiprocessing[dask]"'
    if _installed("ray"):
        rows["ray Pool"] = warmed(lambda: pool_fn(_ray_pool()))
    else:
        skipped["ray Pool"] = "pip install ray"
    return rows, skipped


def cases():
    rows, skipped = _rows(_apply_pool, _apply_direct)
    out = [Case("Dask cluster: Pool.apply_async per task (direct: client.submit)", "µs",
                rows, baseline="dask Client", skipped=skipped,
                goal="at most 1.2x the direct Client's time")]
    rows, skipped = _rows(_map_pool, _map_direct)
    out.append(Case("Dask cluster: Pool.map per item, chunksize=1 (direct: client.map)", "µs",
                    rows, baseline="dask Client", skipped=skipped,
                    goal="at most 1.2x the direct Client's time", teardown=_shutdown))
    return out

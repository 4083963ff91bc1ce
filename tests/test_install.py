"""gomp.install() and `python -m gomp`: gomp in place of multiprocessing
under code that imports the stdlib's, in the program and in every Python
process it starts; the libraries built on multiprocessing run on it."""
from __future__ import annotations

import sys

import pytest

from scripts import run, write

SUBMODULES = ["context", "process", "connection", "queues", "synchronize", "pool",
              "sharedctypes", "shared_memory", "managers", "util", "heap", "reduction",
              "spawn", "dummy", "dummy.connection", "resource_tracker", "resource_sharer",
              "forkserver", "popen_spawn_posix", "popen_forkserver", "popen_fork"]


def gomp_run(path, *args, timeout=120):
    """Run a script under `python -m gomp`; it must succeed."""
    r = run([sys.executable, "-m", "gomp", str(path), *args], timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_every_submodule_is_gomps(tmp_path):
    script = write(tmp_path / "mods.py", f"""
        import importlib, sys
        import multiprocessing, gomp
        assert multiprocessing is gomp
        for name in {SUBMODULES!r}:
            mine = importlib.import_module("multiprocessing." + name)
            assert mine is importlib.import_module("gomp." + name), name
        import multiprocessing.popen_fork as pf, multiprocessing.context as c
        try:
            multiprocessing.get_context("fork")
        except ValueError as e:
            assert "fork" in str(e)
        else:
            raise AssertionError("fork context")
        # the private names libraries import
        from multiprocessing.queues import _sentinel, Queue, SimpleQueue
        from multiprocessing.util import (_args_from_interpreter_flags, spawnv_passfds,
            _exit_function, Finalize, register_after_fork, _finalizer_registry, debug)
        from multiprocessing.context import (BaseContext, ForkContext, SpawnContext,
            _concrete_contexts, assert_spawning, get_spawning_popen, set_spawning_popen)
        from multiprocessing.process import BaseProcess, _children, _current_process
        from multiprocessing.resource_tracker import _resource_tracker, ResourceTracker
        from multiprocessing.forkserver import _forkserver
        from multiprocessing.synchronize import SemLock, SEM_VALUE_MAX
        from multiprocessing.pool import worker, _helper_reraises_exception, Pool
        from multiprocessing.reduction import ForkingPickler, DupFd
        from multiprocessing.spawn import get_preparation_data, prepare, get_executable
        assert isinstance(multiprocessing.get_context(), BaseContext)
        assert not hasattr(sys.modules.get("multiprocessing.queues"), "_feed")
        print("ok", sorted(multiprocessing.__all__) == sorted({{
            name for name in dir(multiprocessing) if name in multiprocessing.__all__}}))
    """)
    assert gomp_run(script).stdout.split() == ["ok", "True"]


CHILDREN = """
    import os, subprocess, sys
    import multiprocessing as mp

    def name(_=None):
        import multiprocessing
        return multiprocessing.__name__

    def report(q):
        q.put(name())

    if __name__ == "__main__":
        seen = {"parent": name()}
        q = mp.Queue()
        for method in ("spawn", "forkserver"):
            p = mp.get_context(method).Process(target=report, args=(q,))
            p.start()
            seen[method] = q.get(timeout=60)
            p.join()
        with mp.Pool(2) as pool:
            seen["pool"] = pool.apply(name)
        out = subprocess.run([sys.executable, "-c",
                              "import multiprocessing; print(multiprocessing.__name__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        seen["subprocess"] = out
        print(sorted(seen.items()))
"""


def test_children_get_gomp_whatever_starts_them(tmp_path):
    script = write(tmp_path / "children.py", CHILDREN)
    out = gomp_run(script).stdout
    assert out.strip() == str(sorted({"parent": "gomp", "spawn": "gomp", "forkserver": "gomp",
                                      "pool": "gomp", "subprocess": "gomp"}.items()))


def test_install_call_in_the_program(tmp_path):
    script = write(tmp_path / "call.py", "import gomp\ngomp.install()\n" + CHILDREN.replace(
        "\n    ", "\n"))
    r = run([sys.executable, str(script)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("'gomp'") == 5


def test_module_runner_and_arguments(tmp_path):
    pkg = tmp_path / "app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    write(pkg / "job.py", """
        import sys, multiprocessing as mp
        def twice(x):
            return 2 * x
        if __name__ == "__main__":
            with mp.Pool(2) as p:
                print(mp.__name__, sys.argv[1:], p.map(twice, [1, 2, 3]))
    """)
    r = run([sys.executable, "-m", "gomp", "-m", "app.job", "a", "b"], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "gomp ['a', 'b'] [2, 4, 6]"
    r = run([sys.executable, "-m", "gomp"])
    assert r.returncode == 2 and "usage" in r.stderr


def test_uninstall_and_late_install(tmp_path):
    script = write(tmp_path / "late.py", """
        import warnings, sys, os
        import multiprocessing as stdlib_mp
        import gomp
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            gomp.install()
        assert any("imported before" in str(x.message) for x in w), w
        import multiprocessing
        assert multiprocessing is gomp and os.environ["GOMP_INSTALL"] == "1"
        gomp.uninstall()
        import multiprocessing
        assert multiprocessing is stdlib_mp and "GOMP_INSTALL" not in os.environ
        print("ok")
    """)
    r = run([sys.executable, str(script)])
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


FUTURES = """
    import concurrent.futures as cf, os, signal
    def square(x):
        return x * x
    def fail(x):
        raise KeyError(x)
    def die(_):
        os.kill(os.getpid(), signal.SIGKILL)
    if __name__ == "__main__":
        import multiprocessing
        assert multiprocessing.__name__ == "gomp"
        with cf.ProcessPoolExecutor() as ex:
            assert ex.submit(abs, -1).result(timeout=60) == 1
            assert list(ex.map(square, range(30), chunksize=4)) == [i * i for i in range(30)]
            try:
                ex.submit(fail, "k").result(timeout=60)
            except KeyError as e:
                assert type(e.__cause__).__name__ == "_RemoteTraceback"
        ex = cf.ProcessPoolExecutor(2)
        try:
            ex.submit(die, 0).result(timeout=60)
        except cf.process.BrokenProcessPool:
            print("broken")
        ex.shutdown()
        print("ok")
"""


def test_concurrent_futures(tmp_path):
    out = gomp_run(write(tmp_path / "futures.py", FUTURES)).stdout.split()
    assert out == ["broken", "ok"]


def test_tqdm_process_map(tmp_path):
    script = write(tmp_path / "bars.py", """
        from tqdm.contrib.concurrent import process_map
        def cube(x):
            return x ** 3
        if __name__ == "__main__":
            out = process_map(cube, range(40), max_workers=2, chunksize=3)
            print(out == [x ** 3 for x in range(40)])
    """)
    r = gomp_run(script)
    assert r.stdout.strip() == "True"
    assert "/40 [" in r.stderr  # the bar was drawn


def test_dask_processes_scheduler(tmp_path):
    script = write(tmp_path / "graph.py", """
        import dask, dask.bag as db
        def inc(x):
            return x + 1
        def square(x):
            return x * x
        if __name__ == "__main__":
            bag = db.from_sequence(range(100), npartitions=4).map(inc).filter(lambda x: x % 3 == 0)
            total = bag.sum().compute(scheduler="processes", num_workers=2)
            tree = dask.delayed(sum)([dask.delayed(square)(i) for i in range(20)])
            print(total, tree.compute(scheduler="processes", num_workers=2))
    """)
    expected = (sum(x + 1 for x in range(100) if (x + 1) % 3 == 0), sum(i * i for i in range(20)))
    assert tuple(map(int, gomp_run(script).stdout.split())) == expected


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_joblib(tmp_path, backend):
    script = write(tmp_path / "jobs.py", f"""
        from joblib import Parallel, delayed
        import numpy as np
        def where(x):
            import multiprocessing
            return multiprocessing.__name__, float(np.asarray(x).sum())
        if __name__ == "__main__":
            for _ in range(2):  # the second call reuses loky's workers
                out = Parallel(n_jobs=2, backend={backend!r})(
                    delayed(where)(np.arange(i)) for i in range(12))
                assert out == [("gomp", float(sum(range(i)))) for i in range(12)], out
            big = np.ones(300_000)  # over joblib's memmapping threshold
            print(Parallel(n_jobs=2, backend={backend!r})(delayed(where)(big) for _ in range(2)))
    """)
    assert gomp_run(script).stdout.strip() == "[('gomp', 300000.0), ('gomp', 300000.0)]"


def test_shared_memory(tmp_path):
    script = write(tmp_path / "shm.py", """
        import multiprocessing as mp
        from multiprocessing import shared_memory
        from multiprocessing.managers import SharedMemoryManager
        def poke(name):
            s = shared_memory.SharedMemory(name)
            s.buf[0] = 42
            s.close()
        def double(sl):
            sl[0] = sl[0] * 2
        if __name__ == "__main__":
            s = shared_memory.SharedMemory(create=True, size=16)
            p = mp.Process(target=poke, args=(s.name,)); p.start(); p.join()
            assert s.buf[0] == 42
            s.close(); s.unlink()
            sl = shared_memory.ShareableList([21, "a", 2.5])
            p = mp.Process(target=double, args=(sl,)); p.start(); p.join()
            assert list(sl) == [42, "a", 2.5]
            sl.shm.close(); sl.shm.unlink()
            with SharedMemoryManager() as smm:
                sl = smm.ShareableList(range(5))
                m = smm.SharedMemory(size=8)
                p = mp.Process(target=double, args=(sl,)); p.start(); p.join()
                assert list(sl) == [0, 1, 2, 3, 4] and m.size >= 8
                sl[1] = 10
                p = mp.Process(target=double, args=(sl,)); p.start(); p.join()
                assert list(sl)[:2] == [0, 10]
            print("ok")
    """)
    r = gomp_run(script)
    assert r.stdout.strip() == "ok"
    assert "Traceback" not in r.stderr and "leaked" not in r.stderr, r.stderr


def test_futures_example_both_ways():
    import os
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "examples", "futures.py")
    expected = ["True"] * 5 + ["False"]
    for cmd in ([sys.executable, example],
                [sys.executable, "-m", "gomp", example, "--installed"]):
        r = run(cmd)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert [line.rsplit(" ", 1)[1] for line in lines if "is prime" in line] == expected
    assert lines[0] == "multiprocessing is gomp"

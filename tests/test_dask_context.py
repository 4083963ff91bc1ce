"""gomp.get_context("dask"): connecting (a LocalCluster, an address, a
Client, $GOMP_DASK_ADDRESS), failing clearly (no scheduler, no extra), and
a scheduler and a worker started as processes of their own."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

import gomp
import scripts
from _dask_cluster import cluster, ctx, reap_children  # noqa: F401  (fixtures)
import _pool_targets as T

pytestmark = pytest.mark.timeout(120)


def test_import_gomp_does_not_import_dask():
    r = scripts.run_code("""
        import sys, gomp
        gomp.get_context("spawn")
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")
                     or m.startswith("gomp.dask")))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_without_distributed_the_error_names_the_extra():
    r = scripts.run_code("""
        import sys
        sys.modules["distributed"] = None  # as if it were not installed
        import gomp
        try:
            gomp.get_context("dask")
        except ImportError as e:
            print(e)
    """)
    assert r.returncode == 0, r.stderr
    assert 'pip install "gomp-multiprocessing[dask]"' in r.stdout


def test_unreachable_scheduler_fails_within_the_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    with pytest.raises(ConnectionError, match="no Dask scheduler answered"):
        gomp.get_context("dask", address="tcp://127.0.0.1:%d" % port, timeout=1)
    assert time.monotonic() - t < 10


def test_bad_arguments():
    with pytest.raises(TypeError):
        gomp.get_context("dask", address=8786)
    with pytest.raises(ValueError):
        gomp.get_context("dask", address="tcp://127.0.0.1:1", timeout=0)
    with pytest.raises(TypeError):
        gomp.get_context("dask", address="tcp://127.0.0.1:1", n_workers=2)
    with pytest.raises(TypeError):
        gomp.get_context("spawn", address="tcp://127.0.0.1:1")


def test_address_from_the_environment_and_a_client(cluster, ctx, monkeypatch):
    monkeypatch.setenv("GOMP_DASK_ADDRESS", cluster.scheduler_address)
    with gomp.get_context("dask") as env_ctx:
        assert env_ctx.address == cluster.scheduler_address
        with env_ctx.Pool() as p:
            assert p.apply(T.square, (3,)) == 9
    mine = ctx.client
    with gomp.get_context("dask", address=mine) as c:
        assert c.client is mine
        assert c.Pool().map(T.square, range(3)) == [0, 1, 4]
    assert mine.status == "running"  # a Client given to the context stays open


def test_scheduler_and_worker_as_processes_of_their_own(tmp_path):
    info = tmp_path / "scheduler.json"
    env = scripts.env(scripts.TESTS)
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--nworkers", "2",
             "--nthreads", "1", "--no-dashboard", "--scheduler-file", str(info)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while not (info.exists() and info.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        with gomp.get_context("dask", address=address, timeout=30) as c:
            c.client.wait_for_workers(2, timeout=60)
            with c.Pool() as p:
                assert p.map(T.square, range(20)) == [x * x for x in range(20)]
                assert p.apply(lambda: "by value") == "by value"
                with pytest.raises(ValueError) as e:
                    p.apply(T.fail, (1,))
                assert "_pool_targets.py" in str(e.value.__cause__)
            q = c.Queue()
            w = c.Process(target=T.echo, args=(q,))
            w.start()
            w.join(30)
            assert w.exitcode == 0
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def test_examples_cluster_runs_the_pool_tour():
    r = scripts.run_script(scripts.example("cluster.py"), timeout=90)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("running on tcp://")
    assert lines[1] == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    assert "400" in lines and "Now the pool is closed and no longer available" in lines
    assert "We lacked patience and got a multiprocessing.TimeoutError" in lines

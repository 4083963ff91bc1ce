"""Smaller pieces of the stdlib's behaviour that programs and libraries
rely on: star-imports, start-method modules, log records, exceptions."""
from __future__ import annotations

import gc
import io
import logging
import queue
import sys
import weakref

import pytest

import gomp
from gomp import context, forkserver, popen_spawn_posix, util
import _targets
from scripts import run, write


def test_star_import_gives_the_stdlibs_names(tmp_path):
    script = write(tmp_path / "star.py", """
        import multiprocessing as stdlib
        names = set(stdlib.__all__)
        import gomp
        gomp.install()
        ns = {}
        exec("from multiprocessing import *", ns)
        print(sorted(names - set(ns)), sorted(set(ns) - names - {"__builtins__"}))
    """)
    r = run([sys.executable, str(script)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] []"


def test_fork_context_explains_itself():
    with pytest.raises(ValueError, match="no fork start method"):
        gomp.get_context("fork")
    with pytest.raises(ValueError, match="fork"):
        gomp.set_start_method("fork", force=True)
    assert gomp.get_all_start_methods() == ["spawn", "forkserver"]
    assert issubclass(context.ForkContext, context.BaseContext)


def test_popen_modules_start_processes():
    p = gomp.get_context("spawn").Process(target=_targets.exit_with, args=(3,))
    p._popen = popen_spawn_posix.Popen(p)
    assert p._popen.wait(30) == 3


def test_forkserver_module_drives_the_zygote():
    forkserver.ensure_running()
    pid = forkserver._forkserver._forkserver_pid
    assert isinstance(pid, int) and pid > 0
    forkserver._forkserver._stop()
    assert forkserver._forkserver._forkserver_pid is None
    p = gomp.get_context("forkserver").Process(target=_targets.noop)
    p.start()
    p.join(30)
    assert p.exitcode == 0 and forkserver._forkserver._forkserver_pid != pid


def test_forkserver_with_a_lock_made_at_import(tmp_path):
    # importing __main__ in the server makes a lock, which starts the Go
    # runtime: the server must start over rather than fork with it
    script = write(tmp_path / "mainlock.py", """
        import gomp
        LOCK = gomp.Lock()
        def work(q):
            with LOCK:
                q.put("done")
        if __name__ == "__main__":
            ctx = gomp.get_context("forkserver")
            q = ctx.Queue()
            ps = [ctx.Process(target=work, args=(q,)) for _ in range(2)]
            for p in ps: p.start()
            print([q.get(timeout=60) for _ in ps])
            for p in ps: p.join(60)
            print([p.exitcode for p in ps])
    """)
    r = run([sys.executable, str(script)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["['done', 'done']", "[0, 0]"]


def test_log_records_name_the_caller():
    logger = gomp.get_logger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(filename)s %(message)s"))
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(util.DEBUG)
    try:
        util.info("from the test")
        util.debug("again")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert stream.getvalue().split("\n")[:2] == ["test_stdlib_names.py from the test",
                                                "test_stdlib_names.py again"]


@pytest.mark.timeout(60)
def test_manager_exceptions_make_no_cycle():
    with gomp.Manager() as m:
        q = m.Queue()
        gc.disable()
        try:
            try:
                q.get_nowait()
            except queue.Empty as e:
                ref = weakref.ref(e)
            assert ref() is None
        finally:
            gc.enable()

"""gomp.Pool where the stdlib's hangs: workers that die, Ctrl-C, terminate,
initializers that fail; and interactive code."""
from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

import pytest

import scripts

import gomp
from gomp.pool import WorkerLostError
import _pool_targets as T

pytestmark = pytest.mark.timeout(60)


def run_script(code: str, stdin: bool = False, timeout: float = 30, **kw):
    """code in a child interpreter that imports the tests' targets: as -c,
    or read from stdin (an interactive __main__)."""
    kw.setdefault("env", scripts.env(scripts.TESTS))
    if stdin:
        return scripts.run([sys.executable, "-"], input=textwrap.dedent(code),
                           timeout=timeout, **kw)
    return scripts.run_code(code, timeout=timeout, **kw)


@pytest.mark.parametrize("how,code", [("kill", -signal.SIGKILL), ("segv", -signal.SIGSEGV),
                                      ("3", 3)])
def test_dead_worker_fails_its_task_and_is_replaced(how, code):
    with gomp.Pool(2) as p:
        before = {w.pid for w in p._pool}
        errors = []
        t = time.monotonic()
        r = p.apply_async(T.die, (how,), error_callback=errors.append)
        with pytest.raises(WorkerLostError) as info:
            r.get(10)
        assert time.monotonic() - t < 5
        e = info.value
        assert isinstance(e, gomp.ProcessError)
        assert e.exitcode == code and e.pid in before
        assert str(e.pid) in str(e) and str(code) in str(e)
        assert errors and errors[0] is e
        assert p.map(T.square, range(20)) == [x * x for x in range(20)]
        deadline = time.monotonic() + 5
        while len(p._pool) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        after = {w.pid for w in p._pool}
        assert len(after) == 2 and e.pid not in after


def test_map_raises_when_a_worker_dies():
    with gomp.Pool(2) as p:
        with pytest.raises(WorkerLostError):
            p.starmap(T.die_if, [(i, 5) for i in range(8)], chunksize=1)
        assert p.starmap(T.die_if, [(i, -1) for i in range(8)]) == list(range(8))


def test_tasks_queued_for_a_dead_worker_run_elsewhere():
    with gomp.Pool(2) as p:
        victim = p.apply_async(T.sleep_then, (30,))
        time.sleep(0.2)
        pid = next(w.pid for w in p._workers.values() if w.inflight)
        others = [p.apply_async(T.square, (i,)) for i in range(50)]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerLostError):
            victim.get(10)
        assert [r.get(10) for r in others] == [i * i for i in range(50)]


def test_imap_survives_a_killed_worker():
    with gomp.Pool(2) as p:
        assert list(p.imap(T.square, range(10))) == [x * x for x in range(10)]
        it = p.imap_unordered(T.sleep_then, [0.05] * 10)
        next(it)
        for w in list(p._pool):
            os.kill(w.pid, signal.SIGKILL)
        got, lost = 0, 0
        while True:
            try:
                next(it)
                got += 1
            except StopIteration:
                break
            except WorkerLostError:
                lost += 1
        assert got + lost == 9 and lost >= 1


def test_failing_initializer_fails_tasks_instead_of_respawning_forever():
    r = run_script("""
        import gomp, _pool_targets as T
        with gomp.Pool(2, initializer=T.init_fails) as p:
            try:
                p.map(T.square, [1, 2])
            except gomp.ProcessError as e:
                print("raised:", e)
            try:
                p.apply(T.square, (1,))
            except gomp.ProcessError as e:
                print("raised again")
    """)
    assert "raised: pool workers keep ending before they start" in r.stdout, r.stderr[-2000:]
    assert "raised again" in r.stdout
    assert "initializer fails" in r.stderr


def test_terminate_leaves_no_worker_behind():
    r = run_script("""
        import os, time, gomp, _pool_targets as T
        p = gomp.Pool(3)
        r = p.apply_async(T.sleep_then, (30,))
        pids = [w.pid for w in p._pool]
        print(*pids)
        t = time.monotonic()
        p.terminate()
        print("terminated in %.2f" % (time.monotonic() - t))
    """)
    assert r.returncode == 0, r.stderr
    pids = [int(x) for x in r.stdout.split("\n")[0].split()]
    assert float(r.stdout.split("terminated in ")[1]) < 3
    time.sleep(0.1)
    for pid in pids:
        assert not scripts.pid_alive(pid)


def test_ctrl_c_interrupts_map_at_once():
    code = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp, _pool_targets as T
        with gomp.Pool(2) as p:
            print("ready", flush=True)
            try:
                p.map(T.sleep_then, [30] * 4, chunksize=1)
            except KeyboardInterrupt:
                print("KeyboardInterrupt", flush=True)
                raise
        """)
    proc = scripts.start([sys.executable, "-c", code], env=scripts.env(scripts.TESTS))
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t
    finally:
        proc.kill()
        proc.wait()
    assert "KeyboardInterrupt" in out, err
    assert elapsed < 3, elapsed
    assert proc.returncode != 0


def test_a_callback_that_raises_leaves_its_result_ready(gomp_pool, capsys):
    """A callback that raises is reported, and its result is still ready
    (the stdlib's result thread dies there, and every get() hangs)."""
    def boom(_value):
        raise RuntimeError("callback failed")
    r = gomp_pool.apply_async(T.square, (3,), callback=boom)
    assert r.get(10) == 9
    e = gomp_pool.apply_async(T.fail, (1,), error_callback=boom)
    with pytest.raises(ValueError):
        e.get(10)
    m = gomp_pool.map_async(T.square, range(4), callback=boom)
    assert m.get(10) == [0, 1, 4, 9]
    assert gomp_pool.apply(T.square, (5,)) == 25
    assert capsys.readouterr().err.count("RuntimeError: callback failed") == 3


def test_interactive_lambda_from_stdin():
    r = run_script("""
        from gomp import Pool
        with Pool(5) as p:
            print(p.map(lambda x: x*x, [1, 2, 3]))
    """, stdin=True)
    assert r.stdout == "[1, 4, 9]\n", r.stderr[-2000:]


def test_interactive_function_from_stdin():
    r = run_script("""
        import gomp as multiprocessing
        def f(x):
            return x * x
        class Box:
            def __init__(self, v):
                self.v = v
        def unbox(b):
            return b.v + 1
        with multiprocessing.Pool(2) as p:
            print(p.map(f, [1, 2, 3]), p.apply(unbox, (Box(1),)))
    """, stdin=True)
    assert r.stdout == "[1, 4, 9] 2\n", r.stderr[-2000:]


def test_interactive_classes_and_lambdas_come_back_from_workers():
    # what the parent's __main__ defines travels to the workers by value
    # and must come back as itself (results are otherwise pickled by
    # reference, as the stdlib pickles them)
    r = run_script("""
        import gomp
        class Box:
            def __init__(self, v):
                self.v = v
        def same(b):
            return b
        def maker():
            return lambda: "made in a worker"
        with gomp.Pool(2) as p:
            b = p.apply(same, (Box(3),))
            print(type(b) is Box, b.v, p.apply(maker)())
    """, stdin=True)
    assert r.stdout == "True 3 made in a worker\n", r.stderr[-2000:]


def test_pool_tour_example():
    t = time.monotonic()
    r = scripts.run([sys.executable, scripts.example("pool.py")], timeout=30)
    assert time.monotonic() - t < 8
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    assert sorted(int(x) for x in lines[1:11]) == [x * x for x in range(10)]
    assert lines[11] == "400"
    assert lines[12].isdigit()
    assert lines[13].startswith("[") and len(eval(lines[13])) == 4
    assert lines[14:] == ["We lacked patience and got a multiprocessing.TimeoutError",
                          "For the moment, the pool remains available for more work",
                          "Now the pool is closed and no longer available"]


def test_leaving_with_does_not_wait_for_a_slow_iterable():
    def forever():
        yield 1
        time.sleep(8)
        yield 2
    t = time.monotonic()
    with gomp.Pool(1) as p:
        it = p.imap(T.square, forever())
        assert next(it) == 1
    p.join()
    assert time.monotonic() - t < 5


def test_pools_left_running_end_quietly_at_exit():
    r = run_script("""
        import atexit, gomp, _pool_targets as T
        first = gomp.Pool(2)
        atexit.register(first.terminate)
        first.map(T.square, range(3))
        left = gomp.Pool(2)
        left.apply_async(T.sleep_then, (30,))
        print("ok")
    """)
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert r.stderr == "", r.stderr

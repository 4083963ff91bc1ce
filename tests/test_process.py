"""gomp.Process: the stdlib's API and semantics, exit codes, signals, timeouts.
The tests taking ``mp`` run on gomp (both start methods) and on the stdlib's
spawn context."""
from __future__ import annotations

import ast
import os
import pickle
import signal
import threading
import time

import pytest

import gomp
import _targets

pytestmark = pytest.mark.timeout(60)

# the mp fixture (conftest.py) runs on gomp's forkserver too
MP_ALSO = ["gomp-forkserver"]


@pytest.fixture(params=["spawn", "forkserver"])
def ctx(request):
    """gomp's context, for what only gomp does."""
    return gomp.get_context(request.param)


def run_target(ctx, target, *args, **kwargs):
    p = ctx.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join(30)
    return p


def test_exit_code_zero(mp):
    p = run_target(mp, _targets.noop)
    assert p.exitcode == 0
    assert not p.is_alive()


@pytest.mark.parametrize("code, expected", [(3, 3), (0, 0), (None, 0), (255, 255)])
def test_sys_exit_code(mp, code, expected):
    assert run_target(mp, _targets.exit_with, code).exitcode == expected


def test_sys_exit_with_a_message_gives_1_and_prints_it(mp, capfd):
    p = run_target(mp, _targets.exit_with, "goodbye")
    assert p.exitcode == 1
    assert "goodbye" in capfd.readouterr().err


def test_uncaught_exception_gives_1_and_traceback_on_stderr(mp, capfd):
    p = run_target(mp, _targets.raise_value_error)
    assert p.exitcode == 1
    err = capfd.readouterr().err
    assert "Traceback" in err
    assert "ValueError: boom from the child" in err
    assert f"Process {p.name}:" in err


def test_os_exit_code(mp):
    assert run_target(mp, _targets.os_exit, 7).exitcode == 7


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1])
def test_death_by_signal_gives_minus_signum(mp, sig):
    assert run_target(mp, _targets.kill_self, sig).exitcode == -sig


def test_terminate_and_kill(mp):
    p = mp.Process(target=_targets.sleep, args=(30,))
    p.start()
    assert p.is_alive()
    p.terminate()
    p.join(10)
    assert p.exitcode == -signal.SIGTERM
    q = mp.Process(target=_targets.ignore_sigterm_and_sleep, args=(30,))
    q.start()
    time.sleep(0.3)  # let it install its handler
    q.kill()
    q.join(10)
    assert q.exitcode == -signal.SIGKILL


def test_terminate_after_exit_is_harmless(mp):
    p = run_target(mp, _targets.noop)
    p.terminate()
    p.kill()
    assert p.exitcode == 0


def test_join_timeout_returns_with_process_running(mp):
    p = mp.Process(target=_targets.sleep, args=(30,))
    p.start()
    t = time.monotonic()
    p.join(0.2)
    elapsed = time.monotonic() - t
    assert 0.15 <= elapsed < 5
    assert p.exitcode is None
    assert p.is_alive()
    p.join(0)
    assert p.exitcode is None
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL


def test_join_negative_timeout_is_a_poll(mp):
    p = mp.Process(target=_targets.sleep, args=(30,))
    p.start()
    t = time.monotonic()
    p.join(-1)
    assert time.monotonic() - t < 2
    assert p.is_alive()


def test_sentinel_becomes_ready_when_the_process_ends(mp, mp_connection):
    wait = mp_connection.wait
    p = mp.Process(target=_targets.sleep, args=(0.3,))
    p.start()
    assert wait([p.sentinel], timeout=0) == []
    assert wait([p.sentinel], timeout=20) == [p.sentinel]
    p.join(10)
    assert p.exitcode == 0


@pytest.mark.gomp_extension
def test_exitcode_is_known_once_the_sentinel_is_ready(ctx):
    # the stdlib's sentinel is a pipe, closed before the child is reaped
    from gomp.connection import wait
    p = ctx.Process(target=_targets.sleep, args=(0.3,))
    p.start()
    assert wait([p.sentinel], timeout=20) == [p.sentinel]
    assert p.exitcode == 0  # known as soon as the sentinel is ready


def test_pid_ident_and_name(mp):
    p = mp.Process(target=_targets.noop, name="worker-x")
    assert p.pid is None and p.ident is None
    assert p.name == "worker-x"
    p.start()
    assert isinstance(p.pid, int) and p.pid == p.ident and p.pid != os.getpid()
    p.join()
    assert p.exitcode == 0


def test_default_names_count_up(mp):
    a = mp.Process(target=_targets.noop)
    b = mp.Process(target=_targets.noop)
    ia = int(a.name.split("-")[1])
    kind = type(a).__name__  # Process, or the context's: SpawnProcess
    assert a.name.startswith(kind + "-") and b.name == f"{kind}-{ia + 1}"


def test_repr_states(mp):
    p = mp.Process(target=_targets.sleep, args=(30,), daemon=True)
    assert "initial" in repr(p) and "daemon" in repr(p)
    p.start()
    assert "started" in repr(p) and f"pid={p.pid}" in repr(p)
    p.terminate()
    p.join()
    assert "stopped exitcode=-SIGTERM" in repr(p)
    p.close()
    assert "closed" in repr(p)


def test_start_twice_raises_assertion(mp):
    p = mp.Process(target=_targets.noop)
    p.start()
    with pytest.raises(AssertionError, match="cannot start a process twice"):
        p.start()
    p.join()


def test_join_before_start_raises_assertion(mp):
    p = mp.Process(target=_targets.noop)
    with pytest.raises(AssertionError, match="can only join a started process"):
        p.join()


def test_close_while_running_raises_value_error(mp):
    p = mp.Process(target=_targets.sleep, args=(30,))
    p.start()
    with pytest.raises(ValueError, match="still running"):
        p.close()
    p.kill()
    p.join()
    p.close()
    p.close()  # twice is fine


@pytest.mark.parametrize("use", [
    lambda p: p.start(), lambda p: p.join(), lambda p: p.is_alive(), lambda p: p.terminate(),
    lambda p: p.kill(), lambda p: p.exitcode, lambda p: p.pid, lambda p: p.sentinel,
])
def test_methods_after_close_raise_value_error(mp, use):
    p = run_target(mp, _targets.noop)
    p.close()
    with pytest.raises(ValueError, match="process object is closed"):
        use(p)


def test_sentinel_before_start_raises_value_error(mp):
    with pytest.raises(ValueError, match="process not started"):
        mp.Process(target=_targets.noop).sentinel


def test_daemon_flag(mp):
    p = mp.Process(target=_targets.noop, daemon=True)
    assert p.daemon
    p.daemon = False
    assert not p.daemon
    p.start()
    with pytest.raises(AssertionError, match="already started"):
        p.daemon = True
    p.join()


def test_daemonic_process_cannot_have_children(mp, tmp_path):
    p = mp.Process(target=_targets.start_grandchild, args=(str(tmp_path / "g"),), daemon=True)
    p.start()
    p.join(30)
    assert p.exitcode == 1
    assert not (tmp_path / "g").exists()


def test_non_daemonic_child_can_have_children(mp, tmp_path):
    p = run_target(mp, _targets.start_grandchild, str(tmp_path / "g"))
    assert p.exitcode == 0
    assert (tmp_path / "g").read_text() == "grandchild"


@pytest.mark.gomp_extension
def test_subclass_with_run(ctx, tmp_path):
    class Writer(ctx.Process):
        def __init__(self, path):
            super().__init__()
            self.path = path

        def run(self):
            _targets.write_file(self.path, self.name)

    # a class defined in a test function travels by value
    w = Writer(str(tmp_path / "out"))
    w.start()
    w.join(30)
    assert w.exitcode == 0
    assert (tmp_path / "out").read_text() == w.name


def test_kwargs_and_args_reach_the_target(mp, tmp_path):
    p = run_target(mp, _targets.write_file, str(tmp_path / "f"), text="hello")
    assert p.exitcode == 0
    assert (tmp_path / "f").read_text() == "hello"


@pytest.mark.gomp_extension
def test_lambda_and_closure_targets_run(ctx, tmp_path):
    path = str(tmp_path / "lam")
    secret = "from a closure"
    p = run_target(ctx, lambda: _targets.write_file(path, secret))
    assert p.exitcode == 0
    assert (tmp_path / "lam").read_text() == secret


def test_child_sees_itself_and_its_parent(mp, tmp_path, monkeypatch):
    monkeypatch.setenv("GOMP_TEST_VAR", "carried over")
    path = str(tmp_path / "report")
    p = mp.Process(target=_targets.report, args=(path,), name="reporter")
    p.start()
    p.join(30)
    assert p.exitcode == 0
    seen = ast.literal_eval((tmp_path / "report").read_text())
    assert seen["name"] == "reporter"
    assert seen["pid"] == seen["ident"] == p.pid
    assert seen["parent_pid"] == os.getpid()
    assert seen["parent_name"] == mp.current_process().name
    assert seen["parent_alive"] is True
    assert seen["authkey"] == bytes(mp.current_process().authkey)
    assert seen["cwd"] == os.getcwd()
    assert seen["env"] == "carried over"


def test_working_directory_change_before_start_is_carried(mp, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = run_target(mp, _targets.report, "report")
    assert p.exitcode == 0
    assert ast.literal_eval((tmp_path / "report").read_text())["cwd"] == str(tmp_path)


def test_children_write_to_the_current_stdout_and_stderr(mp, capfd):
    # capfd redirects descriptors 1 and 2 after the zygote started: children
    # must write where the parent's descriptors point at start()
    p = run_target(mp, _targets.print_lines, "child", 3)
    assert p.exitcode == 0
    out, err = capfd.readouterr()
    assert [l for l in out.splitlines() if l.startswith("child")] == [
        "child out 0", "child out 1", "child out 2"]
    assert "child err 2" in err


def test_unpicklable_argument_raises_in_start(mp):
    lock = threading.Lock()
    p = mp.Process(target=_targets.noop, args=(lock,))
    with pytest.raises((TypeError, pickle.PicklingError), match="lock"):
        p.start()
    # nothing started: the object can be inspected and is not running
    assert p.pid is None


def test_active_children_and_cleanup(mp):
    p = mp.Process(target=_targets.sleep, args=(30,))
    p.start()
    assert p in mp.active_children()
    p.terminate()
    p.join()
    assert p not in mp.active_children()


def test_many_children_at_once(mp):
    ps = [mp.Process(target=_targets.exit_with, args=(i,)) for i in range(20)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(30)
    assert [p.exitcode for p in ps] == list(range(20))


def test_starting_from_threads(mp):
    results = []

    def starter(i):
        p = mp.Process(target=_targets.exit_with, args=(i,))
        p.start()
        p.join(30)
        results.append((i, p.exitcode))

    threads = [threading.Thread(target=starter, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(i, i) for i in range(8)]


def test_main_process_identity(mp):
    me = mp.current_process()
    assert me.name == "MainProcess"
    assert me.pid == os.getpid()
    assert me.is_alive()
    assert mp.parent_process() is None
    with pytest.raises(TypeError, match="disallowed"):
        pickle.dumps(me.authkey)


def test_zygote_killed_is_replaced(tmp_path):
    from gomp import zygote
    run_target(gomp.get_context("spawn"), _targets.noop)
    z = zygote.get("spawn")
    os.kill(z.pid, signal.SIGKILL)
    time.sleep(0.2)
    p = run_target(gomp.get_context("spawn"), _targets.exit_with, 4)
    assert p.exitcode == 4


def test_exec_start_path(monkeypatch, tmp_path):
    # GOMP_START=exec starts each child by fork+exec from Go, no zygote
    monkeypatch.setenv("GOMP_START", "exec")
    p = run_target(gomp.get_context("spawn"), _targets.exit_with, 5)
    assert p.exitcode == 5
    q = gomp.Process(target=_targets.sleep, args=(30,))
    q.start()
    q.terminate()
    q.join(10)
    assert q.exitcode == -signal.SIGTERM


def test_dropped_process_objects_do_not_leak_descriptors(ctx):
    import gc

    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    for _ in range(3):  # warm up: zygote, Go runtime
        run_target(ctx, _targets.noop)
    gc.collect()
    before = open_fds()
    for _ in range(20):
        p = run_target(ctx, _targets.noop)
        assert p.exitcode == 0
        del p
    gc.collect()
    assert open_fds() <= before


def test_signals_after_close_of_popen_are_ignored(ctx):
    p = run_target(ctx, _targets.noop)
    popen = p._popen
    p.close()
    popen.terminate()  # a closed pidfd: nothing to signal, no EBADF
    popen.kill()

"""Whole programs using gomp: how __main__ reaches children, what happens at
exit, when the parent is killed, on Ctrl-C, and after a bare os.fork()."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import scripts

pytestmark = pytest.mark.timeout(90)

GUARDED = """
import os, sys
import gomp

TOP_LEVEL_RUNS = os.getpid()   # spawn semantics: re-run in every child

def work(path):
    with open(path, "w") as f:
        f.write(f"{__name__} {TOP_LEVEL_RUNS == os.getpid()} {helper()}")

def helper():
    return "helper-ok"

if __name__ == "__main__":
    ctx = gomp.get_context(sys.argv[2]) if len(sys.argv) > 2 else gomp
    p = ctx.Process(target=work, args=(sys.argv[1],))
    p.start()
    p.join()
    sys.exit(p.exitcode)
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_script_with_main_guard(tmp_path, method):
    script = scripts.write(tmp_path / "prog.py", GUARDED)
    out = tmp_path / "out"
    r = scripts.run_script(script, str(out), method)
    assert r.returncode == 0, r.stderr
    name, reran, helper = out.read_text().split()
    assert name == "__mp_main__" and helper == "helper-ok"
    # under spawn the child runs the main module's top level itself; the
    # forkserver imports it once, in the server
    assert reran == ("True" if method == "spawn" else "False")


def test_script_in_another_directory_with_a_sibling_module(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    scripts.write(app / "sibling.py", "VALUE = 'from the sibling module'\n")
    script = scripts.write(app / "main.py", """
        import sys, gomp
        import sibling

        def work(path):
            with open(path, "w") as f:
                f.write(sibling.VALUE)

        if __name__ == "__main__":
            p = gomp.Process(target=work, args=(sys.argv[1],))
            p.start(); p.join(); sys.exit(p.exitcode)
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    r = scripts.run_script(script, str(out), cwd=str(elsewhere))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "from the sibling module"


def test_python_dash_m_package_module(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    scripts.write(pkg / "mod.py", """
        import sys, gomp

        def work(path):
            with open(path, "w") as f:
                f.write(__name__)

        if __name__ == "__main__":
            p = gomp.Process(target=work, args=(sys.argv[1],))
            p.start(); p.join(); sys.exit(p.exitcode)
        """)
    out = tmp_path / "out"
    r = scripts.run([sys.executable, "-m", "pkg.mod", str(out)], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "__mp_main__"


STDIN_PROGRAM = """
import sys, gomp

def square_into(path, x):
    with open(path, "w") as f:
        f.write(str(x * x))

class Writer(gomp.Process):
    def __init__(self, path):
        super().__init__()
        self.path = path
    def run(self):
        square_into(self.path, 12)

p = gomp.Process(target=square_into, args=(sys.argv[1] + ".f", 7))
p.start(); p.join()
q = gomp.Process(target=lambda: square_into(sys.argv[1] + ".l", 9))
q.start(); q.join()
w = Writer(sys.argv[1] + ".c")
w.start(); w.join()
print(p.exitcode, q.exitcode, w.exitcode)
"""


@pytest.mark.parametrize("argv", [["-"], []], ids=["python -", "python < file"])
def test_main_read_from_stdin(tmp_path, argv):
    # the stdlib cannot re-import such a __main__: gomp sends its functions
    # and classes by value
    out = str(tmp_path / "out")
    args = [sys.executable, *argv] + ([out] if argv else [])
    program = STDIN_PROGRAM if argv else STDIN_PROGRAM.replace("sys.argv[1]", repr(out))
    r = scripts.run(args, input=program)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "0"]
    assert open(out + ".f").read() == "49"
    assert open(out + ".l").read() == "81"
    assert open(out + ".c").read() == "144"


def test_python_dash_c(tmp_path):
    out = tmp_path / "out"
    prog = ("import gomp\n"
            "def f(p):\n    open(p, 'w').write('dash-c')\n"
            f"p = gomp.Process(target=f, args=({str(out)!r},)); p.start(); p.join()\n"
            "raise SystemExit(p.exitcode)\n")
    r = scripts.run([sys.executable, "-c", prog])
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "dash-c"


def test_script_without_main_guard_fails_cleanly(tmp_path):
    script = scripts.write(tmp_path / "noguard.py", """
        import gomp
        def work():
            pass
        p = gomp.Process(target=work)
        p.start()
        p.join()
        print("exitcode", p.exitcode)
        """)
    r = scripts.run_script(script, timeout=60)
    # the child re-imports the script, whose start() refuses to recurse
    assert "exitcode 1" in r.stdout
    assert "bootstrapping phase" in r.stderr


def test_import_does_not_start_go_and_the_zygote_never_does(tmp_path):
    script = scripts.write(tmp_path / "lazy.py", """
        import os, sys, time
        import gomp
        from gomp import _core, zygote

        def threads(pid="self"):
            return len(os.listdir(f"/proc/{pid}/task"))

        def noop():
            pass

        if __name__ == "__main__":
            print("before", _core.loaded(), threads())
            # starting and joining processes needs no Go
            p = gomp.Process(target=noop); p.start(); p.join()
            print("process", p.exitcode, _core.loaded(), threads())
            q = gomp.Queue(); q.put(1); q.get()
            z = zygote.get("spawn")
            print("queue", _core.loaded(), threads() > 1, threads(z.pid), 'gomp._gomp' in sys.modules)
        """)
    r = scripts.run_script(script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "before False 1"
    assert lines[1] == "process 0 False 1"
    # a queue started Go's threads in the parent; the zygote has one thread only
    assert lines[2] == "queue True True 1 True"


def test_fork_after_go_loaded_raises_instead_of_hanging(tmp_path):
    script = scripts.write(tmp_path / "forky.py", """
        import os, sys
        import gomp

        def noop():
            pass

        if __name__ == "__main__":
            q = gomp.Queue(); q.put(1); q.get()  # loads Go
            pid = os.fork()
            if pid == 0:
                try:
                    q = gomp.Process(target=noop)
                    q.start()
                    q.join()
                    msg = "no error"
                except RuntimeError as e:
                    msg = "RuntimeError: " + str(e)
                os.write(1, (msg + "\\n").encode())
                os._exit(0)
            os.waitpid(pid, 0)
        """)
    r = scripts.run_script(script, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("RuntimeError: gomp cannot be used in a process made by fork()")


def test_fork_after_processes_without_go_uses_a_zygote_of_its_own(tmp_path):
    # starting processes needs no Go, so a program's os.fork() may use gomp
    # afterwards: with a zygote of its own, never with its parent's
    script = scripts.write(tmp_path / "forklater.py", """
        import os, sys
        import gomp
        from gomp import zygote

        def code(n):
            sys.exit(n)

        if __name__ == "__main__":
            p = gomp.Process(target=code, args=(3,)); p.start(); p.join()
            mine = zygote.get("spawn").pid
            pid = os.fork()
            if pid == 0:
                q = gomp.Process(target=code, args=(7,)); q.start(); q.join()
                os._exit(q.exitcode if zygote.get("spawn").pid != mine else 99)
            r = gomp.Process(target=code, args=(5,)); r.start(); r.join()
            _, status = os.waitpid(pid, 0)
            print(p.exitcode, os.waitstatus_to_exitcode(status), r.exitcode,
                  zygote.get("spawn").pid == mine)
        """)
    r = scripts.run_script(script, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "7", "5", "True"]


def test_fork_before_go_loaded_is_fine(tmp_path):
    script = scripts.write(tmp_path / "forkfirst.py", """
        import os, sys
        import gomp

        def noop():
            sys.exit(9)

        if __name__ == "__main__":
            pid = os.fork()
            if pid == 0:
                q = gomp.Process(target=noop); q.start(); q.join()
                os._exit(q.exitcode)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
        """)
    r = scripts.run_script(script, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "9"


LONG_LIVED = """
import os, sys, time
import gomp
from gomp import zygote

if __name__ == "__main__":
    daemon = sys.argv[1] == "daemon"
    p = gomp.Process(target=time.sleep, args=(60,), daemon=daemon)
    p.start()
    print("pids", p.pid, zygote.get("spawn").pid, flush=True)
    {tail}
"""


def test_killed_parent_leaves_no_orphan(tmp_path):
    script = scripts.write(tmp_path / "victim.py",
                           LONG_LIVED.format(tail="time.sleep(60)"))
    proc = scripts.start([sys.executable, script, "plain"])
    try:
        _, child, zyg = scripts.wait_for_line(proc, "pids").split()
        assert scripts.pid_alive(int(child)) and scripts.pid_alive(int(zyg))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert scripts.wait_gone(int(child)), "child outlived its killed parent"
        assert scripts.wait_gone(int(zyg)), "zygote outlived its killed parent"
    finally:
        scripts.kill_quietly(proc)


def test_daemonic_child_is_terminated_when_the_parent_exits(tmp_path):
    script = scripts.write(tmp_path / "d.py", LONG_LIVED.format(tail="sys.exit(0)"))
    t = time.monotonic()
    r = scripts.run_script(script, "daemon", timeout=30)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t < 20
    child, zyg = map(int, r.stdout.split()[1:3])
    assert scripts.wait_gone(child) and scripts.wait_gone(zyg)


def test_non_daemonic_child_is_joined_when_the_parent_exits(tmp_path):
    script = scripts.write(tmp_path / "nd.py", """
        import sys, time
        import gomp

        def slow_write(path):
            time.sleep(0.5)
            open(path, "w").write("finished")

        if __name__ == "__main__":
            gomp.Process(target=slow_write, args=(sys.argv[1],)).start()
            # falls off the end: the exit handler joins the child
        """)
    out = tmp_path / "out"
    r = scripts.run_script(script, str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "finished"


def test_ctrl_c_during_join_raises_keyboard_interrupt_promptly(tmp_path):
    script = scripts.write(tmp_path / "ctrlc.py", """
        import signal, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp

        def wait_long():
            time.sleep(60)

        if __name__ == "__main__":
            p = gomp.Process(target=wait_long)
            p.start()
            print("joining", p.pid, flush=True)
            p.join()
            print("joined")
        """)
    # a terminal's Ctrl-C signals the whole foreground process group
    proc = scripts.start([sys.executable, script], start_new_session=True)
    try:
        child = int(scripts.wait_for_line(proc, "joining").split()[1])
        time.sleep(0.3)
        t = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t
        assert "KeyboardInterrupt" in err
        assert "joined" not in out
        assert elapsed < 3, f"took {elapsed:.1f}s to react to SIGINT"
        assert scripts.wait_gone(child)
    finally:
        scripts.kill_quietly(proc)


def test_sigint_to_the_parent_alone_interrupts_join(tmp_path):
    script = scripts.write(tmp_path / "ctrlc2.py", """
        import signal, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp

        if __name__ == "__main__":
            p = gomp.Process(target=time.sleep, args=(60,), daemon=True)
            p.start()
            print("joining", flush=True)
            try:
                p.join()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
        """)
    proc = scripts.start([sys.executable, script])
    try:
        scripts.wait_for_line(proc, "joining")
        time.sleep(0.3)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert "interrupted" in out, err
        assert time.monotonic() - t < 3
    finally:
        scripts.kill_quietly(proc)


def test_package_dunder_main_is_not_re_run(tmp_path):
    pkg = tmp_path / "tool"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    scripts.write(pkg / "__main__.py", """
        import sys, gomp
        print("program body runs", flush=True)

        def work(path):
            open(path, "w").write("worked")

        p = gomp.Process(target=work, args=(sys.argv[1],))
        p.start(); p.join()
        sys.exit(p.exitcode)
        """)
    out = tmp_path / "out"
    r = scripts.run([sys.executable, "-m", "tool", str(out)], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("program body runs") == 1
    assert out.read_text() == "worked"


@pytest.mark.parametrize("fork_mode", ["sibling", "plain"])
def test_both_zygote_fork_modes(tmp_path, fork_mode):
    # children are normally forked as the program's own children
    # (CLONE_PARENT); GOMP_ZYGOTE_FORK=plain makes them the zygote's, which
    # relays their exit status
    script = scripts.write(tmp_path / "modes.py", """
        import os, signal, sys, time
        import gomp
        from gomp import zygote

        def report_ppid(path):
            open(path, "w").write(str(os.getppid()))

        if __name__ == "__main__":
            p = gomp.Process(target=report_ppid, args=(sys.argv[1],)); p.start(); p.join()
            q = gomp.Process(target=sys.exit, args=(6,)); q.start(); q.join()
            r = gomp.Process(target=time.sleep, args=(30,)); r.start(); r.terminate(); r.join()
            print(p.exitcode, q.exitcode, r.exitcode, os.getpid(), zygote.get("spawn").pid)
        """)
    env = scripts.env()
    env.pop("GOMP_ZYGOTE_FORK", None)
    if fork_mode == "plain":
        env["GOMP_ZYGOTE_FORK"] = "plain"
    out = tmp_path / "ppid"
    r = scripts.run_script(script, str(out), env=env)
    assert r.returncode == 0, r.stderr
    p_code, q_code, r_code, parent, zyg = r.stdout.split()
    assert (p_code, q_code, r_code) == ("0", "6", str(-signal.SIGTERM))
    assert out.read_text() == (parent if fork_mode == "sibling" else zyg)


def test_ctrl_c_while_the_zygote_is_still_importing(tmp_path):
    # the first start() waits for the zygote's imports; a slow import must
    # not make Ctrl-C wait for it
    scripts.write(tmp_path / "slowmod.py", "import time\ntime.sleep(60)\n")
    script = scripts.write(tmp_path / "slowstart.py", """
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp

        def noop():
            pass

        if __name__ == "__main__":
            ctx = gomp.get_context("forkserver")
            gomp.set_forkserver_preload(["slowmod"])
            print("starting", flush=True)
            try:
                ctx.Process(target=noop).start()
            except KeyboardInterrupt:
                print("interrupted", flush=True)
        """)
    proc = scripts.start([sys.executable, script])
    try:
        scripts.wait_for_line(proc, "starting")
        time.sleep(0.5)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert "interrupted" in out, err
        assert time.monotonic() - t < 3
        assert proc.returncode == 0
    finally:
        scripts.kill_quietly(proc)


def test_parent_with_closed_standard_streams_still_starts_children(tmp_path):
    script = scripts.write(tmp_path / "closed.py", """
        import os, sys
        import gomp

        def work(path):
            print("to a closed stdout goes nowhere")
            open(path, "w").write("ran")

        if __name__ == "__main__":
            os.close(0)
            os.close(1)
            p = gomp.Process(target=work, args=(sys.argv[1],))
            p.start(); p.join()
            sys.exit(p.exitcode)
        """)
    out = tmp_path / "out"
    r = scripts.run_script(script, str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "ran"


def test_library_threads_in_the_parent_do_not_break_children(tmp_path):
    # numpy starts a BLAS thread pool at import; the zygote preloads it and
    # must fork so that the pool works in the children (its atfork handlers run)
    pytest.importorskip("numpy")
    script = scripts.write(tmp_path / "blas.py", """
        import sys
        import numpy as np
        import gomp

        def matmul(path):
            a = np.arange(400 * 400, dtype=float).reshape(400, 400) / 1e5
            open(path, "w").write(repr(float((a @ a).trace())))

        if __name__ == "__main__":
            expected = repr(float((lambda a: (a @ a).trace())(
                np.arange(400 * 400, dtype=float).reshape(400, 400) / 1e5)))
            for i in range(3):
                p = gomp.Process(target=matmul, args=(sys.argv[1] + str(i),))
                p.start(); p.join(60)
                assert p.exitcode == 0, p.exitcode
                assert open(sys.argv[1] + str(i)).read() == expected
            print("ok")
        """)
    r = scripts.run_script(script, str(tmp_path / "out"), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert "multi-threaded" not in r.stderr


def test_zygote_forked_from_the_program_never_runs_its_finalizers(tmp_path):
    # The spawn zygote may be a fork of the program, which then lets go of
    # the program's __main__ and modules. Their objects must not be
    # finalized there: a finalizer that deletes a file (a temporary file's,
    # say) would delete the program's.
    scripts.write(tmp_path / "ownmod.py", """
        import os
        class Guard:
            def __init__(self, path):
                self.path, self.creator = path, os.getpid()
            def __del__(self, open=open, getpid=os.getpid):
                with open(self.path, "a") as f:
                    f.write(f"{self.creator}:{getpid()}\\n")
        """)
    script = scripts.write(tmp_path / "prog.py", """
        import gc, os, sys, weakref
        import gomp
        import ownmod

        gc.disable()  # so that the cycle below is still there at the fork
        log = sys.argv[1]
        in_main = ownmod.Guard(log)           # in __main__'s globals
        ownmod.held = ownmod.Guard(log)       # in the program's own module
        cycle = [ownmod.Guard(log)]
        cycle.append(cycle)                   # garbage only a collection frees
        del cycle

        def work(path):
            gc.collect()
            open(path, "w").write(str(os.getpid()))

        if __name__ == "__main__":
            for i in range(3):  # the first child, then children of the warmed-up zygote
                p = gomp.Process(target=work, args=(log + str(i),))
                p.start(); p.join(30)
                assert p.exitcode == 0, p.exitcode
            # children re-run this top level (spawn) and may finalize their
            # own guards; the program's are finalized by the program only
            me = str(os.getpid())
            lines = open(log).read().split() if os.path.exists(log) else []
            elsewhere = [x for x in lines if x.split(":")[0] == me != x.split(":")[1]]
            assert elsewhere == [], elsewhere
            print("ok", os.getpid())
        """)
    log = tmp_path / "finalized"
    r = scripts.run_script(script, str(log), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    word, parent = r.stdout.split()
    assert word == "ok"
    # at the program's own exit, its objects may be finalized: by it alone
    if log.exists():
        for line in log.read_text().split():
            creator, finalizer = line.split(":")
            assert creator != parent or finalizer == parent, line


@pytest.mark.parametrize("where", ["own", "site-packages"])
def test_zygote_forked_while_the_program_imports_a_module(tmp_path, where):
    # A gomp object made at a module's top level may be what forks the
    # spawn zygote, in the middle of that import: the zygote must not keep
    # the module half-made (children would find only its first half),
    # whether it is the program's own or a library's.
    lib = tmp_path / where
    lib.mkdir()
    scripts.write(lib / "halfway.py", """
        import gomp
        LOCK = gomp.Lock()      # loads Go: the zygote is forked here

        def later(path):        # defined after the fork
            open(path, "w").write("later ran")
        """)
    script = scripts.write(tmp_path / "prog.py", """
        import sys
        import gomp
        import halfway

        if __name__ == "__main__":
            p = gomp.Process(target=halfway.later, args=(sys.argv[1],))
            p.start(); p.join(30)
            sys.exit(p.exitcode)
        """)
    out = tmp_path / "out"
    r = scripts.run_script(script, str(out), cwd=str(tmp_path),
                           env=scripts.env(PYTHONPATH=str(lib)))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "later ran"


STAMPED = """
import sys
import gomp

def work(path):
    with open(path, "w") as f:
        f.write("{stamp}")

if __name__ == "__main__":
    p = gomp.Process(target=work, args=(sys.argv[1],))
    p.start()
    p.join()
    sys.exit(p.exitcode)
"""


def test_main_script_bytecode_cache_is_never_stale(tmp_path):
    # a child loads the main script through a bytecode cache; a script
    # rewritten at once, at the same size and modification time, must not
    # run from the old one
    script = tmp_path / "stamped.py"
    out = tmp_path / "out"
    writing = scripts.env()
    writing.pop("PYTHONDONTWRITEBYTECODE", None)
    first = STAMPED.replace("{stamp}", "AAAA")
    scripts.write(script, first)
    stat = os.stat(script)
    r = scripts.run_script(script, str(out), env=writing)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "AAAA"
    cached = list((tmp_path / "__pycache__").glob("stamped.*.pyc"))
    assert len(cached) == 1
    scripts.write(script, first.replace("AAAA", "BBBB"))
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    r = scripts.run_script(script, str(out), env=writing)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "BBBB"
    # and a cache that is not a valid one is replaced, not trusted
    cached[0].write_bytes(b"garbage")
    r = scripts.run_script(script, str(out), env=writing)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "BBBB"


def test_main_script_bytecode_cache_honours_dont_write_bytecode(tmp_path):
    script = scripts.write(tmp_path / "stamped.py", STAMPED.replace("{stamp}", "CCCC"))
    out = tmp_path / "out"
    r = scripts.run_script(script, str(out), env=scripts.env(PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "CCCC"
    assert not (tmp_path / "__pycache__").exists()

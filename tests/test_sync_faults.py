"""What the stdlib does not survive: locks and semaphores held by a process
that died, Ctrl-C during a wait, and SIGKILL of a whole program (nothing
may be left in /dev/shm)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import pytest

import scripts

import gomp


def _take_and_hang(lock, taken, count):
    for _ in range(count):
        lock.acquire()
    taken.set()
    time.sleep(60)


def _take_and_exit(lock, count):
    for _ in range(count):
        lock.acquire()


def _take_in_child(make, count=1):
    lock, taken = make(), gomp.Event()
    p = gomp.Process(target=_take_and_hang, args=(lock, taken, count))
    p.start()
    assert taken.wait(10)
    return lock, p


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make", [gomp.Lock, gomp.RLock])
def test_lock_of_killed_process_is_taken_over(make):
    lock, p = _take_in_child(make)
    assert lock.acquire(timeout=0.05) is False  # alive: not taken
    p.kill()
    p.join(10)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t0 = time.monotonic()
        assert lock.acquire(timeout=5) is True
        assert time.monotonic() - t0 < 1
    assert len(w) == 1 and w[0].category is RuntimeWarning
    assert str(p.pid) in str(w[0].message)
    assert lock._is_mine()
    lock.release()
    assert lock.acquire(False)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make", [gomp.Lock, gomp.RLock])
def test_lock_whose_holder_pid_was_reused_is_taken_over(make):
    # a live process that never took the lock stands for a new process given
    # the pid of a holder that died
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = make()
        seg, off = lock._segment, lock._offset

        def held_by(pid, start):  # the record (gomp.Holder), then the word
            seg.store(off + 8, start & 0xFFFFFFFF)
            seg.store(off + 12, start >> 32)
            seg.store(off + 4, pid)
            seg.store(off, pid)

        start = scripts.start_time(other.pid)
        held_by(other.pid, start)
        assert lock.acquire(timeout=0.3) is False  # its holder lives
        held_by(other.pid, start + 1)
        with pytest.warns(RuntimeWarning, match=str(other.pid)):
            assert lock.acquire(timeout=5) is True
        assert seg.load(off + 4) == os.getpid()
        lock.release()
        # a released lock keeps no record: a later holder with a reused pid
        # cannot be judged by it before it writes its own
        assert seg.load(off) == 0 and seg.load(off + 4) == 0
    finally:
        other.kill()
        other.wait()


@pytest.mark.timeout(30)
def test_lock_of_exited_process_is_taken_over_by_non_blocking_acquire():
    lock = gomp.RLock()
    p = gomp.Process(target=_take_and_exit, args=(lock, 2))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    with pytest.warns(RuntimeWarning, match=str(p.pid)):
        assert lock.acquire(False) is True
    lock.release()  # the recursion of the dead owner is not inherited
    assert repr(lock) == "<RLock(None, 0)>"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("make", [lambda: gomp.Semaphore(3), lambda: gomp.BoundedSemaphore(3)])
def test_semaphore_units_of_killed_process_come_back(make):
    sem, p = _take_in_child(make, count=2)
    assert sem.get_value() == 1
    sem.acquire()
    p.kill()
    p.join(10)
    with pytest.warns(RuntimeWarning, match=str(p.pid)):
        assert sem.acquire(timeout=5)
    assert sem.get_value() == 1
    sem.release()
    sem.release()
    assert sem.get_value() == 3


@pytest.mark.timeout(30)
def test_signalling_semaphore_is_not_inflated_by_a_dead_taker():
    sem = gomp.Semaphore(0)
    sem.release()  # released here, taken by the child, which dies
    taken = gomp.Event()
    p = gomp.Process(target=_take_and_hang, args=(sem, taken, 1))
    p.start()
    assert taken.wait(10)
    p.kill()
    p.join(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sem.acquire(timeout=0.1) is False
    assert sem.get_value() == 0


def test_warning_as_error_leaves_lock_free():
    lock = gomp.Lock()
    p = gomp.Process(target=_take_and_exit, args=(lock, 1))
    p.start()
    p.join(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning):
            lock.acquire(timeout=5)
    # it was taken over and released again
    assert lock.acquire(False) is True


# --- Ctrl-C ---------------------------------------------------------------------

_BLOCKERS = {
    "lock": "l = gomp.Lock(); l.acquire(); ready(); l.acquire()",
    "rlock-other-thread": ("import threading; l = gomp.RLock(); t = threading.Thread("
                           "target=l.acquire); t.start(); t.join(); ready(); l.acquire()"),
    "semaphore": "s = gomp.Semaphore(0); ready(); s.acquire(timeout=60)",
    "condition": "c = gomp.Condition(); c.acquire(); ready(); c.wait()",
    "event": "e = gomp.Event(); ready(); e.wait()",
    "barrier": "b = gomp.Barrier(2); ready(); b.wait()",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", sorted(_BLOCKERS))
def test_ctrl_c_interrupts_wait(what):
    script = textwrap.dedent("""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp
        def ready():
            print("ready", flush=True)
        if __name__ == "__main__":
            try:
                %s
            except KeyboardInterrupt:
                print("interrupted", flush=True)
                sys.exit(3)
    """) % _BLOCKERS[what]
    proc = scripts.start([sys.executable, "-c", script])
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)  # inside the wait
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 3, err
    assert "interrupted" in out
    assert elapsed < 1.0


# --- SIGKILL of everything ---------------------------------------------------------

_WORKER_PROGRAM = """
import os, sys, time, gomp

def work(lock, sem, cond, ev, v, arr):
    while True:
        with lock:
            v.value += 1
        with sem:
            arr[0] += 1
        with cond:
            cond.notify_all()
        ev.set()

if __name__ == "__main__":
    args = (gomp.Lock(), gomp.BoundedSemaphore(2), gomp.Condition(), gomp.Event(),
            gomp.Value("i", 0), gomp.Array("d", 100))
    ps = [gomp.Process(target=work, args=args) for _ in range(2)]
    for p in ps:
        p.start()
    args[3].wait(10)
    print(" ".join(str(p.pid) for p in ps), flush=True)
    work(*args)
"""


def _shm_names(path):
    return sorted(os.listdir(path))


def _gomp_segments(pid):
    """The gomp memfd segments process pid has mapped."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return sum("memfd:gomp:" in line for line in f)
    except OSError:
        return 0


@pytest.mark.timeout(60)
def test_sigkill_of_whole_program_leaves_dev_shm_as_before(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(_WORKER_PROGRAM)
    # a private /dev/shm (a bind mount in a mount namespace of its own) makes
    # "exactly as before" exact on a machine others use too; without the
    # privilege for it, the real /dev/shm is compared
    private = None
    cmd = [sys.executable, str(script)]
    if shutil.which("unshare") and os.geteuid() == 0:
        private = tempfile.mkdtemp(dir=str(tmp_path))
        probe = subprocess.run(["unshare", "-m", "sh", "-c",
                                'mount --bind "$0" /dev/shm', private],
                               capture_output=True)
        if probe.returncode == 0:
            cmd = ["unshare", "-m", "sh", "-c",
                   'mount --bind "$0" /dev/shm && exec "$@"', private] + cmd
        else:
            private = None
    shm_dir = private or "/dev/shm"
    before = _shm_names(shm_dir)
    proc = scripts.start(cmd, stderr=None, start_new_session=True)
    try:
        children = [int(x) for x in proc.stdout.readline().split()]
        assert len(children) == 2
        time.sleep(0.2)  # in the middle of the work
        pids = [proc.pid] + children
        assert all(_gomp_segments(pid) >= 2 for pid in pids)
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert scripts.wait_gone(*children, timeout=10)
    after = _shm_names(shm_dir)
    if private is None:
        # others may use /dev/shm meanwhile: what is new must not be ours
        new = set(after) - set(before)
        assert not [n for n in new if n.startswith(("sem.mp-", "psm_"))]
    else:
        assert after == before


def test_forked_child_gets_an_error_not_a_hang():
    lock = gomp.Lock()
    lock.acquire()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking on purpose
        pid = os.fork()
    if pid == 0:  # the Go runtime does not survive fork: no hang, an error
        try:
            lock.release()
            os._exit(1)
        except RuntimeError:
            os._exit(0)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    lock.release()

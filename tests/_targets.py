"""Targets that children run; importable by reference from tests."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time


def mp():
    """The library that started this child: gomp, or the stdlib's
    multiprocessing (for tests run on both)."""
    import gomp
    if gomp.parent_process() is not None:
        return gomp
    import multiprocessing
    return multiprocessing


def noop() -> None:
    pass


def exit_with(code) -> None:
    sys.exit(code)


def raise_value_error() -> None:
    raise ValueError("boom from the child")


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(10)


def os_exit(code: int) -> None:
    os._exit(code)


def write_file(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def report(path: str) -> None:
    """Write what the child sees of itself and its parent."""
    lib = mp()
    me = lib.current_process()
    parent = lib.parent_process()
    with open(path, "w") as f:
        f.write(repr({
            "name": me.name,
            "pid": os.getpid(),
            "ident": me.ident,
            "daemon": me.daemon,
            "authkey": bytes(me.authkey),
            "parent_pid": parent.pid if parent else None,
            "parent_name": parent.name if parent else None,
            "parent_alive": parent.is_alive() if parent else None,
            "cwd": os.getcwd(),
            "env": os.environ.get("GOMP_TEST_VAR"),
            "sys_path_0": sys.path[0],
            "main_name": sys.modules["__main__"].__name__,
        }))


def print_lines(tag: str, n: int) -> None:
    for i in range(n):
        print(f"{tag} out {i}", flush=True)
        print(f"{tag} err {i}", file=sys.stderr, flush=True)


def start_grandchild(path: str) -> None:
    p = mp().Process(target=write_file, args=(path, "grandchild"))
    p.start()
    p.join()
    sys.exit(p.exitcode)


def ignore_sigterm_and_sleep(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


# --- synchronization (test_sync) ---------------------------------------------


def hold_until(lock, started, stop):
    lock.acquire()
    started.set()
    stop.wait(10)
    lock.release()


def release(lock):
    lock.release()


def bump_under(lock, v, n):
    for _ in range(n):
        with lock:
            v.value += 1


def wait_cond(cond, ready, out):
    with cond:
        ready.release()
        out.value = 1 if cond.wait(10) else 2


def barrier_wait(barrier, out):
    try:
        out.value = barrier.wait(10)
    except threading.BrokenBarrierError:
        out.value = -1


def set_later(ev, delay):
    time.sleep(delay)
    ev.set()


def semaphore_take(sem, n, done):
    for _ in range(n):
        sem.acquire()
    done.set()


def barrier_rounds(b, rounds, counter):
    for _ in range(rounds):
        b.wait(30)
        with counter.get_lock():
            counter.value += 1


def barrier_then_report(b, out):
    try:
        b.wait(30)
        out.value = 1
    except threading.BrokenBarrierError:
        out.value = -1


def wait_for_flag(cond, flag, out):
    with cond:
        out.value = 1 if cond.wait_for(lambda: flag.value == 1, 30) else -1

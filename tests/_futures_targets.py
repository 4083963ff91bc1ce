"""Functions run by concurrent.futures workers in the tests (importable by
reference in a child)."""
import os
import signal
import time

_state = {}


def square(x):
    return x * x


def fail(x):
    raise ValueError("failed on %r" % (x,))


def pid(_=None):
    return os.getpid()


def sleep_then(x, seconds):
    time.sleep(seconds)
    return x


def kill_self(_=None):
    os.kill(os.getpid(), signal.SIGKILL)


def remember(value):
    _state["init"] = value


def recall(_=None):
    return _state.get("init")


def drain(q, n):
    return [q.get(timeout=30) for _ in range(n)]


def put_all(q, items):
    for item in items:
        q.put(item)
    return len(items)


def with_lock(lock):
    with lock:
        return "locked"


def send_over(conn, value):
    conn.send(value)
    conn.close()
    return True


def die_with(how):
    """End this worker: "kill" by SIGKILL, else os._exit(int(how))."""
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(int(how))


def ignore_sigterm_and_sleep(seconds):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def sleep_in_c(seconds):
    import ctypes
    ctypes.PyDLL(None).sleep(int(seconds))  # the GIL held throughout


def takes_timeout(x, timeout=None):
    return (x, timeout)

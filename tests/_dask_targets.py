"""Functions the dask context's tests run on the workers (importable by
reference)."""
import os
import signal
import time

_inits = []


def init_count(value):
    _inits.append(value)


def inits(_=None):
    return list(_inits), os.getpid()


def interval(t, _=None):
    start = time.time()
    time.sleep(t)
    return start, time.time()


def sleep_then_pid(t):
    time.sleep(t)
    return os.getpid()


def die_once(marker, x):
    """Kills its worker the first time it runs (the marker file records it)."""
    if x == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def producer(q, n):
    for i in range(n):
        q.put((os.getpid(), i))
    q.put(None)


def consumer(q, out):
    got = []
    while True:
        item = q.get(timeout=30)
        if item is None:
            break
        got.append(item[1])
    out.put(got)


def locked_print(lock, out, i):
    """The Lock example of the multiprocessing documentation, its lines
    collected: inside the lock, each records when it held it."""
    with lock:
        start = time.time()
        print("hello world", i, flush=True)
        time.sleep(0.02)
        out.put((i, start, time.time()))


def add_under_lock(value, n):
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def exit_with(code):
    raise SystemExit(code)


def wait_event(ev, out):
    out.put(ev.wait(30))


def raises(_=None):
    raise ValueError("target fails")

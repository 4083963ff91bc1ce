"""Functions the pool tests run in workers (importable by reference)."""
import os
import signal
import time


def square(x):
    return x * x


def add(a, b):
    return a + b


def kw(a, b=0, *, c=0):
    return (a, b, c)


def fail(x):
    raise ValueError("bad %r" % (x,))


def fail_on(x, bad):
    if x == bad:
        raise KeyError(x)
    return x


def sleep_then(t, value=None):
    time.sleep(t)
    return value


def getpid(_=None):
    return os.getpid()


def die(how="kill"):
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "segv":
        import ctypes
        ctypes.string_at(0)
    os._exit(int(how))


def die_if(x, bad):
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def unpicklable_result(_=None):
    import threading
    return threading.Lock()  # locks cannot be pickled


_state = {}


def init(value, q=None):
    _state["value"] = value
    if q is not None:
        q.put(("init", os.getpid()))


def get_state(_=None):
    return _state.get("value")


def init_fails():
    raise RuntimeError("initializer fails")


def gen(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise OSError("iterable fails at %d" % i)
        yield i


class Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle Unpicklable")


def _refuse_to_load():
    raise RuntimeError("this result cannot be loaded")


class LoadFails:
    def __reduce__(self):
        return _refuse_to_load, ()


def load_fails(_=None):
    return LoadFails()


def echo(x):
    return x


def make_lambda(_=None):
    return lambda: 42  # only by value could this be pickled


class Counted:
    """Counts its live instances in this process (copies made by
    unpickling included: they are made by __new__, not __init__)."""

    n_instances = 0

    def __new__(cls):
        Counted.n_instances += 1
        return object.__new__(cls)

    def __del__(self):
        Counted.n_instances -= 1


def second(_first, x):
    return x


# -- tasks that overrun a per-task timeout, each in its own way


def overrun(how, seconds=30):
    """Run for seconds: "sleep" in time.sleep; "c-sleep" in libc's sleep()
    called with the GIL held (no Python runs in the worker meanwhile);
    "spin" in a busy Python loop; "no-sigterm" sleeping with SIGTERM
    ignored (only SIGKILL ends it)."""
    if how == "sleep":
        time.sleep(seconds)
    elif how == "c-sleep":
        import ctypes
        ctypes.PyDLL(None).sleep(int(seconds))
    elif how == "spin":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    elif how == "no-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(seconds)
    return how


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def nap_or_fail(x):
    """Sleep x seconds and return x; a negative x fails at once."""
    if x < 0:
        raise ValueError("bad %r" % (x,))
    time.sleep(x)
    return x


# -- worker_state=True: what the initializer returns is passed to each task

class Counter:
    """A per-worker resource: counts the tasks that used it, and says whose
    it is (the worker's pid and thread)."""

    def __init__(self, start=0):
        import threading
        self.owner = (os.getpid(), threading.get_ident())
        self.n = start


def new_counter(start=0):
    return Counter(start)


def count(x, worker_state):
    """(owner, how many tasks this worker's counter has seen, x)."""
    worker_state.n += 1
    return worker_state.owner, worker_state.n, x


def count_pair(a, b, worker_state):
    return count(a + b, worker_state=worker_state)


def count_kw(x, *, scale=1, worker_state):
    return count(x * scale, worker_state=worker_state)


def fill(x, worker_state):
    """The state without an initializer: a dict per worker, kept."""
    seen = worker_state.setdefault("seen", [])
    seen.append(x)
    return os.getpid(), type(worker_state).__name__, len(seen)

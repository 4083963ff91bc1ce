"""Functions the sync benchmarks run in children (importable by reference)."""


def handoff(a, b, ready, n):
    ready.set()
    for _ in range(n):
        a.acquire()
        b.release()


def add_under_lock(v, start, done, n):
    start.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    done.release()

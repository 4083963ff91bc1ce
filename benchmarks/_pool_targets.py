"""Functions the pool benchmarks run in workers (importable by reference)."""


def ident(x):
    return x


def square(x):
    return x * x


def spin(seconds):
    """Keep a CPU busy for that long (a task of known cost)."""
    import time
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds

"""Functions the benchmarks run in children (importable by reference)."""


def noop() -> None:
    pass

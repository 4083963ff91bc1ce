"""Functions the pool benchmarks run in workers (importable by reference)."""


def ident(x):
    return x


def square(x):
    return x * x

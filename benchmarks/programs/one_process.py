"""Start and join one process that does nothing.

    python one_process.py gomp|fork|forkserver|spawn
"""
import sys

if sys.argv[1] == "gomp":
    import gomp as mp
else:
    import multiprocessing as mp


def noop():
    pass


if __name__ == "__main__":
    if sys.argv[1] != "gomp":
        mp.set_start_method(sys.argv[1])
    p = mp.Process(target=noop)
    p.start()
    p.join()
    assert p.exitcode == 0, p.exitcode

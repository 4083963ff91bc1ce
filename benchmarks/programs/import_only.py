"""Import the library and pick the start method; nothing else.

    python import_only.py gomp|fork|forkserver|spawn
"""
import sys

if sys.argv[1] == "gomp":
    import gomp as mp
else:
    import multiprocessing as mp

if __name__ == "__main__":
    if sys.argv[1] != "gomp":
        mp.set_start_method(sys.argv[1])

"""The resource tracker: a process that unlinks the named resources (shared
memory segments, semaphores) a program leaves behind when it dies.

gomp uses the interpreter's own ``multiprocessing.resource_tracker``, run
here as gomp's module: it is pure Python and starts its process by exec
(which the Go runtime allows), and its behaviour then matches the running
Python's exactly. Its ``spawn`` and ``util`` are gomp's.
"""
import os as _os

_path = _os.path.join(_os.path.dirname(_os.__file__), "multiprocessing", "resource_tracker.py")
with open(_path, "rb") as _f:
    exec(compile(_f.read(), _path, "exec"), globals())
del _f, _path

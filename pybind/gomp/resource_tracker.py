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


# A child shares its parent's tracker, as the stdlib's spawned children do:
# gomp's Popen passes the tracker's descriptor when one runs (it starts none
# for a child), and the child's tracker writes to it (see gomp.spawn).

def _fd_for_child() -> "int | None":
    """The descriptor of the tracker this process uses, or None if none."""
    return _resource_tracker._fd


def _use_inherited_fd(fd: int) -> None:
    """Make this process use the tracker whose descriptor fd it inherited."""
    _resource_tracker._fd = fd

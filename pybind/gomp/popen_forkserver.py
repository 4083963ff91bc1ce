"""The stdlib's ``multiprocessing.popen_forkserver``: the Popen of the
forkserver start method (gomp's is :class:`gomp.popen.Popen`)."""
from __future__ import annotations

from . import popen_spawn_posix

__all__ = ["Popen"]


class Popen(popen_spawn_posix.Popen):
    """Start process_obj with the forkserver start method."""

    method = "forkserver"

"""The stdlib's ``multiprocessing.popen_spawn_posix``: the Popen of the
spawn start method (gomp's is :class:`gomp.popen.Popen`)."""
from __future__ import annotations

from typing import Any

from . import popen

__all__ = ["Popen"]


class Popen(popen.Popen):
    """Start process_obj with the spawn start method."""

    method = "spawn"

    def __init__(self, process_obj: Any) -> None:
        super().__init__(process_obj, self.method)

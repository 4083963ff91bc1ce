"""The stdlib's ``multiprocessing.popen_fork``. gomp has no fork start
method (the Go runtime does not survive fork()): the class exists for code
that names it, and making one raises ValueError."""
from __future__ import annotations

from typing import Any

from . import popen

__all__ = ["Popen"]


class Popen(popen.Popen):
    """The fork start method's Popen: not available in gomp."""

    method = "fork"

    def __init__(self, process_obj: Any) -> None:
        from .context import ForkContext
        ForkContext._check_available()

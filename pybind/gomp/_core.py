"""Access to the C extension and, on first use, to the Go core.

Importing gomp must not start the Go runtime (a zygote that forks children
must never have started it), so the Go library is loaded by :func:`go`, the
first time a primitive needs it.
"""
from __future__ import annotations

import os
from types import ModuleType

from . import _gomp

__all__ = ['ext', 'go', 'loaded']

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_gocore.so")


def ext() -> ModuleType:
    """The C extension, without loading Go (for what needs no Go)."""
    return _gomp


def go(fork_zygote: bool = True) -> ModuleType:
    """The C extension with the Go core loaded. Raises RuntimeError in a
    process forked (by os.fork) after its parent loaded Go. fork_zygote:
    whether the spawn zygote may be forked first (see below)."""
    if not _gomp.loaded():
        if fork_zygote:
            _fork_zygote_first()
        _gomp.load(LIBRARY)
    return _gomp


def _fork_zygote_first() -> None:
    # The spawn zygote can be a fork of the program, which starts in about
    # a millisecond, but only before Go is loaded (it does not survive a
    # fork). The program's first gomp object (a Pool's queues, a Lock)
    # loads Go, usually before its first process starts: fork the zygote
    # now, while it can be, if the program's processes will want it. The
    # main process only: a child's first object (a pool worker's queue)
    # seldom precedes a process of its own. gomp's callers hold none of
    # their locks here; what the program was importing is dropped by the
    # zygote (see zygote._forget_the_program).
    from . import context, process
    if process.parent_process() is not None:
        return
    if context._default_context.get_start_method(allow_none=True) not in (None, "spawn"):
        return
    from . import zygote
    if zygote.running("spawn") is None and zygote.can_fork():
        zygote.get("spawn")


def loaded() -> bool:
    """Whether this process has started the Go runtime."""
    return _gomp.loaded()

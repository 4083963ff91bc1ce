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


def go() -> ModuleType:
    """The C extension with the Go core loaded. Raises RuntimeError in a
    process forked (by os.fork) after its parent loaded Go."""
    if not _gomp.loaded():
        _gomp.load(LIBRARY)
    return _gomp


def loaded() -> bool:
    """Whether this process has started the Go runtime."""
    return _gomp.loaded()

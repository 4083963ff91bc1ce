"""gomp: a drop-in replacement for :mod:`multiprocessing` whose primitives
are written in Go.

    import gomp as multiprocessing

Importing gomp does not start the Go runtime; the first primitive that
needs it does.
"""
import sys

from . import context
from ._install import install, installed, uninstall

__version__ = "0.1.0"

# the module's API is the bound methods of the default context, as in the stdlib
__all__ = [x for x in dir(context._default_context) if not x.startswith("_")]
globals().update((name, getattr(context._default_context, name)) for name in __all__)

SUBDEBUG = 5
SUBWARNING = 25

# a child started by spawn knows the parent's __main__ as __mp_main__
if "__main__" in sys.modules:
    sys.modules["__mp_main__"] = sys.modules["__main__"]

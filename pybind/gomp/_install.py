"""gomp in place of ``multiprocessing``, under code that imports the stdlib.

:func:`install` makes ``import multiprocessing`` and every
``import multiprocessing.X`` resolve to gomp and ``gomp.X``, in this process
and in every Python process it starts: a child gomp starts gets the flag
with its start-up data (see :mod:`gomp.spawn` and :mod:`gomp.zygote`), and
any other (loky's workers, a ``subprocess``) finds ``GOMP_INSTALL=1`` in its
environment, which the ``gomp-install.pth`` hook that pip puts in
site-packages reads at start-up. ``python -m gomp script.py`` installs
before the script runs (:mod:`gomp.__main__`).
"""
from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import warnings
from types import ModuleType
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Sequence

__all__ = ["install", "uninstall", "installed"]

_STDLIB = "multiprocessing"
# read at start-up by gomp-install.pth, in every Python process started
# with this environment
ENV = "GOMP_INSTALL"
_OURS = __name__.rpartition(".")[0]  # "gomp"


def _ours(fullname: str) -> str:
    return _OURS + fullname[len(_STDLIB):]


class _AliasFinder:
    """Finds ``multiprocessing.X`` as the module ``gomp.X`` itself (one
    module object under two names, so classes and state are shared). A
    meta path finder and its loader (importlib.abc's protocols, without
    importing importlib.abc, which costs milliseconds at start-up)."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != _STDLIB and not fullname.startswith(_STDLIB + "."):
            return None
        import importlib.util  # only once installed: it costs start-up time
        if importlib.util.find_spec(_ours(fullname)) is None:
            # not a module of gomp's: nothing else may find the stdlib's
            raise ModuleNotFoundError(
                "No module named %r (gomp is installed as multiprocessing and has no %r)"
                % (fullname, _ours(fullname)), name=fullname)
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(_ours(spec.name))
        # the import system sets __spec__ on what we return: keep gomp's
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None and spec.loader_state is not None:
            module.__spec__ = spec.loader_state


_finder: Optional[_AliasFinder] = None
_saved: "dict[str, ModuleType]" = {}


def installed() -> bool:
    """Whether gomp is installed as ``multiprocessing``."""
    return _finder is not None


def install() -> None:
    """Make ``import multiprocessing`` (and ``multiprocessing.X``) give gomp,
    here and in every child gomp starts.

    Call it before the code that imports ``multiprocessing``: a module that
    imported the stdlib's before keeps it. Calling it again does nothing.
    """
    global _finder
    if _finder is not None:
        return
    stale = [name for name in sys.modules
             if name == _STDLIB or name.startswith(_STDLIB + ".")]
    for name in stale:
        module = sys.modules.pop(name)
        if not getattr(module, "__name__", "").startswith(_OURS):
            _saved[name] = module
    if _STDLIB in _saved:
        warnings.warn(
            "gomp.install(): the stdlib's multiprocessing was imported before; the "
            "modules that imported it keep using it. Install first, or run the "
            "program with `python -m gomp`", RuntimeWarning, stacklevel=2)
    _finder = _AliasFinder()
    sys.meta_path.insert(0, _finder)
    os.environ[ENV] = "1"
    # nothing is put in sys.modules here: the finder answers the first
    # import of each name (so a process that installs at start-up has not
    # imported multiprocessing until its code does)


def uninstall() -> None:
    """Undo ``install()``: ``import multiprocessing`` gives the stdlib's
    again (modules that imported gomp under its name keep it)."""
    global _finder
    if _finder is None:
        return
    try:
        sys.meta_path.remove(_finder)
    except ValueError:
        pass
    _finder = None
    os.environ.pop(ENV, None)
    for name in [n for n in sys.modules if n == _STDLIB or n.startswith(_STDLIB + ".")]:
        del sys.modules[name]
    sys.modules.update(_saved)
    _saved.clear()

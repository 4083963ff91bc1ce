"""The stdlib's multiprocessing, when a program uses it beside gomp.

Objects of the stdlib's made with a gomp context (concurrent.futures' call
queue under ``mp_context=gomp.get_context()``, say) are pickled by gomp's
Popen when a child starts. They ask the stdlib's context whether a process
is being started, and the stdlib's ForkingPickler registry says how to
reduce them; gomp answers both (see :mod:`gomp.popen`, :mod:`gomp.reduction`).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from types import ModuleType
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Optional

from . import _install

__all__ = ['module', 'set_spawning_popen', 'Reducers']


def module(name: str) -> Optional[ModuleType]:
    """The stdlib's ``multiprocessing.<name>`` if it is loaded, else None
    (gomp's own module under that name does not count)."""
    full = "multiprocessing." + name
    found = sys.modules.get(full)
    if found is None or getattr(found, "__name__", full) != full:
        found = _install._saved.get(full)
    return found


def set_spawning_popen(popen: Any) -> None:
    """Tell the stdlib's context, if loaded, which process is being started."""
    context = module("context")
    if context is not None:
        context.set_spawning_popen(popen)


class Reducers(Mapping):
    """The reducers the stdlib's ForkingPickler has for its own types
    (connections, locks), looked up when pickling: the stdlib may be
    imported after gomp's pickler exists."""

    @staticmethod
    def _table() -> "dict[type, Callable]":
        reduction = module("reduction")
        if reduction is None:
            return {}
        table = getattr(reduction.ForkingPickler, "_extra_reducers", {})
        return {cls: r for cls, r in table.items()
                if getattr(cls, "__module__", "").startswith("multiprocessing.")}

    def __getitem__(self, cls: type) -> Callable:
        if not getattr(cls, "__module__", "").startswith("multiprocessing."):
            raise KeyError(cls)
        return self._table()[cls]

    def __iter__(self) -> Iterator[type]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

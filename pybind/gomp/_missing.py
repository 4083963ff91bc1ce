"""Placeholders for the parts of the API that gomp does not have yet.

Each name exists, so that imports and ``__all__`` match the stdlib's, but
using it raises NotImplementedError saying so.
"""
from __future__ import annotations

from typing import Any, NoReturn


def _raise(name: str) -> NoReturn:
    raise NotImplementedError(
        f"gomp.{name} is not implemented yet; use the standard library's "
        f"multiprocessing for it until it lands in gomp")


def missing_function(name: str) -> Any:
    def function(*args: Any, **kwargs: Any) -> NoReturn:
        _raise(name)
    function.__name__ = name.rsplit(".", 1)[-1]
    function.__qualname__ = function.__name__
    function.__doc__ = f"Not implemented in gomp yet: calling it raises NotImplementedError."
    return function


def missing_class(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _raise(name)
    short = name.rsplit(".", 1)[-1]
    return type(short, (), {"__init__": __init__, "__doc__":
                            "Not implemented in gomp yet: instantiating it raises "
                            "NotImplementedError."})

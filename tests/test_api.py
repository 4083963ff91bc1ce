"""The module's surface matches the stdlib's: names, signatures, contexts."""
from __future__ import annotations

import importlib
import inspect
import multiprocessing
import multiprocessing.context

import pytest

import gomp


def params(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_every_public_name_exists():
    assert sorted(gomp.__all__) == sorted(multiprocessing.__all__)
    for name in multiprocessing.__all__:
        assert hasattr(gomp, name), name


# gomp's options beyond the stdlib's: keyword-only, with a default, after
# the stdlib's parameters, so that every call written for the stdlib works
EXTENSIONS = {"Pool": [("worker_state", inspect.Parameter.KEYWORD_ONLY, False)]}


@pytest.mark.parametrize("name", sorted(multiprocessing.__all__))
def test_same_signature(name):
    ours, theirs = getattr(gomp, name), getattr(multiprocessing, name)
    if isinstance(theirs, type):
        assert params(ours.__init__) == params(theirs.__init__)
    elif name == "get_context":
        # and the options of gomp's 'dask' context: get_context("dask", address=...)
        assert params(ours) == params(theirs) + [("options", inspect.Parameter.VAR_KEYWORD,
                                                  inspect.Parameter.empty)]
    elif callable(theirs):
        assert params(ours) == params(theirs) + EXTENSIONS.get(name, [])


@pytest.mark.parametrize("module", ["process", "context", "spawn", "util", "reduction",
                                    "connection", "synchronize", "queues", "pool",
                                    "sharedctypes", "managers", "shared_memory"])
def test_submodules_export_the_stdlib_names(module):
    theirs = importlib.import_module("multiprocessing." + module)
    ours = importlib.import_module("gomp." + module)
    for name in getattr(theirs, "__all__", ()):
        assert hasattr(ours, name), f"gomp.{module}.{name}"


def test_context_api_matches():
    for attr in dir(multiprocessing.context.BaseContext):
        if not attr.startswith("_"):
            assert hasattr(gomp.context.BaseContext, attr), attr


def test_exceptions_hierarchy():
    assert issubclass(gomp.BufferTooShort, gomp.ProcessError)
    assert issubclass(gomp.TimeoutError, gomp.ProcessError)
    assert issubclass(gomp.AuthenticationError, gomp.ProcessError)
    assert issubclass(gomp.ProcessError, Exception)


def test_start_methods():
    assert gomp.get_all_start_methods() == ["spawn", "forkserver"]
    assert gomp.get_context("spawn").get_start_method() == "spawn"
    assert gomp.get_context("forkserver").get_start_method() == "forkserver"
    assert gomp.get_context().get_start_method() == "spawn"
    with pytest.raises(ValueError, match="cannot find context for 'fork'"):
        gomp.get_context("fork")
    with pytest.raises(ValueError):
        gomp.get_context("nonsense")


def test_set_start_method_rules():
    ctx = gomp.context._default_context
    saved = ctx._actual_context
    try:
        ctx._actual_context = None
        assert gomp.get_start_method(allow_none=True) is None
        gomp.set_start_method("forkserver")
        assert gomp.get_start_method() == "forkserver"
        with pytest.raises(RuntimeError, match="context has already been set"):
            gomp.set_start_method("spawn")
        gomp.set_start_method("spawn", force=True)
        assert gomp.get_start_method() == "spawn"
        with pytest.raises(ValueError):
            gomp.get_context("spawn").set_start_method("spawn")
    finally:
        ctx._actual_context = saved


def test_helpers():
    assert gomp.cpu_count() >= 1
    assert gomp.freeze_support() is None
    logger = gomp.get_logger()
    assert logger.name == "multiprocessing"
    assert gomp.log_to_stderr() is logger
    logger.handlers.clear()
    gomp.allow_connection_pickling()
    gomp.set_forkserver_preload(["json"])
    with pytest.raises(TypeError):
        gomp.set_forkserver_preload([1])
    assert gomp.reducer is gomp.reduction


def test_set_executable_round_trip():
    import sys
    from gomp import spawn
    gomp.set_executable(sys.executable)
    try:
        assert spawn.get_executable() == sys.executable
    finally:
        spawn.set_executable(None)


def test_py_typed_marker_is_shipped():
    import os
    assert os.path.exists(os.path.join(os.path.dirname(gomp.__file__), "py.typed"))

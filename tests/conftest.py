"""Shared fixtures: no test leaves a child process behind, even when it fails;
``mp`` runs a test of the stdlib's contract on gomp and on the stdlib."""
from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.managers
import multiprocessing.pool
import multiprocessing.shared_memory
import multiprocessing.sharedctypes
import os
import signal
import sys
import threading

import pytest

import scripts

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# the stdlib's own modules, bound before any test may install gomp in their place
STDLIB = multiprocessing.get_context("spawn")
STDLIB_MODULES = {name: sys.modules["multiprocessing." + name]
                  for name in ("connection", "managers", "pool", "shared_memory", "sharedctypes")}


# what the mp fixture runs a test on; a test module may add others of
# gomp's with MP_ALSO (its other start method, say)
MP = ["gomp", "stdlib-spawn"]


def pytest_generate_tests(metafunc):
    if "mp" in metafunc.fixturenames and not metafunc.definition.get_closest_marker("gomp_extension"):
        metafunc.parametrize("mp", MP + getattr(metafunc.module, "MP_ALSO", []), indirect=True)


@pytest.fixture
def mp(request):
    """What a test of the stdlib's contract runs on: gomp, and the stdlib's
    spawn context, one test body for both (so its targets must be
    importable: they live in the tests' _*_targets modules). What only
    gomp does is tested on gomp alone, marked gomp_extension: there mp
    (and what a fixture makes of it) is gomp."""
    param = getattr(request, "param", "gomp")
    if param == "stdlib-spawn":
        return STDLIB
    import gomp
    if param == "gomp":
        return gomp
    return gomp.get_context(param.split("-", 1)[1])  # "gomp-forkserver"


def submodule(mp, name: str):
    """mp's module of that name: multiprocessing.<name> for the stdlib,
    gomp.<name> for gomp."""
    if mp is STDLIB:
        return STDLIB_MODULES[name]
    return importlib.import_module("gomp." + name)


def _submodule_fixture(name: str):
    """A fixture mp_<name>: mp's module of that name."""
    def fixture(mp):
        return submodule(mp, name)
    fixture.__doc__ = f"mp's {name} module (multiprocessing.{name} or gomp.{name})."
    return pytest.fixture(name="mp_" + name)(fixture)


mp_connection = _submodule_fixture("connection")  # wait, Connection, Listener, Client
mp_managers = _submodule_fixture("managers")  # SyncManager, BaseProxy, RemoteError...
mp_pool = _submodule_fixture("pool")  # ThreadPool, MaybeEncodingError, the states...
mp_shared_memory = _submodule_fixture("shared_memory")  # SharedMemory, ShareableList
mp_sharedctypes = _submodule_fixture("sharedctypes")  # synchronized, copy...


@pytest.fixture
def ctrl_c():
    """Send the main thread SIGINT after a delay (a KeyboardInterrupt there
    wherever it waits), with Python's handler installed: the suite may run
    as a background job, where SIGINT is ignored. Sent to the main thread
    itself, as a terminal's Ctrl-C almost always lands: one that the kernel
    hands to another thread does not wake a wait on a Python lock (the
    stdlib's too), which is not what these tests are about."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timers = []

    def after(delay):
        t = threading.Timer(delay, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGINT))
        timers.append(t)
        t.start()
    try:
        yield after
    finally:
        for t in timers:
            t.cancel()
            t.join()
        signal.signal(signal.SIGINT, old)


@pytest.fixture
def gomp_pool():
    """A gomp.Pool(2) for a test of what only gomp's pool does; terminated
    and joined after the test, also when it fails."""
    import gomp
    p = gomp.Pool(2)
    yield p
    p.terminate()
    p.join()


@pytest.fixture(autouse=True)
def reap_children():
    """Kill and join whatever children a test left running (gomp's and
    the stdlib's)."""
    yield
    scripts.kill_children()

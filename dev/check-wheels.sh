#!/usr/bin/env bash
# Install each wheel in a directory (dev/build-wheels.sh's) into a fresh venv
# of its Python, with neither Go nor a C compiler on PATH, and run a program
# on it: the wheels need nothing but Python. Wheels of another architecture
# (the aarch64 ones, on x86_64) cannot run here and are skipped, by name.
#
#   dev/check-wheels.sh wheelhouse/
set -euo pipefail
cd "$(dirname "$0")/.."
. dev/pythons.sh
dir="$(realpath "$1")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# a PATH with only what the program below needs: no go, no gcc, no cc
mkdir "$work/bin"
for tool in sh env; do ln -s "$(command -v "$tool")" "$work/bin/$tool"; done
arch="$(uname -m)"
n=0
for whl in "$dir"/*.whl; do
    case "$(basename "$whl" .whl)" in
        *_"$arch") ;;
        *) echo "skipped (not $arch): $(basename "$whl")"; continue ;;
    esac
    tag="$(basename "$whl" | cut -d- -f3)"          # cp311
    v="${tag#cp}"; v="${v:0:1}.${v:1}"             # 3.11
    python="$(find_python "$v")" || { echo "no Python $v found" >&2; exit 1; }
    "$python" -m venv "$work/venv$v"
    "$work/venv$v/bin/pip" install -q "$whl"
    (cd "$work" && env -i HOME="$HOME" PATH="$work/venv$v/bin:$work/bin" "$work/venv$v/bin/python" -c '
import shutil, sys
assert not any(shutil.which(t) for t in ("go", "gcc", "cc")), "a compiler on PATH"
import gomp, gomp.futures
with gomp.Pool(2) as p:
    assert p.map(abs, range(-50, 0)) == list(range(50, 0, -1))
with gomp.futures.ProcessPoolExecutor(2) as ex:
    assert ex.submit(abs, -3).result() == 3
q = gomp.Queue(); q.put([1, "x"]); assert q.get() == [1, "x"]
print("ok", sys.version.split()[0])
')
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no $arch wheels in $dir" >&2; exit 1; }
echo "=== $n $arch wheels installed and ran without Go or a C compiler"

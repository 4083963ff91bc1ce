#!/usr/bin/env bash
# Install each wheel in a directory (dev/build-wheels.sh's) into a fresh venv
# of its Python, with neither Go nor a C compiler on PATH, and run a program
# on it: the wheels need nothing but Python. Wheels of another architecture
# (the aarch64 ones, on x86_64) cannot run here and are skipped, by name.
#
#   dev/check-wheels.sh [--suite VERSIONS] wheelhouse/
#
# Every wheel for this machine's architecture runs a short program. With
# --suite (3.11,3.13 or all), the wheels of those Pythons are installed with
# the test extras and run the whole Python test suite (this tree's tests/)
# instead (PYTEST_ADDOPTS is passed on to it). twine checks the metadata of
# every wheel and of the sdist.
set -euo pipefail
cd "$(dirname "$0")/.."
. dev/pythons.sh
suite=""
if [ "${1:-}" = --suite ]; then suite="$2"; shift 2; fi
[ "$suite" = all ] && suite="$(IFS=,; echo "${PYTHONS[*]}")"
dir="$(realpath "$1")"
repo="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# a PATH with everything this one holds but a C compiler or Go: the tests
# start shells, other Pythons, useradd and the like, never a build
mkdir "$work/bin"
IFS=: read -ra dirs <<< "$PATH"
for d in "${dirs[@]}"; do
    for f in "$d"/*; do
        [ -x "$f" ] || continue
        name="$(basename "$f")"
        case "$name" in
            go | gofmt | cc | c++ | c89* | c99* | cpp* | gcc* | g++* | clang* | tcc | zig | *-gcc* | *-g++*) continue ;;
        esac
        [ -e "$work/bin/$name" ] || ln -s "$f" "$work/bin/$name"
    done
done
for tool in go gcc cc; do
    if PATH="$work/bin" command -v "$tool" >/dev/null; then
        echo "$tool is on the wheels' PATH" >&2
        exit 1
    fi
done

arch="$(uname -m)"
n=0
for whl in "$dir"/*.whl; do
    name="$(basename "$whl")"
    case "$name" in
        *"_$arch.whl") ;;
        *) echo "skipped (not $arch): $name"; continue ;;
    esac
    tag="$(echo "$name" | cut -d- -f3)"            # cp311
    v="${tag#cp}"; v="${v:0:1}.${v:1}"             # 3.11
    python="$(find_python "$v")" || { echo "no Python $v found" >&2; exit 1; }
    venv="$work/venv$v"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    run=(env -i HOME="$HOME" LANG=C.UTF-8 PATH="$venv/bin:$work/bin"
         PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}")
    if [[ ",$suite," == *",$v,"* ]]; then
        echo "=== $name: the test suite"
        "$venv/bin/pip" install -q "$whl[test]"
        # the source build's own test needs a compiler: a wheel's user has none
        (cd "$repo" && "${run[@]}" python -c '
import gomp
assert "site-packages" in gomp.__file__, gomp.__file__
' && "${run[@]}" python -m pytest -p no:cacheprovider -rs \
            --deselect tests/test_packaging.py::test_the_sdist_installs_without_go_on_path_taking_go_from_pypi)
    else
        "$venv/bin/pip" install -q "$whl"
        (cd "$work" && "${run[@]}" python -c '
import sys
import gomp, gomp.futures
with gomp.Pool(2) as p:
    assert p.map(abs, range(-50, 0)) == list(range(50, 0, -1))
with gomp.futures.ProcessPoolExecutor(2) as ex:
    assert ex.submit(abs, -3).result() == 3
q = gomp.Queue(); q.put([1, "x"]); assert q.get() == [1, "x"]
print("ok", sys.version.split()[0])
')
    fi
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no $arch wheels in $dir" >&2; exit 1; }
echo "=== twine check"
"$venv/bin/pip" install -q twine
"$venv/bin/twine" check --strict "$dir"/*.whl "$dir"/*.tar.gz
echo "=== $n $arch wheels installed and ran without Go or a C compiler"

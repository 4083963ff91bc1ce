#!/usr/bin/env bash
# What building gomp's C extension for the limited API (one abi3 wheel for
# every Python) would take and cost:
#   1. pybind/gomp/_gomp*.c compiled at each Py_LIMITED_API floor, the
#      errors grouped by what a port would change (compile_errors.py);
#   2. the hot paths in miniature (hotpaths.c) built in each variant for
#      every Python found and timed side by side (bench.py), as medians and
#      ratios to the normal build (report.py);
#   3. the real extension's figures for the same paths, for scale (context.py).
#
#   benchmarks/limited_api/run.sh [rounds]      (default 15)
#
# Needs gcc, Go and the Pythons of dev/pythons.sh (a missing one is skipped).
# It builds in a temporary directory, removed at the end; with
# LIMITED_API_DIR=dir it builds there and keeps the logs and results.
set -euo pipefail
rounds="${1:-15}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/dev/pythons.sh"
# nothing written into the tree (report.py imports bench.py)
export PYTHONDONTWRITEBYTECODE=1

if [ -n "${LIMITED_API_DIR:-}" ]; then
    work="$(mkdir -p "$LIMITED_API_DIR" && cd "$LIMITED_API_DIR" && pwd)"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

versions=()
pythons=()
for v in "${PYTHONS[@]}"; do
    if p="$(find_python "$v")"; then
        versions+=("$v")
        pythons+=("$p")
    else
        echo "no Python $v found: skipped" >&2
    fi
done
[ "${#pythons[@]}" -gt 0 ] || { echo "no Python found" >&2; exit 1; }
newest="${pythons[${#pythons[@]} - 1]}"

include_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["include"])'; }
# 3.10 -> 0x030A0000, the Py_LIMITED_API of that floor
hex_of() { printf '0x%02X%02X0000' "${1%%.*}" "${1#*.}"; }

echo "== the Go core (c-shared, as setup.py builds it): its header, _gocore.h" >&2
(cd "$root" && CGO_ENABLED=1 GOFLAGS="${GOFLAGS:--mod=mod}" \
    go build -buildmode=c-shared -trimpath -o "$work/go/_gocore.so" ./pybind/capi)

# setup.py's flags, and every call of an undeclared function an error (it is
# one the limited API lacks), and every error reported
cflags=(-O2 -Wall -Werror=incompatible-pointer-types -fvisibility=hidden -fPIC
        -Werror=implicit-function-declaration -Werror=int-conversion -fmax-errors=0)

# compile_sources LABEL [PY_LIMITED_API]: each source's object and gcc's
# output in $work/compile/LABEL. The newest Python's headers for every floor:
# older ones declare some functions outside the limited API regardless.
newest_include="$(include_of "$newest")"
compile_sources() {
    local out="$work/compile/$1" src name
    mkdir -p "$out"
    for src in "$root"/pybind/gomp/_gomp*.c; do
        name="$(basename "$src" .c)"
        if ! gcc -c "${cflags[@]}" ${2:+-DPy_LIMITED_API=$2} -I"$newest_include" -I"$work/go" \
                -o "$out/$name.o" "$src" 2>"$out/$name.log" && [ -z "${2:-}" ]; then
            cat "$out/$name.log" >&2  # the full API must build
            exit 1
        fi
    done
}

echo "== pybind/gomp/_gomp*.c at each limited API floor, with $newest's headers" >&2
compile_sources none
runs=(none="$work/compile/none")
newest_version="${versions[${#versions[@]} - 1]}"
for v in "${PYTHONS[@]}"; do
    # a floor above the headers' Python cannot be checked with them
    if printf '%s\n%s\n' "$v" "$newest_version" | sort -V -C; then
        compile_sources "$v" "$(hex_of "$v")"
        runs+=("$v=$work/compile/$v")
    fi
done

# build VARIANT [DEFINES...]: hotpaths.c as module hotpaths_VARIANT, for the
# Python whose headers are in $include, into $out
build() {
    local variant=$1
    shift
    gcc -shared -fPIC -O2 -Wall -fvisibility=hidden -I"$include" -DMODNAME="hotpaths_$variant" \
        "$@" -o "$out/hotpaths_$variant.so" "$here/hotpaths.c"
}

echo "== hotpaths.c in each variant, for each Python" >&2
for i in "${!pythons[@]}"; do
    v="${versions[$i]}"
    include="$(include_of "${pythons[$i]}")"
    out="$work/ext/$v"
    mkdir -p "$out"
    build normal
    build normal_codec -DHAND_CODEC
    build lim39 -DPy_LIMITED_API=0x03090000
    build lim39_codec -DPy_LIMITED_API=0x03090000 -DHAND_CODEC
    # a floor's build runs on that Python and later ones only
    for floor in 3.10 3.11 3.12; do
        if printf '%s\n%s\n' "$floor" "$v" | sort -V -C; then
            build "lim${floor/./}" -DPy_LIMITED_API="$(hex_of "$floor")"
        fi
    done
done

echo "== timing, $rounds rounds per Python" >&2
for i in "${!pythons[@]}"; do
    v="${versions[$i]}"
    SECONDS=0
    "${pythons[$i]}" "$here/bench.py" "$work/ext/$v" "$rounds" >"$work/bench-$v.jsonl"
    echo "   Python $v: ${SECONDS}s" >&2
done

echo "== gomp's own extension (built from the objects above) with $newest" >&2
mkdir -p "$work/pkg"
cp -R "$root/pybind/gomp" "$work/pkg/"
ext_suffix="$("$newest" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
gcc -shared -o "$work/pkg/gomp/_gomp$ext_suffix" "$work/compile/none"/*.o -ldl
cp "$work/go/_gocore.so" "$work/pkg/gomp/"

echo
echo "Errors of pybind/gomp/_gomp*.c under Py_LIMITED_API, distinct sites per category"
echo "(none: the full API, as built today)"
"$newest" "$here/compile_errors.py" "$root/pybind/gomp" "${runs[@]}"
echo
echo "hotpaths.c, median ns per variant and Python, and the ratio to normal"
echo "(normal: the full API; limXY: Py_LIMITED_API X.Y; _codec: marshal's format by hand)"
"$newest" "$here/report.py" "$work"/bench-*.jsonl
echo
PYTHONPATH="$work/pkg" "$newest" "$here/context.py" "$rounds"

#!/bin/sh
# Build the Go core and the C extension into pybind/gomp, for running from
# the source tree:  dev/build.sh && PYTHONPATH=pybind python3 -m pytest tests
# Files are built aside and renamed into place, so processes that have the
# old libraries mapped keep running. PYTHON=/path/to/python builds the
# extension for another interpreter.
set -e
cd "$(dirname "$0")/.."
tmp=.build-tmp
rm -rf "$tmp"
mkdir -p "$tmp"
"${PYTHON:-python3}" setup.py -q build_ext -b "$tmp/lib" -t "$tmp/obj" >/dev/null
for f in "$tmp"/lib/gomp/*.so; do
    mv -f "$f" pybind/gomp/
done
rm -rf "$tmp"
# the start-up hook that gives gomp.install() to every Python process the
# program starts (pip puts it in site-packages; here, the interpreter's)
site=$("${PYTHON:-python3}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp pybind/gomp-install.pth "$site/" 2>/dev/null || echo "note: could not put gomp-install.pth in $site"
# and this source tree on that interpreter's path, as an editable install
# would: Python processes that ignore PYTHONPATH (python -I/-E) find gomp too
echo "$(pwd)/pybind" > "$site/gomp-dev.pth" 2>/dev/null || true

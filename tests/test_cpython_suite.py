"""CPython's own multiprocessing tests (the interpreter's installed
test._test_multiprocessing, spawn flavour) against gomp, one group of the
suite per test: see cpython_suite.py, which runs them and lists the design
differences it skips by name."""
from __future__ import annotations

import os
import re
import sys

import pytest

from scripts import run

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpython_suite.py")


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("group", ["processes", "threads", "manager", "misc"])
def test_cpython_suite(group):
    r = run([sys.executable, RUNNER, "--group", group], timeout=1400)
    summary = [line for line in r.stdout.splitlines() if line.startswith("SUITE ")]
    not_passed = [line for line in r.stdout.splitlines() if line.startswith("NOT PASSED ")]
    assert summary, r.stdout[-3000:] + r.stderr[-3000:]
    print(summary[-1])
    counts = dict(re.findall(r"(\w+)=(\d+)", summary[-1]))
    # the suite really ran, and nothing but the documented differences was left out
    assert int(counts["ran"]) > 10
    assert r.returncode == 0 and not not_passed, "\n".join(not_passed) + "\n" + r.stdout[-5000:]

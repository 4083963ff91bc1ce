"""gomp.resource_tracker: children share their parent's tracker."""
from __future__ import annotations

import pytest

import scripts

PROGRAM = """
import sys
import gomp
from gomp.resource_tracker import _resource_tracker


def report(conn):
    fd = _resource_tracker._fd
    conn.send((fd is not None, _resource_tracker._pid,
               fd is not None and _resource_tracker._check_alive()))


if __name__ == "__main__":
    if sys.argv[1] == "running":
        _resource_tracker.ensure_running()
    r, w = gomp.Pipe(duplex=False)
    p = gomp.Process(target=report, args=(w,))
    p.start()
    print("child", *r.recv(), flush=True)
    p.join(10)
    print("parent", _resource_tracker._pid, flush=True)
"""


def _run(tmp_path, mode):
    script = scripts.write(tmp_path / "p.py", PROGRAM)
    out = scripts.run_script(script, mode, timeout=50)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())


@pytest.mark.timeout(60)
def test_child_uses_the_parents_tracker(tmp_path):
    lines = _run(tmp_path, "running")
    # the child has the parent's descriptor and no tracker of its own, and
    # the tracker answers it
    assert lines["child"] == "True None True"
    assert lines["parent"] != "None"


@pytest.mark.timeout(60)
def test_no_tracker_is_started_for_a_child(tmp_path):
    lines = _run(tmp_path, "none")
    assert lines["child"] == "False None False"
    assert lines["parent"] == "None"

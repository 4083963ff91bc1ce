"""SharedMemoryManager: segments tracked by the manager and unlinked at
shutdown."""
from __future__ import annotations

import os
import subprocess
import textwrap
import time

import pytest

import scripts

import gomp
from gomp import managers, shared_memory


def _exists(name):
    return os.path.exists(os.path.join("/dev/shm", name.lstrip("/")))


def _write_in_child(name, slname):
    seg = shared_memory.SharedMemory(name)
    seg.buf[1] = 9
    seg.close()
    sl = shared_memory.ShareableList(name=slname)
    sl[0] = 42
    sl.shm.close()


@pytest.mark.timeout(30)
def test_segments_live_until_shutdown():
    with managers.SharedMemoryManager() as smm:
        seg = smm.SharedMemory(128)
        sl = smm.ShareableList([1, "a", 2.5])
        assert sorted(smm._control("list_segments")) == sorted([seg.name, sl.shm.name])
        seg.buf[0] = 7
        p = gomp.Process(target=_write_in_child, args=(seg.name, sl.shm.name))
        p.start()
        p.join(10)
        assert p.exitcode == 0
        assert seg.buf[1] == 9 and sl[0] == 42 and list(sl) == [42, "a", 2.5]
        names = [seg.name, sl.shm.name]
        seg.close()
        sl.shm.close()
        assert all(_exists(n) for n in names)
    assert not any(_exists(n) for n in names)


def test_segment_unlinked_by_client_first():
    with managers.SharedMemoryManager() as smm:
        seg = smm.SharedMemory(16)
        seg.close()
        seg.unlink()
        assert not _exists(seg.name)
    # shutdown did not fail on the missing segment


CRASH = textwrap.dedent("""
    import time
    from gomp.managers import SharedMemoryManager
    smm = SharedMemoryManager()
    smm.start()
    seg = smm.SharedMemory(64)
    print(seg.name, flush=True)
    time.sleep(60)
""")


@pytest.mark.timeout(30)
def test_segments_removed_when_owner_is_killed():
    proc = scripts.start_code(CRASH, stderr=subprocess.DEVNULL)
    try:
        name = proc.stdout.readline().strip()
        assert _exists(name)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while _exists(name) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _exists(name)
    finally:
        proc.kill()
        proc.wait()

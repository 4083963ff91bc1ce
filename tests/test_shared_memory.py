"""gomp.shared_memory: SharedMemory and ShareableList, by name, and
interoperable with the stdlib's. The tests taking ``mp`` (or ``shm``) run
on gomp and on the stdlib's spawn context."""
from __future__ import annotations

import os
import pickle
import sys
from multiprocessing import shared_memory as std

import pytest

import scripts

import gomp
from gomp import shared_memory as gsm

import _shared_targets as T


@pytest.fixture
def cleanup():
    made = []
    yield made
    for shm in made:
        try:
            shm.close()
            shm.unlink()
        except (FileNotFoundError, OSError):
            pass


@pytest.fixture
def shm(mp_shared_memory):
    """mp's shared_memory module."""
    return mp_shared_memory


def test_create_attach_close_unlink(shm, cleanup):
    a = shm.SharedMemory(create=True, size=100)
    cleanup.append(a)
    assert a.size == 100 and len(a.buf) == 100
    assert a.name.startswith("psm_") and os.path.exists("/dev/shm/" + a.name)
    assert repr(a) == "SharedMemory(%r, size=100)" % a.name
    a.buf[:3] = b"abc"
    b = shm.SharedMemory(a.name)
    assert bytes(b.buf[:3]) == b"abc" and b.size == 100
    b.close()
    a.close()
    a.unlink()
    assert not os.path.exists("/dev/shm/" + a.name)
    with pytest.raises(FileNotFoundError):
        shm.SharedMemory(a.name)


def test_named_and_errors(shm, cleanup):
    name = "gomp_test_%d" % os.getpid()
    a = shm.SharedMemory(name, create=True, size=10)
    cleanup.append(a)
    assert a.name == name
    with pytest.raises(FileExistsError):
        shm.SharedMemory(name, create=True, size=10)
    with pytest.raises(ValueError):
        shm.SharedMemory(create=True, size=0)
    with pytest.raises(ValueError):
        shm.SharedMemory(create=True, size=-1)
    with pytest.raises(ValueError):
        shm.SharedMemory()
    with pytest.raises(OSError):
        shm.SharedMemory("no/slashes", create=True, size=10)


@pytest.mark.gomp_extension  # a block of gomp's opened by the stdlib's, and back
@pytest.mark.parametrize("maker,opener", [(gsm, std), (std, gsm)])
def test_interoperates_with_stdlib(maker, opener, cleanup):
    a = maker.SharedMemory(create=True, size=64)
    cleanup.append(a)
    a.buf[10] = 42
    b = opener.SharedMemory(a.name)
    assert b.buf[10] == 42 and b.size == a.size
    b.buf[11] = 43
    assert a.buf[11] == 43
    b.close()


def test_pickles_by_name(shm, cleanup):
    a = shm.SharedMemory(create=True, size=8)
    cleanup.append(a)
    b = pickle.loads(pickle.dumps(a))
    assert b.name == a.name and b.size == 8
    b.close()


@pytest.mark.timeout(30)
def test_child_writes_by_name(mp, shm, cleanup):
    a = shm.SharedMemory(create=True, size=16)
    cleanup.append(a)
    p = mp.Process(target=T.write_shared_memory, args=(shm.SharedMemory, a.name, b"child"))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert bytes(a.buf[:5]) == b"child"


def test_close_with_exported_view_raises(shm, cleanup):
    a = shm.SharedMemory(create=True, size=8)
    cleanup.append(a)
    view = a.buf[:4]
    with pytest.raises(BufferError):
        a.close()
    view.release()
    a.close()


VALUES = [1, 2.5, True, None, "héllo", b"by\x00tes", "x" * 20, -3, False, b""]


def test_shareable_list_semantics(shm, cleanup):
    sl = shm.ShareableList(VALUES)
    cleanup.append(sl.shm)
    assert list(sl) == VALUES and len(sl) == len(VALUES)
    assert sl[-1] == b"" and sl.count(2.5) == 1 and sl.index("héllo") == 4
    sl[0] = "abcdefgh"  # str into an 8-byte slot
    with pytest.raises(ValueError):
        sl[0] = "abcdefghi"
    sl[4] = 99
    assert sl[0] == "abcdefgh" and sl[4] == 99
    with pytest.raises(IndexError):
        sl[len(VALUES)]
    with pytest.raises(IndexError):
        sl[len(VALUES)] = 1
    with pytest.raises(ValueError):
        sl.index("absent")
    assert repr(sl).startswith("ShareableList([")
    empty = shm.ShareableList()
    cleanup.append(empty.shm)
    assert list(empty) == []


@pytest.mark.gomp_extension  # a list of gomp's opened by the stdlib's, and back
@pytest.mark.parametrize("maker,opener", [(gsm, std), (std, gsm)])
def test_shareable_list_interoperates_with_stdlib(maker, opener, cleanup):
    a = maker.ShareableList(VALUES)
    cleanup.append(a.shm)
    b = opener.ShareableList(name=a.shm.name)
    assert list(b) == VALUES and b.format == a.format
    b[1] = "new"
    assert a[1] == "new"
    b.shm.close()
    c = std.ShareableList(VALUES)
    cleanup.append(c.shm)
    assert c.shm.size == a.shm.size


@pytest.mark.timeout(30)
def test_shareable_list_reaches_child(mp, shm, cleanup):
    sl = shm.ShareableList([21, "parent"])
    cleanup.append(sl.shm)
    p = mp.Process(target=T.edit_shareable_list, args=(sl,))
    p.start()
    p.join(10)
    assert p.exitcode == 0
    assert list(sl) == [42, "child"]


def test_module_names_and_random_names(shm):
    assert shm._USE_POSIX is True
    assert shm._O_CREX == os.O_CREAT | os.O_EXCL
    assert (shm._SHM_SAFE_NAME_LENGTH, shm._SHM_NAME_PREFIX) == (14, "/psm_")
    names = {shm._make_filename() for _ in range(20)}
    assert len(names) == 20
    assert all(n.startswith("/psm_") and len(n) <= 14 for n in names)


def test_make_filename_is_looked_up_and_retried(shm, monkeypatch, cleanup):
    # the stdlib's tests replace _make_filename; a name in use is skipped
    names = ["/psm_gomp_t1_%d" % os.getpid(), "/psm_gomp_t2_%d" % os.getpid()]
    monkeypatch.setattr(shm, "_make_filename", iter(names).__next__)
    a = shm.SharedMemory(create=True, size=1)
    cleanup.append(a)
    assert a._name == names[0]
    monkeypatch.setattr(shm, "_make_filename", iter(names).__next__)
    b = shm.SharedMemory(create=True, size=1)
    cleanup.append(b)
    assert b._name == names[1]


def test_subclass_flags_and_mode(shm, cleanup):
    class Permissive(shm.SharedMemory):
        _mode = 0o640

    a = Permissive(create=True, size=32)
    cleanup.append(a)
    assert os.stat("/dev/shm/" + a.name).st_mode & 0o777 == 0o640 & ~_umask()

    class OptionalAttach(shm.SharedMemory):
        _flags = os.O_CREAT | os.O_RDWR

    b = OptionalAttach(a.name)  # exists: attached, not an error
    assert b.size == 32
    b.close()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.gomp_extension
def test_shareable_list_room_for_strings(cleanup):
    # the stdlib's room (by characters, one spare byte), never too little
    # for the encoded bytes (the stdlib's cuts them to the room)
    a = gsm.ShareableList(["encodés", "ééééééé", "abcdefgh", ""])
    cleanup.append(a.shm)
    b = std.ShareableList(["encodés", "abcdefgh", ""])
    cleanup.append(b.shm)
    fa = [a._get_packing_format(i) for i in range(4)]
    fb = [b._get_packing_format(i) for i in range(3)]
    assert [fa[0], fa[2], fa[3]] == fb == ["8s", "16s", "8s"]
    assert fa[1] == "16s" and a[1] == "ééééééé"  # 14 bytes: whole


def test_shareable_list_copy_keeps_the_format(shm, cleanup):
    sl = shm.ShareableList(["howdy", 1])
    cleanup.append(sl.shm)
    sl[0] = "encodés"  # exactly 8 bytes of UTF-8
    copy = shm.ShareableList(sl)
    cleanup.append(copy.shm)
    assert list(copy) == list(sl) and copy.format == sl.format


@pytest.mark.parametrize("track", [True, False])
def test_a_separate_program_that_opens_a_block_tracks_it_as_asked(mp, track):
    # a program opening a block with track=True registers it with its own
    # resource tracker, which unlinks it when that program ends
    if mp is not gomp and sys.version_info < (3, 13):
        pytest.skip("the stdlib's SharedMemory takes track from Python 3.13 on")
    install = "import gomp; gomp.install()\n" if mp is gomp else ""
    block = gsm.SharedMemory(create=True, size=16)
    try:
        code = (install + "import sys\n"
                "from multiprocessing.shared_memory import SharedMemory\n"
                "SharedMemory(sys.argv[1], track=sys.argv[2] == 'True').close()\n")
        r = scripts.run_code(code, block.name, str(track), timeout=60)
        assert r.returncode == 0, r.stderr
        assert ("leaked shared_memory" in r.stderr) is track
        assert os.path.exists("/dev/shm/" + block.name) is not track
    finally:
        block.close()
        try:
            block.unlink()
        except FileNotFoundError:
            pass

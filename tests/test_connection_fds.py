"""Descriptors between processes: reduction.send_handle/recv_handle/DupFd,
sockets and connections pickled, and the resource sharer that serves the
descriptors of objects pickled outside a process start or a pipe message."""
from __future__ import annotations

import functools
import os
import pickle
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import gomp
from gomp import connection, reduction, util

import _connection_targets as T


@pytest.fixture
def tmpfile(tmp_path):
    return str(tmp_path / "out")


@pytest.fixture
def resource_sharer():
    from gomp import resource_sharer
    return resource_sharer


# ---------------------------------------------------------------------------
# send_handle / recv_handle


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fill_low_fds", [False, True], ids=["fd", "fd-over-256"])
def test_send_handle_over_a_pipe_to_a_child(tmpfile, fill_low_fds):
    conn, child_conn = gomp.Pipe()
    p = gomp.Process(target=T.recv_handle_and_write, args=(child_conn, b"foo", fill_low_fds))
    p.start()
    with open(tmpfile, "wb") as f:
        reduction.send_handle(conn, f.fileno(), p.pid)
    assert conn.poll(30)
    landed = conn.recv()
    p.join(10)
    assert p.exitcode == 0
    assert (landed >= 256) == fill_low_fds
    with open(tmpfile, "rb") as f:
        assert f.read() == b"foo"


@pytest.mark.timeout(60)
def test_recv_handle_from_a_child(tmpfile):
    conn, child_conn = gomp.Pipe()
    p = gomp.Process(target=T.send_handle_of, args=(child_conn, tmpfile))
    p.start()
    fd = reduction.recv_handle(conn)
    os.write(fd, b"written by the parent")
    os.close(fd)
    conn.send("done")
    p.join(10)
    with open(tmpfile, "rb") as f:
        assert f.read() == b"written by the parent"


def test_recv_handle_of_a_message_without_descriptor_raises():
    a, b = gomp.Pipe()
    a.send("no descriptor here")
    with pytest.raises(RuntimeError):
        reduction.recv_handle(b)
    # the pipe goes on
    a.send("next")
    assert b.recv() == "next"
    a.close()
    b.close()


def test_recv_handle_at_end_of_stream_raises_eoferror():
    a, b = gomp.Pipe()
    a.close()
    with pytest.raises(EOFError):
        reduction.recv_handle(b)
    b.close()


def test_send_handle_on_one_way_pipe_and_wrong_direction():
    r, w = gomp.Pipe(duplex=False)
    x, y = os.pipe()
    reduction.send_handle(w, y, os.getpid())
    fd = reduction.recv_handle(r)
    os.write(fd, b"one way")
    assert os.read(x, 10) == b"one way"
    with pytest.raises(OSError):
        reduction.send_handle(r, y, os.getpid())
    for f in (x, y, fd):
        os.close(f)
    r.close()
    w.close()


def test_send_handle_over_a_socket_connection():
    s1, s2 = socket.socketpair()
    a, b = connection.Connection(s1.detach()), connection.Connection(s2.detach())
    x, y = os.pipe()
    reduction.send_handle(a, y, os.getpid())
    fd = reduction.recv_handle(b)
    os.write(fd, b"socket")
    assert os.read(x, 10) == b"socket"
    for f in (x, y, fd):
        os.close(f)
    a.close()
    b.close()


def test_recvfds_without_descriptors_raises():
    s1, s2 = socket.socketpair()
    with s1, s2:
        s1.sendall(b"\0")
        with pytest.raises(RuntimeError):
            reduction.recvfds(s2, 1)
        s1.close()
        with pytest.raises(EOFError):
            reduction.recvfds(s2, 1)


# ---------------------------------------------------------------------------
# sockets, DupFd and functools.partial through the ForkingPickler


@pytest.mark.timeout(60)
def test_socket_sent_through_a_pipe_to_a_child():
    conn, child_conn = gomp.Pipe()
    p = gomp.Process(target=T.recv_socket_and_send, args=(child_conn, b"over the socket"))
    p.start()
    s1, s2 = socket.socketpair()
    with s1, s2:
        conn.send(s1)
        assert conn.recv() == "sent"
        s2.settimeout(10)
        assert s2.recv(100) == b"over the socket"
    p.join(10)


def test_socket_pickled_outside_a_send_goes_through_the_sharer():
    s1, s2 = socket.socketpair()
    with s1, s2:
        data = reduction.ForkingPickler.dumps(s1)
        s1.close()  # the sharer keeps its own copy
        s3 = pickle.loads(data)
        with s3:
            assert (s3.family, s3.type) == (socket.AF_UNIX, socket.SOCK_STREAM)
            s3.sendall(b"copy")
            assert s2.recv(10) == b"copy"


@pytest.mark.timeout(60)
def test_dupfd_detached_in_another_process():
    r, w = os.pipe()
    try:
        pickled = bytes(reduction.ForkingPickler.dumps(reduction.DupFd(w)))
        p = gomp.Process(target=T.detach_dupfd_and_write, args=(pickled, b"dup"))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert os.read(r, 10) == b"dup"
    finally:
        os.close(r)
        os.close(w)


def test_partial_reduced_as_the_stdlib_does():
    p = functools.partial(int, "11", base=2)
    rebuild, args = reduction._reduce_partial(p)
    assert rebuild is reduction._rebuild_partial
    assert rebuild(*args)() == 3
    assert pickle.loads(reduction.ForkingPickler.dumps(p))() == 3
    assert reduction.ACKNOWLEDGE is False


# ---------------------------------------------------------------------------
# the resource sharer


def test_sharer_listens_on_a_file_in_a_private_directory(resource_sharer):
    shared = resource_sharer.DupFd(0)
    address, key = shared._id
    assert isinstance(address, str) and not address.startswith("\0")
    assert os.path.dirname(address) == util.get_temp_dir()
    assert stat.S_ISSOCK(os.stat(address).st_mode)
    assert stat.S_IMODE(os.stat(os.path.dirname(address)).st_mode) == 0o700
    os.close(shared.detach())
    with pytest.raises(OSError):
        shared.detach()  # once only


@pytest.mark.timeout(60)
def test_sharer_hangs_up_on_another_user(resource_sharer):
    if os.getuid() != 0:
        pytest.skip("needs root to run a peer as another user")
    shared = resource_sharer.DupFd(0)
    address, key = shared._id
    # let the other user reach the socket: only its credentials keep it out
    os.chmod(os.path.dirname(address), 0o755)
    os.chmod(address, 0o777)
    try:
        code = textwrap.dedent("""
            import os, socket, sys
            os.setgid(65534); os.setuid(65534)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(sys.argv[1])
            try:
                s.sendall(bytes.fromhex(sys.argv[2]))
                msg, fds, _, _ = socket.recv_fds(s, 1, 1)
            except (ConnectionResetError, BrokenPipeError):
                msg, fds = b"", []
            print("refused" if not msg and not fds else "served")
        """)
        out = subprocess.run([sys.executable, "-c", code, address, key.hex()],
                             capture_output=True, timeout=30, text=True)
        assert out.stdout.strip() == "refused", out.stderr
    finally:
        os.chmod(os.path.dirname(address), 0o700)
    os.close(shared.detach())  # still there for us


@pytest.mark.timeout(60)
def test_sharer_serves_others_while_a_peer_stays_silent(monkeypatch, resource_sharer):
    monkeypatch.setattr(resource_sharer, "PEER_TIMEOUT", 1.0)
    shared = resource_sharer.DupFd(0)
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(shared._id[0])
    try:
        start = time.monotonic()
        os.close(shared.detach())
        assert time.monotonic() - start < 0.5
        # the silent peer is dropped after its time
        silent.settimeout(10)
        assert silent.recv(1) == b""
    finally:
        silent.close()


def test_sharer_stop_removes_the_socket_and_drops_what_was_not_fetched(resource_sharer):
    shared = resource_sharer.DupFd(0)
    address = shared._id[0]
    resource_sharer.stop(timeout=10)
    assert not os.path.exists(address)
    with pytest.raises(OSError):
        shared.detach()
    again = resource_sharer.DupFd(0)  # starts anew
    os.close(again.detach())


def test_old_name_of_shared_descriptors(resource_sharer):
    # tests and code monkeypatch connection._SharedFds.detach
    assert connection._SharedFds is resource_sharer.DupFds


# ---------------------------------------------------------------------------
# Connection objects and the stdlib's module names


def test_connection_rejects_an_invalid_handle():
    with pytest.raises(ValueError):
        connection.Connection(-1)
    with pytest.raises(TypeError):
        connection.Connection("3")
    conn = connection.Connection(44977608)
    try:
        conn.poll()  # does not crash (may raise, as the stdlib)
    except (ValueError, OSError):
        pass
    finally:
        conn._handle = None


def test_stdlib_module_names():
    import selectors
    assert connection._ForkingPickler is reduction.ForkingPickler
    assert connection._WaitSelector is selectors.PollSelector
    t = connection._init_timeout(0.05)
    assert not connection._check_timeout(t)
    time.sleep(0.1)
    assert connection._check_timeout(t)
    assert (connection._MD5ONLY_MESSAGE_LENGTH, connection._MD5_DIGEST_LEN) == (20, 16)


@pytest.mark.parametrize("prefix", [b"", b"{md5}", b"{sha256}"])
def test_challenge_response_helpers(prefix):
    key = b"supadupasecretkey"
    msg = prefix + b"is-twenty-bytes-long"
    response = connection._create_response(key, msg)
    assert response.startswith(prefix)
    connection._verify_challenge(key, msg, response)
    with pytest.raises(gomp.AuthenticationError):
        connection._verify_challenge(b"other key", msg, response)
    expected = (prefix[1:-1].decode(), msg[len(prefix):]) if prefix else ("", msg)
    assert connection._get_digest_name_and_payload(msg) == expected
    with pytest.raises(gomp.AuthenticationError):
        connection._get_digest_name_and_payload(b"{nope}" + b"x" * 30)

"""The zygote's wire protocol (gomp/zygote.py), both ends, against a fake
peer: requests bigger than a socket buffer, replies with one or two
descriptors, failures, a zygote that died, and the status pipe."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from gomp import popen, zygote

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield a, b
    a.close()
    b.close()


def fake_zygote(sock, reply):
    """Read one request as the zygote does and answer with reply(payload, fds)."""
    req = zygote._read_request(sock)
    assert req is not None
    payload, fds = req
    pid, flags, text, send = reply(payload, fds)
    for fd in fds:
        os.close(fd)
    socket.send_fds(sock, [zygote._REPLY.pack(pid, flags, len(text)) + text], send)


def test_big_request_and_a_reply_with_a_status_pipe(pair):
    parent, zyg = pair
    big = b"x" * 300_000  # bigger than one socket write
    r, w = os.pipe()
    seen = {}

    def reply(payload, fds):
        seen["payload"], seen["nfds"] = payload, len(fds)
        # a pipe stands in for both: its read end as the pidfd, its write
        # end as the status pipe
        return 4242, zygote._REPLY_STATUS_PIPE, b"", [r, w]

    t = threading.Thread(target=fake_zygote, args=(zyg, reply))
    t.start()
    zygote._send_request(parent, memoryview(big), [1, 2])
    assert zygote.wait_readable(parent.fileno(), 10)
    pid, pidfd, status_fd = zygote._receive_reply(parent)
    t.join()
    os.close(r)
    os.close(w)
    assert seen == {"payload": big, "nfds": 2}
    assert pid == 4242 and pidfd >= 0 and status_fd >= 0
    # the status pipe carries an i32 exit code
    os.write(status_fd, (-9).to_bytes(4, "little", signed=True))
    assert popen._read_status(pidfd) == -9
    os.close(pidfd)
    os.close(status_fd)


def test_a_failure_is_an_oserror_with_the_zygotes_reason(pair):
    parent, zyg = pair
    t = threading.Thread(target=fake_zygote,
                         args=(zyg, lambda p, f: (-1, 0, b"cannot fork: out of memory", [])))
    t.start()
    zygote._send_request(parent, b"payload", [])
    with pytest.raises(OSError, match="cannot fork: out of memory"):
        zygote._receive_reply(parent)
    t.join()


def test_a_reply_without_its_descriptors_is_refused(pair):
    parent, zyg = pair
    r, w = os.pipe()
    t = threading.Thread(target=fake_zygote,
                         args=(zyg, lambda p, f: (77, zygote._REPLY_STATUS_PIPE, b"", [r])))
    t.start()
    zygote._send_request(parent, b"payload", [])
    with pytest.raises(OSError, match="expected 2 descriptors, got 1"):
        zygote._receive_reply(parent)
    t.join()
    os.close(r)
    os.close(w)


def test_a_dead_zygote_is_an_oserror(pair):
    parent, zyg = pair
    zyg.close()
    with pytest.raises(OSError):
        zygote._send_request(parent, b"payload", [])
        zygote._receive_reply(parent)


def test_status_pipe_closed_before_a_code_reads_as_none():
    r, w = os.pipe()
    os.close(w)
    try:
        assert popen._read_status(r) is None
    finally:
        os.close(r)


def test_wait_readable_times_out_and_refuses_a_bad_descriptor():
    r, w = os.pipe()
    try:
        started = time.monotonic()
        assert zygote.wait_readable(r, 0.05) is False
        assert 0.04 < time.monotonic() - started < 2
        assert zygote.wait_readable(r, 0) is False
        os.write(w, b"x")
        assert zygote.wait_readable(r, 0) is True
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OSError):
        zygote.wait_readable(r, 0.05)

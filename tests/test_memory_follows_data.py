"""Memory follows data: a length header that lies costs the receiver only
what was really sent.

A peer may claim any message length: a socket peer in its 4- or 12-byte
header, a process of the same user in the shared memory of a pipe or a
queue. The receiver holds at most what arrived plus a bounded piece, honours
maxlength before it allocates, and ends a message cut short by its writer
with a clear OSError (EOFError when nothing of a message arrived).

Each receiver runs in a child of its own, whose peak RSS and peak virtual
size are measured around the receive (a test process's own peaks are high
water marks of everything that ran before)."""
from __future__ import annotations

import errno
import json
import mmap
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import gomp
from gomp import connection

import _memory_targets as T
import scripts

CLAIMS = {"4GiB": 4 << 30, "2**63": 1 << 63}
# what the liar really sends before it hangs up: more than one step of a
# growing buffer (64 MiB in the pipe's and the queue's receivers)
SENT = 80 << 20
# how much the receiver's peaks may grow for it: what arrived, one piece of
# the buffer growing, and the interpreter's own noise
RSS_LIMIT_KIB = 200 << 10
VM_LIMIT_KIB = 512 << 10


def _check_costs(res, tag):
    print("%s: peak RSS +%d MiB, peak virtual size +%d MiB"
          % (tag, res["rss_kib"] >> 10, res["vm_kib"] >> 10))
    assert res["rss_kib"] < RSS_LIMIT_KIB, res
    assert res["vm_kib"] < VM_LIMIT_KIB, res


# -- socket Connection: the stdlib's framing


def _socket_header(claim):
    if claim < 1 << 31:
        return struct.pack("!i", claim)
    return struct.pack("!iQ", -1, claim)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("claim", list(CLAIMS.values()), ids=list(CLAIMS))
@pytest.mark.parametrize("how", ["recv_bytes", "recv", "recv_bytes_into", "maxlength"])
def test_socket_connection_lying_header(claim, how):
    ours, theirs = socket.socketpair()
    with ours:
        with theirs:
            proc = scripts.start(
                [sys.executable, "-c", "import _memory_targets as T; T.socket_reader_main()",
                 str(theirs.fileno()), how],
                pass_fds=[theirs.fileno()], stderr=None, env=scripts.env(scripts.TESTS))
        try:
            assert proc.stdout.readline().strip() == "ready"
            ours.sendall(_socket_header(claim))
            if how != "maxlength":
                chunk = b"x" * (1 << 20)
                for _ in range(SENT // len(chunk)):
                    ours.sendall(chunk)
            ours.shutdown(socket.SHUT_WR)
            out, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
    res = json.loads(out)
    if how == "maxlength":
        assert res["outcome"] == ["OSError", "bad message length"]
    else:
        assert res["outcome"] == ["OSError", "got end of file during message"]
        assert res["then"][0] == "EOFError"
    _check_costs(res, "socket %s, claim %d" % (how, claim))


def test_socket_connection_honest_large_message_in_pieces():
    # a message over the first piece, received whole through the pieces
    s1, s2 = socket.socketpair()
    c = connection.Connection(s2.detach())
    data = os.urandom(1 << 16) * 60  # 3.75 MiB: pieces of 1, 2 and 0.75 MiB
    wire = struct.pack("!i", len(data)) + data + struct.pack("!iQ", -1, len(data)) + data
    t = threading.Thread(target=s1.sendall, args=(wire,))
    t.start()
    assert c.recv_bytes() == data
    buf = bytearray(10)
    with pytest.raises(gomp.BufferTooShort) as info:
        c.recv_bytes_into(buf)
    assert info.value.args[0] == data
    t.join()
    s1.close()
    with pytest.raises(EOFError):
        c.recv_bytes()
    c.close()


def test_socket_connection_eof_inside_the_long_header():
    s1, s2 = socket.socketpair()
    c = connection.Connection(s2.detach())
    s1.sendall(struct.pack("!i", -1))  # the 8-byte length never comes
    s1.close()
    with pytest.raises(OSError, match="end of file during message"):
        c.recv_bytes()
    c.close()


# -- the manager protocol (its connections are the ones above)


def _vm_hwm(pid):
    """Peak RSS of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("claim", list(CLAIMS.values()), ids=list(CLAIMS))
def test_manager_authenticated_liar(claim):
    with gomp.Manager() as manager:
        d = manager.dict()
        d["k"] = 1
        pid = manager._process.pid
        base = _vm_hwm(pid)
        # a peer that knows the key, authenticates over a raw socket, then
        # lies in its first request's header
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(manager.address)
        c = connection.Connection(sock.detach())
        connection.answer_challenge(c, bytes(gomp.current_process().authkey))
        connection.deliver_challenge(c, bytes(gomp.current_process().authkey))
        fd = c.fileno()
        os.write(fd, _socket_header(claim))
        chunk = b"x" * (1 << 20)
        for _ in range(SENT // len(chunk)):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        # the server serves others meanwhile
        for i in range(20):
            d["k"] = i
            assert d["k"] == i
        time.sleep(0.5)
        grown = _vm_hwm(pid) - base
        c.close()
        d["after"] = True
        assert d["after"] is True and d["k"] == 19
        print("manager, claim %d: server's peak RSS +%d MiB" % (claim, grown >> 10))
        assert grown < RSS_LIMIT_KIB


# -- gomp's shared-memory Pipe: an 8-byte header, length in the low 56 bits

PIPE_CLAIMS = {"4GiB": 4 << 30, "2**55": 1 << 55, "2**56-1": (1 << 56) - 1}


def _forge_pipe_header(end, value):
    """Write a raw 8-byte message header into the ring that end writes, as a
    process that maps the pipe's segment can."""
    mem, _sock, _ev0, _ev1, _in, out = connection._go().pipe_files(end._handle)
    seg = mmap.mmap(mem, 0)
    try:
        size, = struct.unpack_from("<Q", seg, 8)
        ctl, data = 64 + out * 256, 4096 + out * size
        tail, = struct.unpack_from("<Q", seg, ctl)
        head, = struct.unpack_from("<Q", seg, ctl + 64)
        assert size - (tail - head) >= 8
        for i, b in enumerate(struct.pack("<Q", value)):
            seg[data + (tail + i) % size] = b
        struct.pack_into("<Q", seg, ctl, tail + 8)
    finally:
        seg.close()


def _pipe_reader(how):
    """(child, reading end's writer, report) with the child reading."""
    r, w = gomp.Pipe(duplex=False)
    rep_r, rep_w = gomp.Pipe(duplex=False)
    p = gomp.Process(target=T.pipe_reader, args=(r, rep_w, how))
    p.start()
    r.close()
    rep_w.close()
    assert rep_r.recv() == "ready"
    return p, w, rep_r


@pytest.mark.timeout(120)
@pytest.mark.parametrize("claim", list(PIPE_CLAIMS.values()), ids=list(PIPE_CLAIMS))
@pytest.mark.parametrize("how", ["recv_bytes", "recv", "recv_bytes_into", "maxlength"])
def test_pipe_lying_header(claim, how):
    p, w, report = _pipe_reader(how)
    try:
        _forge_pipe_header(w, claim)
        chunk = b"x" * (1 << 20)
        for _ in range(SENT // len(chunk)):
            w.send_bytes(chunk)  # all of it payload of the forged message
        w.close()
        res = report.recv()
    finally:
        w.close()
        p.join(10)
    # the message is cut short, after which the end reports the end of the
    # stream (the writer is gone)
    assert res["outcome"] == ["OSError", "got end of file during message"], res
    assert res["then"][0] == "EOFError", res
    _check_costs(res, "pipe %s, claim %d" % (how, claim))


@pytest.mark.parametrize("size", [(64 << 20) + 1, 200 << 20])
def test_pipe_honest_message_past_one_step_of_the_buffer(size):
    r, w = gomp.Pipe(duplex=False)
    data = bytearray(size)
    data[::4096] = b"\x01" * len(data[::4096])
    data[-1] = 7
    for how in ("recv_bytes", "recv_bytes_into"):
        t = threading.Thread(target=w.send_bytes, args=(data,))
        t.start()
        if how == "recv_bytes":
            got = r.recv_bytes()
        else:
            with pytest.raises(gomp.BufferTooShort) as info:
                r.recv_bytes_into(bytearray(10))
            got = info.value.args[0]
        t.join()
        assert len(got) == size and got == data
        del got
    r.close()
    w.close()


@pytest.mark.timeout(60)
def test_pipe_header_announcing_descriptors_never_sent():
    # 2**63: no payload, 128 descriptors which the socket does not carry;
    # the reader fails at once instead of waiting on the socket, and the
    # pipe goes on
    p, w, report = _pipe_reader("recv_bytes")
    try:
        _forge_pipe_header(w, 1 << 63)
        w.send_bytes(b"after")
        res = report.recv()
    finally:
        w.close()
        p.join(10)
    assert res["outcome"] == ["OSError", "[Errno %d] %s" % (errno.EBADMSG, os.strerror(errno.EBADMSG))], res
    assert res["then"] == ["returned", repr(b"after")], res


# -- queues: a frame's message header gives the part count and lengths


def _u64(seg, off):
    return struct.unpack_from("<Q", seg, off)[0]


def _forge_queue_frames(q, frames):
    """Write frames (flags, writer pid, payload) into q's ring as a process
    that maps its segment can, waiting for room as a writer does."""
    seg = mmap.mmap(q._ring.fileno(), 0)
    try:
        cap, data = _u64(seg, 8), _u64(seg, 24)
        for flags, pid, payload in frames:
            need = 16 + (len(payload) + 7) // 8 * 8
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "the reader took nothing"
                tail, head = _u64(seg, 128), _u64(seg, 256)
                off = tail % cap
                free = cap - (tail - head)
                if cap - off < need:
                    if free >= cap - off:  # a wrap marker sends the reader back
                        struct.pack_into("<II", seg, data + off, 0, 4)
                        struct.pack_into("<Q", seg, 128, tail + cap - off)
                    else:
                        time.sleep(0.001)
                    continue
                if free >= need:
                    break
                time.sleep(0.001)
            struct.pack_into("<IIII", seg, data + off, len(payload), flags, pid, 0)
            seg[data + off + 16:data + off + 16 + len(payload)] = payload
            struct.pack_into("<Q", seg, 128, tail + need)
    finally:
        seg.close()


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


F_FIRST, F_LAST = 1, 2
QUEUE_CLAIMS = {"4GiB": 4 << 30, "2**63-1": (1 << 63) - 1}


def _lying_message(claim, pid, last):
    """Frames of a pickled message (one part) whose header claims claim
    bytes; SENT bytes follow, the last frame flagged last or not."""
    piece = 1 << 20
    head = struct.pack("<IIQ", 1, 0, claim << 1)
    frames = [(F_FIRST, pid, head + b"\x80" * (piece - len(head)))]
    frames += [(0, pid, b"x" * piece)] * (SENT // piece - 1)
    if last:
        frames[-1] = (F_LAST, pid, frames[-1][2])
    return frames


@pytest.mark.timeout(120)
@pytest.mark.parametrize("claim", list(QUEUE_CLAIMS.values()), ids=list(QUEUE_CLAIMS))
@pytest.mark.parametrize("end", ["short", "writer-died"])
def test_queue_lying_message_header(claim, end):
    q = gomp.Queue()
    rep_r, rep_w = gomp.Pipe(duplex=False)
    p = gomp.Process(target=T.queue_reader, args=(q, rep_w))
    p.start()
    rep_w.close()
    try:
        assert rep_r.recv() == "ready"
        if end == "short":  # a last frame long before the claimed length
            _forge_queue_frames(q, _lying_message(claim, os.getpid(), last=True))
        else:  # the writer dies before the end: its message is dropped
            _forge_queue_frames(q, _lying_message(claim, _dead_pid(), last=False))
            time.sleep(0.5)
        q.put("after")
        res = rep_r.recv()
    finally:
        p.join(10)
    assert res["outcome"] == ["returned", "'after'"], res
    assert res["then"][0] == "Empty", res
    _check_costs(res, "queue, %s, claim %d" % (end, claim))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("extra", [-8, 8], ids=["fewer-bytes", "more-bytes"])
def test_queue_message_whose_frames_disagree_with_its_header_is_dropped(extra):
    q = gomp.Queue()
    payload = b"\x80" * (3 << 20)
    claim = len(payload) - extra
    head = struct.pack("<IIQ", 1, 0, claim << 1)
    body = head + payload
    piece = 1 << 20
    frames = [(F_FIRST if i == 0 else 0, os.getpid(), body[i:i + piece])
              for i in range(0, len(body), piece)]
    frames[-1] = (frames[-1][0] | F_LAST,) + frames[-1][1:]
    # and a message in one frame
    frames.append((F_FIRST | F_LAST, os.getpid(),
                   struct.pack("<IIQ", 1, 0, (8 - extra) << 1) + b"\x80" * 8))
    _forge_queue_frames(q, frames)
    q.put("after")
    assert q.get(timeout=10) == "after"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)

"""gomp.Pipe and gomp.connection.Connection: the stdlib's semantics. The
tests taking ``mp`` (or ``pipe``) run on gomp and on the stdlib's spawn
context."""
from __future__ import annotations

import array
import gc
import os
import pickle
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

import scripts

import gomp

import _connection_targets as T



@pytest.fixture(params=[True, False], ids=["duplex", "simplex"])
def pipe(request, mp):
    """(reader, writer) of a duplex or a one-way pipe of mp's."""
    a, b = mp.Pipe(duplex=request.param)
    yield a, b
    a.close()
    b.close()


def test_pipe_returns_connections(mp, mp_connection):
    a, b = mp.Pipe()
    assert isinstance(a, mp_connection.Connection) and isinstance(b, mp_connection.Connection)
    assert a.readable and a.writable and b.readable and b.writable
    r, w = mp.Pipe(duplex=False)
    assert r.readable and not r.writable
    assert w.writable and not w.readable
    for c in (a, b, r, w):
        c.close()


def test_send_recv_objects(pipe):
    r, w = pipe
    objs = [None, 1, "text", b"bytes", [1, 2, (3, 4)], {"k": {1, 2}}, 2.5, list(range(10000)),
            array.array("i", [1, 2, 3])]
    for o in objs:
        w.send(o)
    for o in objs:
        assert r.recv() == o


def test_duplex_both_ways(mp):
    a, b = mp.Pipe()
    a.send("to b")
    b.send("to a")
    assert b.recv() == "to b"
    assert a.recv() == "to a"


def test_simplex_wrong_direction(mp):
    r, w = mp.Pipe(duplex=False)
    with pytest.raises(OSError, match="read-only"):
        r.send(1)
    with pytest.raises(OSError, match="write-only"):
        w.recv()
    with pytest.raises(OSError):
        w.poll()


def test_send_bytes_offset_and_size(pipe):
    r, w = pipe
    w.send_bytes(b"0123456789", 2)
    w.send_bytes(b"0123456789", 2, 3)
    w.send_bytes(array.array("i", [1, 2]))
    w.send_bytes(b"")
    assert r.recv_bytes() == b"23456789"
    assert r.recv_bytes() == b"234"
    assert r.recv_bytes() == array.array("i", [1, 2]).tobytes()
    assert r.recv_bytes() == b""
    with pytest.raises(ValueError):
        w.send_bytes(b"abc", -1)
    with pytest.raises(ValueError):
        w.send_bytes(b"abc", 4)
    with pytest.raises(ValueError):
        w.send_bytes(b"abc", 1, 3)
    with pytest.raises(ValueError):
        w.send_bytes(b"abc", 0, -1)
    assert not r.poll()  # nothing was sent by the failed calls


def test_recv_bytes_maxlength(pipe):
    r, w = pipe
    with pytest.raises(ValueError):
        r.recv_bytes(-1)
    w.send_bytes(b"x" * 10)
    assert r.recv_bytes(10) == b"x" * 10
    w.send_bytes(b"x" * 11)
    with pytest.raises(OSError, match="bad message length"):
        r.recv_bytes(10)


def test_recv_bytes_into(mp):
    r, w = mp.Pipe(duplex=False)
    buf = bytearray(10)
    w.send_bytes(b"abc")
    assert r.recv_bytes_into(buf) == 3
    assert buf[:3] == b"abc"
    w.send_bytes(b"de")
    assert r.recv_bytes_into(buf, 8) == 2
    assert buf == b"abc\0\0\0\0\0de"
    arr = array.array("i", [0] * 4)
    w.send_bytes(array.array("i", [7, 8]))
    assert r.recv_bytes_into(arr, 4) == 8
    assert arr.tolist() == [0, 7, 8, 0]
    w.send_bytes(b"y" * 11)
    with pytest.raises(mp.BufferTooShort) as info:
        r.recv_bytes_into(buf, 1)
    assert info.value.args[0] == b"y" * 11  # the whole message
    with pytest.raises(ValueError):
        r.recv_bytes_into(buf, -1)
    with pytest.raises(ValueError):
        r.recv_bytes_into(buf, 11)
    w.send("after")  # still in step after BufferTooShort
    assert r.recv() == "after"


def test_poll_and_timeout(pipe):
    r, w = pipe
    assert r.poll() is False
    t = time.monotonic()
    assert r.poll(0.2) is False
    assert 0.15 < time.monotonic() - t < 2
    w.send(1)
    assert r.poll() is True
    assert r.poll(None) is True
    assert r.recv() == 1
    threading.Timer(0.1, w.send, (2,)).start()
    assert r.poll(5) is True
    assert r.recv() == 2


def test_closed_handle(pipe):
    r, w = pipe
    assert not r.closed
    r.close()
    assert r.closed
    r.close()  # twice is fine
    for call in (r.recv, r.poll, r.fileno, lambda: r.recv_bytes(), lambda: r.send_bytes(b"")):
        with pytest.raises(OSError, match="handle is closed"):
            call()


def test_context_manager(mp):
    a, b = mp.Pipe()
    with a, b:
        a.send(1)
        assert b.recv() == 1
    assert a.closed and b.closed


def test_eof_after_peer_closed_and_drained(pipe):
    r, w = pipe
    w.send("one")
    w.send_bytes(b"two")
    w.close()
    assert r.poll()
    assert r.recv() == "one"
    assert r.recv_bytes() == b"two"
    assert r.poll() is True  # end of stream counts as readable, as in the stdlib
    with pytest.raises(EOFError):
        r.recv()
    with pytest.raises(EOFError):
        r.recv_bytes()


def test_send_to_closed_peer(pipe):
    r, w = pipe
    r.close()
    with pytest.raises(BrokenPipeError):
        w.send(1)


def test_close_wakes_blocked_recv(pipe):
    r, w = pipe
    closer = threading.Timer(0.1, w.close)
    closer.start()
    t = time.monotonic()
    with pytest.raises(EOFError):
        r.recv()
    assert time.monotonic() - t < 2
    # done closing before the fixture closes it again (the stdlib's close
    # is not safe against a close in another thread)
    closer.join()


def test_unpicklable_object_leaves_connection_usable(pipe):
    r, w = pipe
    with pytest.raises(Exception):
        w.send(threading.Lock())
    with pytest.raises(Exception):
        w.send([1, 2, (i for i in range(3))])  # a generator does not pickle
    w.send("still works")
    assert r.recv() == "still works"
    assert not r.poll()


def test_large_message_streams_through_the_ring(pipe):
    r, w = pipe
    data = os.urandom(1 << 16) * 80  # 5 MiB, larger than the ring
    t = threading.Thread(target=w.send_bytes, args=(data,))
    t.start()
    assert r.recv_bytes() == data
    t.join()
    big = {"a": data[:3 << 20], "b": list(range(1000))}
    t = threading.Thread(target=w.send, args=(big,))
    t.start()
    assert r.recv() == big
    t.join()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_gib_message():
    r, w = gomp.Pipe(duplex=False)
    data = bytearray(1 << 30)
    data[::4096] = b"\x01" * (len(data) // 4096)
    data[-1] = 7
    t = threading.Thread(target=w.send_bytes, args=(data,))
    t.start()
    got = r.recv_bytes()
    t.join()
    assert len(got) == len(data) and got == data
    del got
    buf = bytearray(len(data) + 10)
    t = threading.Thread(target=w.send_bytes, args=(data,))
    t.start()
    assert r.recv_bytes_into(buf, 10) == len(data)
    t.join()
    assert buf[10:] == data


def test_fileno_select_and_wait(pipe, mp_connection):
    r, w = pipe
    fd = r.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    w.send(1)
    assert select.select([fd], [], [], 1)[0] == [fd]
    assert mp_connection.wait([r], 1) == [r]
    r.recv()
    assert select.select([fd], [], [], 0)[0] == []
    assert mp_connection.wait([r], 0.05) == []
    w.close()
    assert select.select([fd], [], [], 1)[0] == [fd]
    assert mp_connection.wait([r], 1) == [r]


def test_message_waiting_before_fileno_is_seen(pipe, mp_connection):
    r, w = pipe
    w.send("early")
    assert mp_connection.wait([r], 0) == [r]
    assert select.select([r], [], [], 1)[0] == [r]


def test_wait_mixed_objects(mp, mp_connection):
    a, b = mp.Pipe()
    c, d = mp.Pipe(duplex=False)
    s1, s2 = socket.socketpair()
    try:
        assert mp_connection.wait([a, c, s1], 0) == []
        s2.send(b"x")
        assert mp_connection.wait([a, c, s1], 1) == [s1]
        b.send(1)
        assert set(mp_connection.wait([a, c, s1], 1)) == {a, s1}
        threading.Timer(0.1, d.send, ("late",)).start()
        assert mp_connection.wait([c], 5) == [c]
        p = mp.Process(target=T.exit_at_once, args=(None,))
        p.start()
        assert mp_connection.wait([p.sentinel], 10) == [p.sentinel]
        p.join()
    finally:
        s1.close()
        s2.close()


@pytest.mark.timeout(60)
def test_many_messages_between_threads(mp):
    a, b = mp.Pipe()
    n = 20000

    def echo():
        for _ in range(n):
            b.send(b.recv())

    t = threading.Thread(target=echo)
    t.start()
    for i in range(n):
        a.send(i)
        assert a.recv() == i
    t.join()


# ---------------------------------------------------------------------------
# between processes


@pytest.mark.timeout(60)
def test_connection_as_process_argument(mp):
    a, b = mp.Pipe()
    p = mp.Process(target=T.echo, args=(b,))
    p.start()
    b.close()  # the child holds its own copy
    for obj in (1, "two", [3] * 1000, b"x" * 3_000_000):
        a.send(obj)
        assert a.recv() == obj
    a.send(None)
    p.join(10)
    assert p.exitcode == 0
    with pytest.raises(EOFError):  # the child closed its end and exited
        a.recv()


@pytest.mark.timeout(60)
def test_simplex_ends_as_process_arguments(mp):
    r, w = mp.Pipe(duplex=False)
    p = mp.Process(target=T.send_then_exit, args=(w, {"from": "child"}))
    p.start()
    w.close()
    assert r.recv() == {"from": "child"}
    p.join(10)
    with pytest.raises(EOFError):
        r.recv()


@pytest.mark.timeout(60)
def test_connection_sent_through_a_connection(mp):
    control, child_control = mp.Pipe()
    p = mp.Process(target=T.recv_connection_then_echo, args=(child_control,))
    p.start()
    child_control.close()
    a, b = mp.Pipe()
    control.send(b)  # to a process that is already running
    b.close()
    a.send("hello")
    assert a.recv() == ("echo", "hello")
    assert control.recv() == "done"
    p.join(10)
    assert p.exitcode == 0
    with pytest.raises(EOFError):
        a.recv()


@pytest.mark.timeout(60)
def test_connection_pickled_outside_a_send(mp):
    # what a queue does: pickle first, move the bytes later
    control, child_control = mp.Pipe()
    p = mp.Process(target=T.recv_pickled_connection, args=(child_control,))
    p.start()
    a, b = mp.Pipe()
    control.send_bytes(mp.reducer.ForkingPickler.dumps(b))
    assert a.recv() == ("via sharer", p.pid)
    assert control.recv() == "done"
    p.join(10)


@pytest.mark.timeout(60)
def test_peer_killed_mid_message_raises(mp):
    r, w = mp.Pipe(duplex=False)
    p = mp.Process(target=T.send_huge_then_hang, args=(w, 64 << 20))
    p.start()
    w.close()
    assert r.poll(30)
    time.sleep(0.2)  # the child is now blocked with the ring full
    p.kill()
    p.join(10)
    t = time.monotonic()
    with pytest.raises((EOFError, OSError)):
        r.recv_bytes()
    assert time.monotonic() - t < 5


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_a_writer_killed_mid_message_does_not_block_the_others():
    """A writer killed while it held the end's writer lock (mid-message,
    the ring full) is judged dead, and a writer in another process takes
    the lock over instead of waiting for ever; the reader sees the cut
    message as an error, not a hang."""
    r, w = gomp.Pipe(duplex=False)
    p = gomp.Process(target=T.send_huge_then_hang, args=(w, 64 << 20))
    p.start()
    try:
        assert r.poll(30)
        time.sleep(0.2)  # the child now holds the lock, blocked with the ring full
        p.kill()
        p.join(10)
        sent = threading.Event()
        sender = threading.Thread(target=lambda: (w.send_bytes(b"after"), sent.set()))
        sender.start()
        cut = []
        reader = threading.Thread(target=lambda: cut.append(pytest.raises(OSError, r.recv_bytes)))
        reader.start()
        assert sent.wait(10), "the dead writer's lock was never taken over"
        sender.join(10)
        w.close()
        reader.join(10)
        assert not reader.is_alive() and cut
    finally:
        p.kill()
        p.join(10)
        r.close()


@pytest.mark.timeout(60)
def test_reader_exits_while_writer_blocked(mp):
    r, w = mp.Pipe(duplex=False)
    p = mp.Process(target=T.exit_at_once, args=(r,))
    p.start()
    r.close()
    with pytest.raises(BrokenPipeError):
        w.send_bytes(b"x" * (16 << 20))
    p.join(10)


@pytest.mark.timeout(60)
def test_dead_peer_makes_fileno_readable(mp, mp_connection):
    a, b = mp.Pipe()
    p = mp.Process(target=T.exit_at_once, args=(b,))
    p.start()
    b.close()
    assert mp_connection.wait([a], 30) == [a]
    with pytest.raises(EOFError):
        a.recv()
    p.join(10)


# ---------------------------------------------------------------------------
# Ctrl-C


def _interrupt(code: str) -> str:
    proc = scripts.start_code(code, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert time.monotonic() - t < 3
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


BLOCKED = {
    "recv": "b.recv()",
    "recv_bytes": "b.recv_bytes()",
    "poll": "b.poll(None)",
    "wait": "connection.wait([b])",
    "send_full": "a.send_bytes(bytes(64 << 20))",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call", sorted(BLOCKED))
def test_ctrl_c_interrupts_blocked_call(call):
    out = _interrupt(f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp
        from gomp import connection
        a, b = gomp.Pipe()
        print("ready", flush=True)
        try:
            {BLOCKED[call]}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    assert "interrupted" in out, out


@pytest.mark.gomp_extension
def test_plain_pickle_gives_a_working_copy():
    # pickle.dumps (not only gomp's pickler) carries the descriptors too
    a, b = gomp.Pipe()
    b2 = pickle.loads(pickle.dumps(b))
    assert b2._handle != b._handle
    b.close()
    a.send("to the copy")
    assert b2.recv() == "to the copy"
    b2.close()
    with pytest.raises(EOFError):
        a.recv()


def test_small_and_large_messages_interleaved(mp):
    # small ones are copied by the C fast path, large ones stream through Go
    a, b = mp.Pipe()
    sizes = [10, 300_000, 5, 2_500_000, 0, 100_000, 1, 1 << 20, 3]
    payloads = [os.urandom(n) for n in sizes]

    def sender():
        for p in payloads:
            a.send_bytes(p)
        a.send(payloads)

    t = threading.Thread(target=sender)
    t.start()
    buf = bytearray(max(sizes) + 1)
    for i, p in enumerate(payloads):
        if i % 2:
            n = b.recv_bytes_into(buf, 1)
            assert buf[1:1 + n] == p
        else:
            assert b.recv_bytes() == p
    assert b.recv() == payloads
    t.join()


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_no_descriptor_leaks():
    # the first use loads Go and starts the sharer, which keep descriptors
    a, b = gomp.Pipe()
    pickle.loads(pickle.dumps(b)).close()
    a.close()
    b.close()
    before = _open_fds()
    for i in range(300):
        a, b = gomp.Pipe(duplex=bool(i % 2))
        if i % 3 == 0:
            a.fileno()
        if i % 5 == 0:
            c = pickle.loads(pickle.dumps(b))  # a copy through the sharer
            c.close()
        b.close()
        a.close()
    # the sharer's thread closes what it handed out; give it a moment
    deadline = time.monotonic() + 5
    while _open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_fds() <= before


def test_connections_passed_in_a_message_leave_no_descriptors():
    a, b = gomp.Pipe()
    x, y = gomp.Pipe()
    gc.collect()  # earlier tests' garbage closes its descriptors now, not during the loop
    before = _open_fds()
    for _ in range(50):
        a.send([x, y])
        x2, y2 = b.recv()
        x2.send("through the copy")
        assert y.recv() == "through the copy"
        x2.close()
        y2.close()
    assert _open_fds() <= before


@pytest.mark.timeout(60)
def test_send_to_a_killed_peer_fails_soon(mp):
    # a killed process never closes its end; its socket tells
    a, b = mp.Pipe()
    p = mp.Process(target=T.echo, args=(b,))
    p.start()
    b.close()
    a.send(1)
    assert a.recv() == 1
    p.kill()
    p.join(10)
    time.sleep(0.05)
    with pytest.raises(BrokenPipeError):
        for _ in range(100):
            a.send("into the void")
            time.sleep(0.001)


@pytest.mark.gomp_extension
@pytest.mark.timeout(120)
def test_several_processes_write_to_one_end():
    # each message arrives whole, even with writers in several processes
    r, w = gomp.Pipe(duplex=False)
    procs = [gomp.Process(target=T.send_tagged, args=(w, tag, 200)) for tag in range(4)]
    for p in procs:
        p.start()
    w.close()
    counts = {}
    done = 0
    while done < len(procs):
        data = r.recv_bytes()
        if data[:1] == b"\x80":  # a pickle: the closing object
            assert pickle.loads(data)[0] == "done"
            done += 1
            continue
        assert data.count(data[:1]) == len(data), "a message mixes two writers' bytes"
        counts[data[0]] = counts.get(data[0], 0) + 1
    assert counts == {tag: 200 for tag in range(4)}
    for p in procs:
        p.join(10)
        assert p.exitcode == 0


@pytest.mark.gomp_extension
@pytest.mark.timeout(60)
def test_several_threads_write_to_one_end():
    r, w = gomp.Pipe(duplex=False)
    threads = [threading.Thread(target=T.send_tagged, args=(w, tag, 300)) for tag in range(4)]
    for t in threads:
        t.start()
    seen = 0
    while seen < 4 * 301:
        data = r.recv_bytes()
        seen += 1
        if data[:1] != b"\x80":
            assert data.count(data[:1]) == len(data)
    for t in threads:
        t.join()

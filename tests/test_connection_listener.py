"""Listener, Client and the authentication handshake, against the stdlib too."""
from __future__ import annotations

import multiprocessing.connection as std
import os
import shutil
import socket
import struct
import subprocess
import textwrap
import threading
import time

import pytest

import gomp
from gomp import connection
from gomp.context import AuthenticationError

import _connection_targets as T

from test_connection import _interrupt

KEY = b"secret key"
FAMILIES = ["AF_UNIX", "AF_INET"]


def _serve(listener, handler):
    """Accept one connection in a thread; handler(conn) runs on it. The
    thread's outcome (result or exception) lands in the returned list."""
    out = []

    def run():
        try:
            with listener.accept() as c:
                out.append(handler(c))
        except BaseException as e:  # noqa: B902 - reported to the test
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _echo_once(c):
    obj = c.recv()
    c.send(("echo", obj))
    data = c.recv_bytes()
    c.send_bytes(data[::-1])
    return "ok"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("authkey", [None, KEY], ids=["nokey", "key"])
@pytest.mark.parametrize("server,client", [("gomp", "gomp"), ("gomp", "stdlib"),
                                           ("stdlib", "gomp")])
def test_listener_client(family, authkey, server, client):
    L = connection.Listener if server == "gomp" else std.Listener
    C = connection.Client if client == "gomp" else std.Client
    with L(family=family, authkey=authkey) as listener:
        t, out = _serve(listener, _echo_once)
        with C(listener.address, authkey=authkey) as c:
            c.send({"n": 1})
            assert c.recv() == ("echo", {"n": 1})
            big = os.urandom(100_000)  # over the one-write size
            c.send_bytes(big)
            buf = bytearray(len(big) + 5)
            assert c.recv_bytes_into(buf, 5) == len(big)
            assert buf[5:] == big[::-1]
        t.join(10)
        assert out == ["ok"]
        if family == "AF_INET" and server == "gomp":
            assert listener.last_accepted[0] == "127.0.0.1"


def test_listener_properties(tmp_path):
    addr = str(tmp_path / "sock")
    with connection.Listener(addr) as listener:
        assert listener.address == addr
        assert listener.last_accepted is None
        assert os.path.exists(addr)
    assert not os.path.exists(addr)  # removed on close
    with pytest.raises(OSError):
        listener.accept()
    with connection.Listener(("127.0.0.1", 0)) as listener:
        host, port = listener.address
        assert host == "127.0.0.1" and port > 0
    with pytest.raises(TypeError):
        connection.Listener(authkey="not bytes")
    with pytest.raises(ValueError):
        connection.Listener(family="AF_PIPE")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("server,client", [("gomp", "gomp"), ("gomp", "stdlib"),
                                           ("stdlib", "gomp")])
def test_wrong_key(server, client):
    L = connection.Listener if server == "gomp" else std.Listener
    C = connection.Client if client == "gomp" else std.Client
    with L(authkey=KEY) as listener:
        t, out = _serve(listener, lambda c: "accepted")
        with pytest.raises((AuthenticationError, std.AuthenticationError, EOFError,
                            ConnectionError)):
            C(listener.address, authkey=b"wrong")
        t.join(10)
        assert len(out) == 1 and isinstance(out[0], (AuthenticationError,
                                                     std.AuthenticationError))


# what a Listener's accept() raises for a client that sends this and hangs
# up: the stdlib's errors, an AuthenticationError only for a wrong answer
GARBAGE = {
    "huge length": (b"\x7f\x7f\x7f\x7f" + b"x" * 60, OSError),
    "64-bit length": (b"\xff\xff\xff\xff" + b"x" * 8, OSError),
    "cut short": (b"\x00\x00\x00\x40" + b"y" * 10, OSError),
    "wrong answer": (b"\x00\x00\x00\x05#CHAL", AuthenticationError),
    "nothing": (b"", EOFError),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_client_does_not_stop_the_listener(garbage):
    data, error = GARBAGE[garbage]
    with connection.Listener(family="AF_INET", authkey=KEY) as listener:
        def garbage_client():
            with socket.create_connection(listener.address) as s:
                try:
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(4096):
                        pass
                except OSError:
                    pass  # the listener hung up first

        g = threading.Thread(target=garbage_client)
        g.start()
        with pytest.raises(error) as info:
            listener.accept()
        if error is not AuthenticationError:
            assert not isinstance(info.value, AuthenticationError)
        g.join(10)
        t, out = _serve(listener, _echo_once)
        with connection.Client(listener.address, authkey=KEY) as c:
            c.send(1)
            assert c.recv() == ("echo", 1)
            c.send_bytes(b"ab")
            assert c.recv_bytes() == b"ba"
        t.join(10)
        assert out == ["ok"]


@pytest.mark.timeout(30)
def test_silent_client_times_out(monkeypatch):
    monkeypatch.setattr(connection, "HANDSHAKE_TIMEOUT", 0.3)
    with connection.Listener(authkey=KEY) as listener:
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(listener.address)
        t = time.monotonic()
        # silence is no wrong key
        with pytest.raises(TimeoutError):
            listener.accept()
        assert time.monotonic() - t < 5
        silent.close()
        t, out = _serve(listener, _echo_once)
        with connection.Client(listener.address, authkey=KEY) as c:
            c.send(2)
            assert c.recv() == ("echo", 2)
            c.send_bytes(b"xy")
            assert c.recv_bytes() == b"yx"
        t.join(10)


def _fake_server(family, script):
    """A server that follows script (a list of "send:<bytes>", "recv" and
    "close") with the first client, in a thread; returns its address."""
    srv = socket.socket(getattr(socket, family))
    srv.bind(("127.0.0.1", 0) if family == "AF_INET" else connection.arbitrary_address(family))
    srv.listen(1)

    def run():
        with srv:
            s, _ = srv.accept()
            with s:
                for step in script:
                    if step == "recv":
                        head = s.recv(4)
                        if len(head) == 4:
                            s.recv(struct.unpack("!i", head)[0])
                    elif step.startswith("send:"):
                        s.sendall(struct.pack("!i", len(step) - 5) + step[5:].encode("latin-1"))

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()


# where a dying server stops: before its challenge, after it, after its
# welcome (the client has sent its own challenge)
HANG_UPS = {
    "at once": [],
    "after its challenge": ["send:#CHALLENGE#{sha256}" + "c" * 40],
    "before its welcome": ["send:#CHALLENGE#{sha256}" + "c" * 40, "recv"],
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("where", list(HANG_UPS), ids=list(HANG_UPS))
def test_server_hanging_up_is_no_authentication_error(family, where):
    address = _fake_server(family, HANG_UPS[where])
    with pytest.raises((EOFError, ConnectionError)) as info:
        connection.Client(address, authkey=KEY)
    assert not isinstance(info.value, AuthenticationError)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("where", ["at once", "after reading the challenge"])
def test_client_hanging_up_is_no_authentication_error(family, where):
    with connection.Listener(family=family, authkey=KEY) as listener:
        def client():
            with socket.socket(getattr(socket, family)) as s:
                s.connect(listener.address)
                if where != "at once":
                    head = s.recv(4)
                    s.recv(struct.unpack("!i", head)[0])

        g = threading.Thread(target=client)
        g.start()
        with pytest.raises((EOFError, ConnectionError)) as info:
            listener.accept()
        assert not isinstance(info.value, AuthenticationError)
        g.join(10)


def test_wrong_digest_is_an_authentication_error_even_if_the_peer_left():
    class AnswersWrongThenLeaves:
        """A peer whose answer is wrong, gone before the FAILURE reply."""

        def send_bytes(self, data):
            if data == connection.FAILURE:
                raise BrokenPipeError(32, "Broken pipe")

        def recv_bytes(self, maxlength=None):
            return b"{sha256}" + b"\0" * 32

    with pytest.raises(AuthenticationError):
        connection.deliver_challenge(AnswersWrongThenLeaves(), KEY)


@pytest.mark.timeout(30)
def test_tcp_connections_send_at_once():
    # Nagle's algorithm held the first request after the handshake till
    # the peer's delayed ACK: 40 ms for each new connection to a manager
    with connection.Listener(("127.0.0.1", 0), authkey=KEY) as listener:
        t, out = _serve(listener, lambda c: socket.socket(fileno=os.dup(c.fileno())))
        with connection.Client(listener.address, authkey=KEY) as c:
            t.join(10)
            with socket.socket(fileno=os.dup(c.fileno())) as mine, out[0] as theirs:
                for s in (mine, theirs):
                    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("deliver,answer", [("gomp", "gomp"), ("gomp", "stdlib"),
                                            ("stdlib", "gomp")])
def test_challenge_functions(deliver, answer):
    D = connection.deliver_challenge if deliver == "gomp" else std.deliver_challenge
    A = connection.answer_challenge if answer == "gomp" else std.answer_challenge
    for key, ok in ((KEY, True), (b"other", False)):
        s1, s2 = socket.socketpair()
        c1, c2 = connection.Connection(s1.detach()), connection.Connection(s2.detach())
        errors = []

        def run():
            try:
                A(c2, key)
            except Exception as e:
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        if ok:
            D(c1, KEY)
        else:
            with pytest.raises((AuthenticationError, std.AuthenticationError)):
                D(c1, KEY)
        t.join(10)
        assert bool(errors) != ok
        c1.close()
        c2.close()
    with pytest.raises(ValueError):
        connection.deliver_challenge(c1, "str key")


def test_huge_message_framing_from_the_wire():
    # the stdlib marks a message over 2 GiB by -1 and an 8-byte length
    s1, s2 = socket.socketpair()
    c = connection.Connection(s2.detach())
    s1.sendall(struct.pack("!iQ", -1, 5) + b"hello" + struct.pack("!i", 3) + b"abc")
    assert c.recv_bytes() == b"hello"
    assert c.recv_bytes() == b"abc"
    s1.close()
    with pytest.raises(EOFError):
        c.recv_bytes()
    c.close()


def test_socket_connection_truncated_message():
    s1, s2 = socket.socketpair()
    c = connection.Connection(s2.detach())
    s1.sendall(struct.pack("!i", 100) + b"short")
    s1.close()
    with pytest.raises(OSError):
        c.recv_bytes()
    c.close()


@pytest.mark.timeout(60)
def test_accepted_connection_as_process_argument():
    with connection.Listener(authkey=KEY) as listener:
        client = {}
        t = threading.Thread(target=lambda: client.setdefault(
            "c", connection.Client(listener.address, authkey=KEY)))
        t.start()
        server_side = listener.accept()
        t.join(10)
        p = gomp.Process(target=T.serve_one_echo, args=(server_side,))
        p.start()
        server_side.close()
        c = client["c"]
        c.send("through the child")
        assert c.recv() == "through the child"
        c.send(None)
        p.join(10)
        assert p.exitcode == 0
        c.close()


def test_wait_on_socket_connections():
    s1, s2 = socket.socketpair()
    a, b = connection.Connection(s1.detach()), connection.Connection(s2.detach())
    assert connection.wait([a, b], 0) == []
    a.send("x")
    assert connection.wait([a, b], 1) == [b]
    assert b.poll(0)
    assert b.recv() == "x"
    a.close()
    b.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call", ["accept", "recv"])
def test_ctrl_c_interrupts_socket_waits(call):
    code = {"accept": "listener.accept()", "recv": "c.recv()"}[call]
    out = _interrupt(f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
        import gomp
        from gomp import connection
        gomp.Pipe()  # the Go runtime is loaded, as in a real program
        listener = connection.Listener(family="AF_INET")
        if {call!r} == "recv":
            import threading
            kept = []
            threading.Thread(target=lambda: kept.append(listener.accept()), daemon=True).start()
            c = connection.Client(listener.address)
        print("ready", flush=True)
        try:
            {code}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    assert "interrupted" in out, out


def _newer_pythons():
    """Interpreters of Python 3.12+ (the {sha256} challenge) on this machine."""
    found = []
    candidates = [shutil.which("python3.12"), shutil.which("python3.13")]
    candidates += [os.path.join(root, v, "bin", "python3")
                   for root in [os.path.expanduser("~/.pyenv/versions")]
                   if os.path.isdir(root) for v in sorted(os.listdir(root))]
    for p in candidates:
        if not p or not os.path.exists(p):
            continue
        try:
            r = subprocess.run([p, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                               capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.stdout.strip() == "True":
            found.append(p)
            break
    return found


NEWER_PYTHONS = _newer_pythons()


@pytest.mark.timeout(60)
@pytest.mark.skipif(not NEWER_PYTHONS, reason="no Python 3.12+ to talk to")
@pytest.mark.parametrize("role", ["listener", "client"])
def test_interoperates_with_newer_stdlib(role):
    # Python 3.12 challenges with {sha256}; older versions with bare MD5
    python = NEWER_PYTHONS[0]
    if role == "listener":
        script = textwrap.dedent("""
            import sys
            from multiprocessing.connection import Listener
            with Listener(("127.0.0.1", 0), authkey=b"secret key") as l:
                print(l.address[1], flush=True)
                with l.accept() as c:
                    c.send_bytes(c.recv_bytes()[::-1])
        """)
        proc = subprocess.Popen([python, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            with connection.Client(("127.0.0.1", port), authkey=KEY) as c:
                c.send_bytes(b"abc")
                assert c.recv_bytes() == b"cba"
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    else:
        with connection.Listener(("127.0.0.1", 0), authkey=KEY) as listener:
            script = textwrap.dedent(f"""
                from multiprocessing.connection import Client
                with Client(("127.0.0.1", {listener.address[1]}), authkey=b"secret key") as c:
                    c.send_bytes(c.recv_bytes()[::-1])
            """)
            proc = subprocess.Popen([python, "-c", script])
            try:
                def talk(c):
                    c.send_bytes(b"xyz")
                    return c.recv_bytes()

                t, out = _serve(listener, talk)
                assert proc.wait(20) == 0
                t.join(10)
                assert out == [b"zyx"]
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

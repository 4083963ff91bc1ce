"""BaseManager: registration, servers reached by address from other
interpreters, authentication, and what happens when processes die."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import scripts

import gomp
from gomp import managers

import _managers_targets as T


def _start(code, **kw):
    """code in a child interpreter that imports gomp and the tests' targets;
    its stdout read by the test, its stderr the test's own."""
    kw.setdefault("stderr", None)
    return scripts.start([sys.executable, "-c", code], env=scripts.env(scripts.TESTS), **kw)


@pytest.fixture
def mymanager():
    m = T.MyManager()
    m.start()
    yield m
    m.shutdown()


def test_register_autoproxy(mymanager):
    c = mymanager.Counter(5)
    assert c.incr() == 6 and c.incr(by=4) == 10 and c.value() == 10
    assert set(c._exposed_) >= {"incr", "value", "fail", "sibling"}
    assert not hasattr(c, "_private")


def test_register_proxytype_and_exposed(mymanager):
    c = mymanager.CounterP(1)
    assert type(c) is T.CounterProxy
    assert c.incr() == 2
    e = mymanager.CounterExposed()
    assert e.incr() == 1
    assert e._private() == "private"
    with pytest.raises(AttributeError):
        e.value


def test_method_to_typeid_returns_a_proxy(mymanager):
    c = mymanager.counters(1)
    s = c.sibling()
    assert isinstance(s, managers.BaseProxy)
    assert s.value() == 101
    assert s.incr() == 102
    assert c.value() == 1


def test_create_method_false():
    class M(managers.BaseManager):
        pass
    M.register("hidden", dict, create_method=False)
    assert not hasattr(M, "hidden")
    assert "hidden" in M._registry and "hidden" not in managers.BaseManager._registry


def test_exception_in_method_reraised_with_traceback(mymanager):
    c = mymanager.Counter()
    with pytest.raises(ValueError, match="boom") as info:
        c.fail("boom")
    tb = str(info.value.__cause__)
    assert "Traceback" in tb and "in fail" in tb and "raise ValueError(message)" in tb
    assert c.incr() == 1  # the connection is still in step


def test_unpicklable_return_value(mymanager):
    c = mymanager.Counter()
    with pytest.raises(managers.RemoteError, match="Unserializable"):
        c.give_unpicklable()
    with pytest.raises(managers.RemoteError, match="Unserializable"):
        c.give_lock()
    assert c.incr() == 1


def test_start_with_initializer(mymanager, tmp_path):
    flag = tmp_path / "flag"
    m = T.MyManager()
    m.start(T.set_flag, (str(flag),))
    try:
        assert int(flag.read_text()) == m._process.pid
    finally:
        m.shutdown()
    with pytest.raises(TypeError):
        T.MyManager().start(initializer=42)


@pytest.mark.timeout(30)
def test_proxy_in_child_with_custom_manager(mymanager):
    c = mymanager.CounterP(0)
    ps = [gomp.Process(target=T.use_counter_proxy, args=(c, 20)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(20)
        assert p.exitcode == 0
    assert c.value() == 40


@pytest.mark.timeout(30)
def test_socket_transport(mymanager, monkeypatch):
    # what a client on another machine uses: no shared-memory pipe
    monkeypatch.setattr(managers, "_want_pipe", lambda address: False)
    import threading
    out = []

    def run():
        c = mymanager.Counter(1)
        conn = c._tls.connection
        out.append(type(conn).__name__)
        out.append(c.incr())
        with pytest.raises(ValueError):
            c.fail("x")
        out.append(c.incr())

    t = threading.Thread(target=run)  # a thread has its own connection
    t.start()
    t.join(20)
    assert out == ["Connection", 2, 3]


@pytest.mark.timeout(30)
def test_falls_back_to_socket_when_pipe_cannot_be_opened(mymanager, monkeypatch):
    from gomp import connection

    def refuse(self):
        raise OSError("no way to reach the manager's descriptors")
    monkeypatch.setattr(connection._SharedFds, "detach", refuse)
    import threading
    out = []

    def run():
        c = mymanager.Counter(1)
        out.append(type(c._tls.connection).__name__)
        out.append(c.incr())

    t = threading.Thread(target=run)
    t.start()
    t.join(20)
    assert out == ["Connection", 2]


SERVER = textwrap.dedent("""
    import sys
    import _managers_targets as T
    m = T.MyManager(address=("127.0.0.1", 0), authkey=b"secret")
    server = m.get_server()
    print(server.address[1], flush=True)
    server.serve_forever()
""")

CLIENT = textwrap.dedent("""
    import sys
    from gomp.managers import BaseManager, DictProxy
    class Remote(BaseManager):
        pass
    Remote.register("shared", proxytype=DictProxy)
    m = Remote(address=("127.0.0.1", int(sys.argv[1])), authkey=b"secret")
    m.connect()
    d = m.shared()
    d["from_client"] = d["from_test"] * 2
    print("ok", flush=True)
""")


@pytest.mark.timeout(60)
def test_server_by_address_from_other_interpreters():
    server = _start(SERVER)
    try:
        port = int(server.stdout.readline())
        m = T.MyManager(address=("127.0.0.1", port), authkey=b"secret")
        m.connect()
        d = m.shared()
        d["from_test"] = 21
        # a client on the server's machine talks over shared memory
        assert type(d._tls.connection).__name__ == "PipeConnection"
        r = scripts.run([sys.executable, "-c", CLIENT, str(port)],
                        env=scripts.env(scripts.TESTS), timeout=30)
        assert r.stdout.strip() == "ok", r.stderr
        assert d["from_client"] == 42
        c = m.Counter(3)
        assert c.incr() == 4

        bad = T.MyManager(address=("127.0.0.1", port), authkey=b"wrong")
        with pytest.raises(gomp.AuthenticationError):
            bad.connect()
        # a failed client does not disturb the server
        assert d["from_test"] == 21
    finally:
        server.kill()
        server.wait()


@pytest.mark.timeout(30)
def test_wrong_authkey_on_started_manager(mymanager):
    other = T.MyManager(address=mymanager.address, authkey=b"not the key")
    with pytest.raises(gomp.AuthenticationError):
        other.connect()
    right = T.MyManager(address=mymanager.address, authkey=mymanager._authkey)
    right.connect()
    assert right.Counter(1).incr() == 2


@pytest.mark.timeout(30)
def test_client_killed_mid_call_does_not_stop_server():
    m = gomp.Manager()
    try:
        q = m.Queue()
        ev = m.Event()
        d = m.dict()
        p = gomp.Process(target=T.block_on_queue, args=(q, ev))
        p.start()
        assert ev.wait(10)
        time.sleep(0.1)  # in q.get() now
        p.kill()
        p.join(10)
        d["still"] = "serving"
        assert d["still"] == "serving"
        assert m.list([1])[0] == 1
    finally:
        m.shutdown()


OWNER = textwrap.dedent("""
    import os, sys, time
    import gomp
    m = gomp.Manager()
    d = m.dict()
    print(m._process.pid, flush=True)
    time.sleep(60)
""")


@pytest.mark.timeout(60)
def test_manager_exits_when_owner_is_killed():
    owner = _start(OWNER)
    try:
        pid = int(owner.stdout.readline())
        assert scripts.pid_alive(pid)
        owner.kill()
        owner.wait()
        assert scripts.wait_gone(pid, timeout=10), "the manager outlived its owner"
    finally:
        owner.kill()
        owner.wait()


CTRL_C = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a background job
    import gomp
    m = gomp.Manager()
    q = m.Queue()
    d = m.dict()
    print("waiting", flush=True)
    try:
        q.get()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    d["after"] = 1
    print("manager alive", d["after"], flush=True)
    m.shutdown()
""")


@pytest.mark.timeout(60)
def test_ctrl_c_interrupts_a_blocked_call():
    proc = _start(CTRL_C, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.3)
        t = time.monotonic()
        # the whole process group, as a terminal does: the manager ignores it
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.stdout.readline().strip() == "interrupted"
        assert time.monotonic() - t < 2
        # the rest through the same buffered reader (communicate() would
        # miss what readline() already buffered)
        rest = proc.stdout.read()
        proc.wait(30)
        err = proc.stderr.read()
        assert rest.strip() == "manager alive 1", (proc.returncode, err)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(30)
def test_bound_method_of_proxy_sent_to_running_process():
    # the way Pool.map(queue_proxy.put, ...) reaches its workers: pickled
    # into an already running process, which takes its own reference
    m = gomp.Manager()
    try:
        q = m.Queue()
        a, b = gomp.Pipe()
        p = gomp.Process(target=T.call_received, args=(b, 5))
        p.start()
        a.send(q.put)
        assert a.recv() == "done"
        p.join(10)
        assert p.exitcode == 0
        assert [q.get(timeout=5) for _ in range(5)] == [0, 1, 2, 3, 4]
        # the child's reference went away with it
        before = m._number_of_objects()
        del q
        assert m._number_of_objects() == before - 1
    finally:
        m.shutdown()


@pytest.mark.timeout(30)
def test_xmlrpclib_serializer():
    m = managers.SyncManager(serializer="xmlrpclib")
    m.start()
    try:
        d = m.dict()
        d["a"] = 1
        assert d["a"] == 1 and len(d) == 1
        with pytest.raises(managers.RemoteError, match="KeyError"):
            d["missing"]
    finally:
        m.shutdown()


def _wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["idle_after_call", "fetch_forever"])
def test_killed_client_frees_its_server_thread(mymanager, target):
    # killed while the server waits for its next request, and while the
    # server is writing a large reply it no longer reads
    threads = mymanager.threads()
    counter = mymanager.Counter()
    started = mymanager.Counter()
    before = threads.count()
    p = gomp.Process(target=getattr(T, target), args=(counter, started))
    p.start()
    assert _wait_for(lambda: started.value() == 1)
    assert threads.count() == before + 1  # the child's connection
    time.sleep(0.2)
    p.kill()
    p.join(10)
    assert _wait_for(lambda: threads.count() == before), threads.count()
    assert counter.incr() >= 1


def test_get_server_and_start_on_started_manager(mymanager):
    with pytest.raises(gomp.ProcessError):
        mymanager.get_server()
    with pytest.raises(gomp.ProcessError):
        mymanager.start()


def test_connect_to_nothing_raises():
    m = T.MyManager(address=("127.0.0.1", 1), authkey=b"k")
    with pytest.raises(OSError):
        m.connect()


@pytest.mark.timeout(30)
def test_registered_lambda_reaches_the_server():
    # the registry travels to the manager's process pickled by value
    class LambdaManager(managers.BaseManager):
        pass
    LambdaManager.register("squares", lambda n: [i * i for i in range(n)],
                           proxytype=managers.ListProxy)
    with LambdaManager() as m:
        assert m.squares(4)[:] == [0, 1, 4, 9]


@pytest.mark.timeout(120)
def test_killed_manager_gives_connection_errors_not_authentication_error():
    # new connections are being opened when the manager dies: a client cut
    # off half-way through the handshake sees the stdlib's errors
    errors = []
    for trial in range(20):
        m = managers.SyncManager()
        m.start()
        try:
            failed = []

            def connect_again_and_again():
                while True:
                    try:
                        managers._open_connection(m.address, m._authkey, "pickle").close()
                    except Exception as e:
                        failed.append(e)
                        return

            t = threading.Thread(target=connect_again_and_again)
            t.start()
            time.sleep(0.005 * (trial % 5))
            os.kill(m._process.pid, signal.SIGKILL)
            t.join(30)
            assert failed, "the manager served after it was killed"
            errors.extend(failed)
        finally:
            m.shutdown()
    wrong = [e for e in errors if isinstance(e, gomp.AuthenticationError)
             or not isinstance(e, (EOFError, OSError))]
    assert not wrong, wrong


def test_manager_at_a_path_removes_its_socket_at_shutdown(tmp_path):
    # as the stdlib's: the listener's file goes when the manager's process ends
    address = str(tmp_path / "manager")
    m = managers.SyncManager(address=address)
    m.start()
    try:
        assert m.address == address and os.path.exists(address)
        assert m.list([1])[0] == 1
    finally:
        m.shutdown()
    assert not os.path.exists(address)

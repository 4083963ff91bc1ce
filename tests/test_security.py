"""What another user can reach, and what a client can do to a server.

Every socket gomp listens on is a file in a 0700 per-user directory, and
gomp's own servers (a manager, the descriptor sharer) hang up on a Unix
peer of another user before reading a byte. A client that says nothing,
or garbage, holds no thread and delays no other client; a failure on one
connection closes that connection only.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

import gomp
from gomp import managers, resource_sharer

import _security_targets as T
import scripts

# how long a legitimate call may take while other clients misbehave
LATENCY = 0.100
SILENT_CLIENTS = 200


def _threads(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no thread count for %d" % pid)


def _fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def _settle(measure, timeout: float = 10.0) -> int:
    """measure() once it has stopped changing for a moment."""
    deadline = time.monotonic() + timeout
    last = measure()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = measure()
        if now == last:
            return now
        last = now
    return last


def _connect_silently(address, n: int) -> "list[socket.socket]":
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(family)
            socks.append(s)
            # blocking: a full Unix backlog makes the connect wait, not fail
            s.connect(address)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _timed_fresh_call(d) -> float:
    """Time of a call made from a new thread: a new connection to the
    manager (authentication, the shared-memory pipe) and the call."""
    out = []

    def run():
        t = time.perf_counter()
        try:
            d["k"]
        except BaseException as e:  # noqa: B902 - reported to the test
            out.append(e)
        else:
            out.append(time.perf_counter() - t)

    th = threading.Thread(target=run)
    th.start()
    th.join(30)
    assert out, "the call did not return"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _timed_call(d) -> float:
    t = time.perf_counter()
    d["k"]
    return time.perf_counter() - t


def _hung_up(s: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closed s (after whatever it sent)."""
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        return False
    except OSError:
        pass
    return True


@pytest.fixture
def manager():
    m = gomp.Manager()
    yield m
    m.shutdown()


# ---------------------------------------------------------------------------
# the manager's address


def test_manager_default_address_is_a_socket_in_a_private_directory(manager):
    address = manager.address
    assert type(address) is str  # as the stdlib's
    st = os.stat(address)
    assert stat.S_ISSOCK(st.st_mode)
    parent = os.stat(os.path.dirname(address))
    assert stat.S_IMODE(parent.st_mode) == 0o700
    assert parent.st_uid == os.getuid()
    assert manager.dict({"a": 1})["a"] == 1


# ---------------------------------------------------------------------------
# clients that say nothing, or garbage


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["unix", "tcp"])
def test_silent_clients_cost_the_manager_no_thread_and_delay_no_call(where):
    address = ("127.0.0.1", 0) if where == "tcp" else None
    m = managers.SyncManager(address=address)
    m.start()
    silent = []
    try:
        d = m.dict({"k": 1})
        pid = m._process.pid
        _timed_fresh_call(d)  # the manager's descriptor sharer is running
        threads = _settle(lambda: _threads(pid))
        fds = _settle(lambda: _fds(pid))
        silent = _connect_silently(m.address, SILENT_CLIENTS)
        fresh = [_timed_fresh_call(d) for _ in range(5)]
        calls = [_timed_call(d) for _ in range(5)]
        print("with %d silent clients: new connection + call %s ms, call %s ms" % (
            SILENT_CLIENTS, ["%.1f" % (t * 1e3) for t in fresh],
            ["%.2f" % (t * 1e3) for t in calls]))
        assert max(calls) < LATENCY
        assert sorted(fresh)[len(fresh) // 2] < LATENCY, fresh
        assert max(fresh) < 10 * LATENCY, fresh
        # no thread for a client that did not authenticate, and at most
        # MAX_UNAUTHENTICATED of them kept open
        assert _settle(lambda: _threads(pid)) <= threads + 1
        assert _settle(lambda: _fds(pid)) <= fds + managers.MAX_UNAUTHENTICATED + 4
        hung_up = sum(_hung_up(s, 0.5) for s in silent[:20])
        assert hung_up == 20  # the oldest made room for newer ones
    finally:
        for s in silent:
            s.close()
        m.shutdown()


@pytest.mark.timeout(60)
def test_manager_hangs_up_on_a_silent_client_after_its_deadline():
    m = managers.SyncManager()
    m.start(initializer=T.set_auth_timeout, initargs=(0.3,))
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(m.address)
            t = time.monotonic()
            assert _hung_up(s, 10)
            assert time.monotonic() - t < 3
        assert m.dict({"k": 2})["k"] == 2
    finally:
        m.shutdown()


def _frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


GARBAGE = {
    "huge length": b"\x7f\xff\xff\xff" + b"x" * 64,
    "negative length": b"\xff\xff\xff\xfe",
    "64-bit length": b"\xff\xff\xff\xff" + b"\x7f" * 8,
    "wrong answer": _frame(b"{sha256}" + b"\0" * 32),
    "not a digest": _frame(b"#CHALLENGE#" + b"x" * 40),
    "half a message": b"\x00\x00\x00\x40" + b"y" * 10,
    "noise": bytes(range(256)) * 4,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_does_not_disturb_the_manager(manager, garbage):
    d = manager.dict({"k": 1})
    pid = manager._process.pid
    _timed_fresh_call(d)
    threads = _settle(lambda: _threads(pid))
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(manager.address)
        s.sendall(GARBAGE[garbage])
        fresh = _timed_fresh_call(d)
        assert _timed_call(d) < LATENCY
        assert fresh < 10 * LATENCY
        # a message cut short waits for the rest till the client's deadline
        assert _hung_up(s, managers.AUTH_TIMEOUT + 5)
    assert _settle(lambda: _threads(pid)) <= threads + 1
    assert manager.list([3])[0] == 3


@pytest.mark.timeout(60)
def test_thread_start_failure_hangs_up_on_that_client_only():
    m = managers.SyncManager()
    m.start(initializer=T.fail_next_thread_start_in_accepter)
    try:
        # the first client is authenticated, then finds no thread to serve it
        with pytest.raises((EOFError, ConnectionError)):
            m.dict()
        d = m.dict({"k": 3})
        assert d["k"] == 3
        assert m._process.is_alive()
    finally:
        m.shutdown()


# ---------------------------------------------------------------------------
# the descriptor sharer


@pytest.mark.timeout(60)
def test_resource_sharer_serves_a_fetch_past_silent_peers():
    r, w = os.pipe()
    try:
        first = resource_sharer.DupFd(r)
        address = resource_sharer._resource_sharer._address
        silent = _connect_silently(address, SILENT_CLIENTS)
        try:
            shared = resource_sharer.DupFd(w)
            t = time.perf_counter()
            fd = shared.detach()
            took = time.perf_counter() - t
            print("fetch with %d silent peers: %.2f ms" % (SILENT_CLIENTS, took * 1e3))
            os.write(fd, b"!")
            os.close(fd)
            assert os.read(r, 1) == b"!"
            assert took < LATENCY
            # the oldest peers made room for newer ones
            assert all(_hung_up(s, 1) for s in silent[:10])
        finally:
            for s in silent:
                s.close()
        os.close(first.detach())
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("garbage", [b"short", b"\xff" * 16, os.urandom(16) + b"tail"],
                         ids=["short", "wrong key", "long"])
def test_resource_sharer_garbage_peer(garbage):
    r, w = os.pipe()
    try:
        shared = resource_sharer.DupFd(r)
        address = resource_sharer._resource_sharer._address
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(address)
            s.sendall(garbage)
            fd = shared.detach()
            os.close(fd)
            if garbage == b"short":
                return  # waits for the rest of its key, till its deadline
            s.settimeout(5)
            reply = s.recv(16)
            assert reply in (b"\x00", b"")  # "gone", never a descriptor
    finally:
        os.close(r)
        os.close(w)


SHARER_OUT_OF_FDS = """
import os, resource, sys, time
from gomp import resource_sharer
shared = resource_sharer.DupFd(0)
print(resource_sharer._resource_sharer._address, shared._id[1].hex(), flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
hog = []
try:
    while True:
        hog.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
print("full", flush=True)
sys.stdin.readline()  # a peer is waiting to be accepted
t = time.process_time()
time.sleep(1.0)
print("cpu", time.process_time() - t, flush=True)
for fd in hog:
    os.close(fd)
sys.stdin.readline()
"""


@pytest.mark.timeout(60)
def test_resource_sharer_does_not_spin_when_out_of_descriptors(tmp_path):
    # accept() fails while the process has no descriptor left: the server
    # waits a moment instead of trying again at once, and serves the peer
    # once it can
    script = scripts.write(tmp_path / "sharer.py", SHARER_OUT_OF_FDS)
    proc = scripts.start([sys.executable, script], stdin=subprocess.PIPE, stderr=None)
    try:
        address, key = proc.stdout.readline().split()
        assert proc.stdout.readline().strip() == "full"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(address)
            s.sendall(bytes.fromhex(key))
            proc.stdin.write("\n")
            proc.stdin.flush()
            line = proc.stdout.readline().split()
            assert line[0] == "cpu"
            assert float(line[1]) < 0.3, "the server spun: %s s of CPU in 1 s" % line[1]
            msg, fds, _flags, _addr = socket.recv_fds(s, 1, 1)
            assert msg == b"\x01" and len(fds) == 1
            os.close(fds[0])
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(20) == 0
    finally:
        scripts.kill_quietly(proc)


# ---------------------------------------------------------------------------
# another user


@pytest.fixture(scope="module")
def other_user():
    """A user created for these tests (and removed after them), or a skip
    saying why there can be none."""
    if os.geteuid() != 0:
        pytest.skip("creating a second user needs root")
    useradd, userdel = shutil.which("useradd"), shutil.which("userdel")
    if useradd is None or userdel is None:
        pytest.skip("no useradd/userdel to create a second user with")
    name = "gompsec%d" % os.getpid()
    r = subprocess.run([useradd, "--no-create-home", "--user-group", "--shell",
                        "/usr/sbin/nologin", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a second user: %s" % (r.stderr.strip() or r.returncode))
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run([userdel, "--force", name], capture_output=True)


# runs as the other user: tries each socket and file, reports what happened
PROBE = r'''
import json, os, socket, sys

def reach(family, address, payload):
    s = socket.socket(family)
    s.settimeout(3)
    try:
        try:
            s.connect(address)
        except OSError as e:
            return "refused (%s)" % type(e).__name__
        try:
            if payload:
                s.sendall(payload)
            data = s.recv(64)
        except socket.timeout:
            return "REACHED: the server waits for us"
        except OSError as e:
            return "hung up (%s)" % type(e).__name__
        return "REACHED: got %r" % data if data else "hung up"
    finally:
        s.close()

def main(targets):
    out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
           "sockets": {}, "files": {}}
    for name, payload in targets["unix"]:
        address = "\0" + name[1:] if name.startswith("@") else name
        out["sockets"][name] = reach(socket.AF_UNIX, address, bytes.fromhex(payload))
    for port in targets["tcp"]:
        out["sockets"]["tcp:%d" % port] = reach(socket.AF_INET, ("127.0.0.1", port), b"")
    for path in targets["files"]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            out["files"][path] = "refused (%s)" % type(e).__name__
        else:
            os.close(fd)
            out["files"][path] = "OPENED"
    return out

if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
'''


def _run_as(user: pwd.struct_passwd, targets: dict) -> dict:
    """Run PROBE as user, with no supplementary groups: with an interpreter
    that user can execute, else in a forked copy of this process that drops
    its privileges (no exec needed)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", None),
                  shutil.which("python3"), "/usr/bin/python3"]
    arg = json.dumps(targets)
    for exe in dict.fromkeys(c for c in candidates if c):
        try:
            r = subprocess.run([exe, "-I", "-c", PROBE, arg], user=user.pw_uid,
                               group=user.pw_gid, extra_groups=[], cwd="/",
                               env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                               text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return json.loads(r.stdout)
    return _fork_as(user, arg)


def _fork_as(user: pwd.struct_passwd, arg: str) -> dict:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            probe: dict = {}
            exec(PROBE.replace('if __name__ == "__main__":', "if False:"), probe)
            os.write(w, json.dumps(probe["main"](json.loads(arg))).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and data, "the probe failed as the other user"
    return json.loads(data)


def _tree(root: int) -> "list[int]":
    """root and all its descendants."""
    children: "dict[int, list[int]]" = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _descriptors(pids: "list[int]") -> "dict[str, str]":
    """/proc/<pid>/fd/<n> -> what it points to, for every process in pids."""
    out = {}
    for pid in pids:
        try:
            names = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for n in names:
            path = "/proc/%d/fd/%s" % (pid, n)
            try:
                out[path] = os.readlink(path)
            except OSError:
                pass
    return out


def _listening(descriptors: "dict[str, str]") -> "tuple[list[str], list[int]]":
    """The Unix socket names ('@' for abstract ones) and the TCP ports on
    which the processes holding descriptors listen."""
    inodes = {link[len("socket:["):-1] for link in descriptors.values()
              if link.startswith("socket:[")}
    unix = []
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            # flags __SO_ACCEPTCON: a listening socket
            if len(fields) >= 7 and int(fields[3], 16) & 0x10000 and fields[6] in inodes:
                unix.append(fields[7] if len(fields) > 7 else "@<unnamed>")
    tcp = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            f = open(table)
        except OSError:
            continue
        with f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    tcp.append(int(fields[1].rsplit(":", 1)[1], 16))
    return unix, tcp


PROGRAM = """
import json, os, sys, tempfile, time
import gomp
from gomp import connection, managers, resource_sharer, shared_memory, util

def name(address):
    # a socket's name as /proc/net/unix shows it ('@' for an abstract one)
    if isinstance(address, bytes):
        address = address.decode("latin-1")
    return "@" + address[1:] if address.startswith("\\0") else address

def main():
    exposed = sys.argv[1] == "exposed"
    m = gomp.Manager()
    d = m.dict({"k": 1})  # the manager hands this process a shared-memory pipe
    listener = connection.Listener()
    keyed = connection.Listener(authkey=b"key")
    shared = resource_sharer.DupFd(0)
    sharer = resource_sharer._resource_sharer._address
    shm = shared_memory.SharedMemory(create=True, size=4096)
    q = gomp.Queue()
    q.put("x")
    lock = gomp.Lock()
    a, b = gomp.Pipe()
    children = [gomp.get_context(method).Process(target=time.sleep, args=(60,))
                for method in ("spawn", "forkserver")]
    for p in children:
        p.start()
    info = {"manager": name(m.address), "listeners": [listener.address, keyed.address],
            "sharer": sharer, "key": shared._id[1].hex(), "shm": shm.name}
    if exposed:
        # servers whose sockets another user may connect to: they must hang
        # up on it before reading a byte
        where = tempfile.mkdtemp()
        os.chmod(where, 0o755)
        mx = managers.SyncManager(address=os.path.join(where, "manager"))
        mx.start()
        os.chmod(mx.address, 0o777)
        os.chmod(util.get_temp_dir(), 0o711)
        os.chmod(sharer, 0o777)
        info["exposed_manager"] = mx.address
    print(json.dumps(info), flush=True)
    sys.stdin.readline()
    for p in children:
        p.kill()
        p.join()
    shm.close()
    shm.unlink()
    if exposed:
        mx.shutdown()
        os.rmdir(where)
    m.shutdown()

if __name__ == "__main__":
    main()
"""


@pytest.fixture
def program(tmp_path):
    """Start a gomp program that listens and shares memory in every way it
    does by default; yields (its pid, what it reports)."""
    script = scripts.write(tmp_path / "program.py", PROGRAM)
    procs = []

    def start(mode: str):
        proc = scripts.start([sys.executable, script, mode], stdin=subprocess.PIPE,
                             stderr=None)
        procs.append(proc)
        line = proc.stdout.readline()
        assert line, "the program did not start"
        return proc.pid, json.loads(line)

    yield start
    for proc in procs:
        try:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            scripts.kill_quietly(proc)


@pytest.mark.timeout(180)
def test_another_user_reaches_no_socket_and_no_segment(other_user, program):
    pid, info = program("default")
    time.sleep(0.5)  # the children are up
    pids = _tree(pid)
    fds = _descriptors(pids)
    unix, tcp = _listening(fds)
    for name in [info["manager"], info["sharer"]] + info["listeners"]:
        assert name in unix, (name, unix)
    assert not [u for u in unix if u.startswith("@")], "an abstract socket: %s" % unix
    assert not tcp, "listening on TCP: %s" % tcp
    segments = [path for path, link in fds.items() if link.startswith("/memfd:")]
    assert segments, "no shared memory found to try"
    shm = "/dev/shm/" + info["shm"].lstrip("/")
    assert stat.S_IMODE(os.stat(shm).st_mode) == 0o600
    found = _run_as(other_user, {"unix": [[u, ""] for u in unix], "tcp": tcp,
                                 "files": segments + [shm]})
    assert found["uid"] == other_user.pw_uid and found["groups"] in ([], [other_user.pw_gid])
    reached = {k: v for k, v in found["sockets"].items() if not v.startswith("refused")}
    assert not reached, reached
    opened = {k: v for k, v in found["files"].items() if not v.startswith("refused")}
    assert not opened, opened
    assert len(found["files"]) == len(segments) + 1


@pytest.mark.timeout(180)
def test_gomp_servers_hang_up_on_another_user_before_a_byte(other_user, program):
    # their sockets made reachable on purpose: the credentials check alone
    pid, info = program("exposed")
    key = info["key"]
    found = _run_as(other_user, {"unix": [[info["exposed_manager"], ""],
                                          [info["sharer"], key]],
                                 "tcp": [], "files": []})
    assert found["uid"] == other_user.pw_uid
    for name, what in found["sockets"].items():
        assert what.startswith("hung up"), (name, what)


@pytest.mark.timeout(60)
def test_fetch_waits_for_room_in_a_full_backlog(tmp_path):
    # a server busy accepting others: its backlog is full for a moment
    address = str(tmp_path / "sharer")
    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    server.listen(1)
    queued = []
    try:
        while True:
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            queued.append(s)
            s.connect(address)
    except BlockingIOError:
        queued.pop().close()
    r, w = os.pipe()

    def serve_later():
        time.sleep(0.3)
        server.settimeout(10)  # a failing test must not leave this waiting
        for _ in range(len(queued) + 1):
            try:
                peer, _ = server.accept()
            except OSError:
                return
            with peer:
                if peer.recv(16) == b"k" * 16:
                    socket.send_fds(peer, [b"\x01"], [w])

    t = threading.Thread(target=serve_later, daemon=True)
    t.start()
    try:
        for s in queued:
            s.sendall(b"x" * 16)
        fd = resource_sharer._fetch(address, b"k" * 16, 1)[0]
        os.write(fd, b"?")
        os.close(fd)
        assert os.read(r, 1) == b"?"
    finally:
        t.join(10)
        for s in queued:
            s.close()
        server.close()
        os.close(r)
        os.close(w)


@pytest.mark.timeout(60)
def test_resource_sharer_that_could_not_start_starts_next_time(monkeypatch):
    # no thread to be had: the caller gets the error, and the next
    # registration starts the server, instead of handing out the address
    # of a socket that nobody serves
    monkeypatch.setattr(resource_sharer, "FETCH_TIMEOUT", 2.0)
    real_start = threading.Thread.start

    def start(self):
        if self.name == "gomp-resource-sharer":
            raise RuntimeError("can't start new thread")
        real_start(self)

    sharer = resource_sharer._ResourceSharer()
    r, w = os.pipe()
    try:
        monkeypatch.setattr(threading.Thread, "start", start)
        with pytest.raises(RuntimeError):
            sharer.register([w])
        monkeypatch.setattr(threading.Thread, "start", real_start)
        address, key = sharer.register([w])
        fd = resource_sharer._fetch(address, key, 1)[0]
        os.write(fd, b"+")
        os.close(fd)
        assert os.read(r, 1) == b"+"
    finally:
        sharer.stop(10)
        os.close(r)
        os.close(w)


def test_gomp_segments_are_owner_only():
    # memfds start at mode 0777; gomp's are 0600, behind /proc/<pid>/fd's own check
    q = gomp.Queue()
    lock = gomp.Lock()
    a, b = gomp.Pipe()
    fds = [q._ring.fileno(), lock._segment.fd]
    for fd in fds:
        assert stat.S_IMODE(os.stat("/proc/self/fd/%d" % fd).st_mode) == 0o600
    a.close()
    b.close()

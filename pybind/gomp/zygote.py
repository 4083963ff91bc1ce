"""The zygote: a Python process that forks children on request.

The Go runtime does not survive fork(), so a parent that loaded gomp's Go
core cannot fork children. The zygote never loads Go: the parent execs it
once, it imports the modules the parent uses, and from then on each child
costs a fork() instead of an interpreter start-up.

Both ends live here. The parent's end (:class:`Zygote`) starts the zygote
and sends requests through the Go core; the zygote's end (:func:`main`)
serves them. The wire format is described in gomp/zygote.go.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import sys
import sysconfig
import threading
from typing import Any, Optional, Sequence

_preload: "list[str]" = []


def set_preload(module_names: Sequence[str]) -> None:
    """Modules the forkserver zygote imports before forking (a hint)."""
    if not all(type(mod) is str for mod in module_names):
        raise TypeError("module_names must be a list of strings")
    global _preload
    _preload = list(module_names)


def _library_prefixes() -> "tuple[str, ...]":
    paths = sysconfig.get_paths()
    found = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")
             if k in paths}
    for p in sys.path:
        if "site-packages" in p or "dist-packages" in p:
            found.add(os.path.realpath(p))
    return tuple(p + os.sep for p in found)


def modules_to_preload() -> "list[str]":
    """Top-level modules the parent has imported from the standard library
    or site-packages. The user's own modules are left to each child, which
    imports them while it imports __main__, exactly as under spawn."""
    prefixes = _library_prefixes()
    names = set()
    for name, mod in list(sys.modules.items()):
        if name.startswith(__package__ + "."):
            # gomp's own modules (pool, queues...): a child unpickling its
            # arguments imports them; none starts a thread or loads Go
            names.add(name)
            continue
        if "." in name or name in ("__main__", "__mp_main__"):
            continue
        path = getattr(mod, "__file__", None)
        if not path:
            continue
        if os.path.realpath(path).startswith(prefixes):
            names.add(name)
    return sorted(names)


# what the zygote runs; argv[1] is the directory gomp is imported from
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from gomp.zygote import main; main()"


# --- the parent's end -------------------------------------------------------

class Zygote:
    """A running zygote, as seen from the parent."""

    def __init__(self, method: str) -> None:
        from . import _core, spawn
        import subprocess
        self.method = method
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        exe = spawn.get_executable()
        argv = [exe, *subprocess._args_from_interpreter_flags(), "-c", _BOOT, package_root]
        env = [f"{k}={v}" for k, v in os.environ.items()]
        try:
            self.pid, self._pidfd = _core.go().spawn(
                exe, argv, env, None, [0, 1, 2, child_end.fileno()])
        finally:
            child_end.close()
        self.sock = parent_end
        init: "dict[str, Any]" = {
            "sys_path": [p if p else os.getcwd() for p in sys.path],
            "dir": os.getcwd(),
            "preload": modules_to_preload(),
        }
        if method == "forkserver":
            init["preload"] += [m for m in _preload if m != "__main__"]
            if "__main__" in _preload or not _preload:
                init.update(spawn.main_reference())
        blob = pickle.dumps(init)
        self.sock.sendall(struct.pack("<I", len(blob)) + blob)

    def start(self, payload: Any, fds: "list[int]") -> "tuple[int, int, int]":
        """Fork a child that runs payload; returns (pid, status fd, pidfd)."""
        from . import _core
        return _core.go().zygote_start(self.sock.fileno(), payload, fds)

    def close(self) -> None:
        self.sock.close()
        os.close(self._pidfd)


_zygotes: "dict[str, Zygote]" = {}
_zygote_lock = threading.Lock()


def get(method: str) -> Zygote:
    """The zygote for a start method, started on first use."""
    with _zygote_lock:
        z = _zygotes.get(method)
        if z is None:
            z = _zygotes[method] = Zygote(method)
        return z


def discard(z: Zygote) -> None:
    """Forget a zygote that stopped answering; the next start makes another."""
    with _zygote_lock:
        if _zygotes.get(z.method) is z:
            del _zygotes[z.method]
    try:
        z.close()
    except OSError:
        pass


# --- the zygote's end -------------------------------------------------------

def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_request(sock: socket.socket) -> "Optional[tuple[bytes, list[int]]]":
    msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, 64)
    if not msg:
        for fd in fds:
            os.close(fd)
        return None
    while len(msg) < 4:
        more = _recv_exact(sock, 4 - len(msg))
        if more is None:
            return None
        msg += more
    (size,) = struct.unpack("<I", msg[:4])
    body = msg[4:]
    if len(body) < size:
        rest = _recv_exact(sock, size - len(body))
        if rest is None:
            return None
        body += rest
    return body, list(fds)


def _preload_modules(names: "list[str]") -> None:
    import importlib
    import io
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = io.StringIO()  # an import that prints is not ours to show
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:
                pass
    finally:
        sys.stdout, sys.stderr = saved


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def main() -> None:
    """Serve fork requests on descriptor 3 until the parent goes away."""
    from . import _core, spawn
    # Ctrl-C in a terminal reaches the whole process group; the zygote
    # outlives it, its children get KeyboardInterrupt as under spawn.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=3)
    replay = os.environ.pop("GOMP_ZYGOTE_INIT", None)
    if replay is not None:
        init = pickle.loads(bytes.fromhex(replay))
    else:
        head = _recv_exact(sock, 4)
        if head is None:
            return
        init = pickle.loads(_recv_exact(sock, struct.unpack("<I", head)[0]) or b"")
    sys.path[:] = init["sys_path"]
    os.chdir(init["dir"])
    # import what a child will need anyway, then the parent's libraries
    from . import context, process, reduction, connection  # noqa: F401
    reduction._base()
    _preload_modules(init["preload"])
    if "init_main_from_name" in init or "init_main_from_path" in init:
        process.current_process()._inheriting = True
        try:
            spawn.prepare({k: v for k, v in init.items() if k.startswith("init_main")})
        except BaseException:
            pass
        finally:
            del process.current_process()._inheriting
    if _thread_count() > 1:
        # An import started a thread: a fork now could copy a held lock into
        # every child. Start over, preloading nothing but what gomp needs.
        init = dict(init, preload=[])
        for key in ("init_main_from_name", "init_main_from_path"):
            init.pop(key, None)
        os.environ["GOMP_ZYGOTE_INIT"] = pickle.dumps(init).hex()
        argv = getattr(sys, "orig_argv", None) or [sys.executable, "-c", _BOOT, sys.argv[1]]
        os.execv(sys.executable, argv)
    ext = _core.ext()
    zygote_pid = os.getpid()
    children: "dict[int, tuple[int, int]]" = {}  # pidfd -> (pid, status pipe)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, _ev in events:
            if fd != sock.fileno():
                pid, status_w = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                try:
                    os.write(status_w, struct.pack("<i", os.waitstatus_to_exitcode(status)))
                except OSError:
                    pass
                os.close(status_w)
                continue
            try:
                req = _read_request(sock)
            except OSError:
                req = None
            if req is None:
                return  # the parent closed its end: it exited
            payload, fds = req
            status_r, status_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.close(status_r)
                    os.close(status_w)
                    sock.close()
                    for pidfd, (_pid, w) in children.items():
                        os.close(pidfd)
                        os.close(w)
                    ext.set_pdeathsig(signal.SIGKILL)
                    if os.getppid() != zygote_pid:
                        os._exit(1)
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    code = _become_child(payload, fds)
                finally:
                    os._exit(code)
            for f in fds:
                os.close(f)
            pidfd = os.pidfd_open(pid)
            socket.send_fds(sock, [struct.pack("<iI", pid, 0)], [status_r, pidfd])
            os.close(status_r)
            children[pidfd] = (pid, status_w)
            poller.register(pidfd, select.POLLIN)


def _become_child(payload: bytes, fds: "list[int]") -> int:
    from . import spawn
    # fds: the parent's stdout and stderr at start(), then DupFd slots
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    os.close(fds[0])
    os.close(fds[1])
    try:
        code = spawn.run_child(payload, fds[2:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    return spawn.finish(code)

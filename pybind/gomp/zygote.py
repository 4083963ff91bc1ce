"""The zygote: a Python process that forks children on request.

The Go runtime does not survive fork(), so a parent that loaded gomp's Go
core cannot fork children. The zygote never loads Go. It is a fork of the
program, made before the program loads Go, when the program is small and
single-threaded (see can_fork); otherwise the parent execs it and it
imports the modules the parent uses. From then on each child costs a
fork() instead of an interpreter start-up.

Both ends live here, and neither needs Go. The parent's end
(:class:`Zygote`) starts the zygote and sends requests; the zygote's end
(:func:`main`, :func:`_become_forked_zygote`) serves them. The wire format
is described at _REQUEST.
"""
from __future__ import annotations

import errno
import gc
import math
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
import types
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence

from . import _install
from ._timing import SIGNAL_SLICE_MS

__all__ = ['Zygote', 'get', 'running', 'discard', 'stop_all', 'set_preload', 'main']

_preload: "list[str]" = []


def set_preload(module_names: Sequence[str]) -> None:
    """Modules the forkserver zygote imports before forking (a hint)."""
    if not all(type(mod) is str for mod in module_names):
        raise TypeError("module_names must be a list of strings")
    global _preload
    _preload = list(module_names)


def _library_prefixes() -> "tuple[str, ...]":
    # the standard library (lib-dynload is inside it) and every
    # site-packages on the path; sysconfig would say the same, for a
    # millisecond of import
    found = {os.path.dirname(os.__file__)}
    for p in sys.path:
        if "site-packages" in p or "dist-packages" in p:
            found.add(p)
    # as written and as resolved: most files then match without a realpath
    found |= {os.path.realpath(p) for p in found}
    return tuple(p.rstrip(os.sep) + os.sep for p in found)


def _program_modules() -> "tuple[list[str], list[tuple[str, str]]]":
    """The parent's modules, sorted: (top-level names of the library's
    and gomp's own, [(name, file)] of the program's own except __main__)."""
    prefixes = _library_prefixes()
    library, own = set(), []
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if getattr(mod, "__name__", "").split(".")[0] == __package__:
            # gomp's own modules (pool, queues...): a child unpickling its
            # arguments imports them; none starts a thread or loads Go
            library.add(mod.__name__)
        elif not path or name in ("__main__", "__mp_main__") or not isinstance(path, str):
            continue
        elif path.startswith(prefixes) or os.path.realpath(path).startswith(prefixes):
            if "." not in name:
                library.add(name)
        else:
            own.append((name, path))
    return sorted(library), own


def modules_to_preload() -> "list[str]":
    """Top-level modules the parent has imported from the standard library
    or site-packages. The user's own modules are left to each child, which
    imports them while it imports __main__, exactly as under spawn."""
    return _program_modules()[0]


def usable_fd(fd: int) -> int:
    """Standard descriptor fd, made /dev/null for good if the program closed
    it: its children's stream then goes nowhere, and the number cannot be
    reused by a descriptor of gomp's (a pidfd, a socket) that a child would
    then take for its stdout."""
    try:
        os.fstat(fd)
    except OSError:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        else:
            os.set_inheritable(fd, True)
    return fd


def exec_child(argv: "list[str]", fds: "list[int]") -> "tuple[int, int]":
    """Start argv by fork+exec from the Go core, with the current
    environment (Go's own copy is a start-up snapshot), our standard
    streams (or /dev/null for a closed one) and fds as descriptors 3, 4...
    Returns (pid, pidfd); the child dies with this process."""
    from . import _core
    env = [f"{k}={v}" for k, v in os.environ.items()]
    std = [usable_fd(fd) for fd in (0, 1, 2)]
    try:
        # (called with the zygotes' lock held: no spawn zygote from here)
        return _core.go(fork_zygote=False).spawn(argv[0], argv, env, None, [*std, *fds])
    finally:
        for i, fd in enumerate(std):
            if fd != i:
                os.close(fd)


# what the zygote runs; argv[1] is the directory gomp is imported from
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from gomp.zygote import main; main()"


# --- the parent's end -------------------------------------------------------

class Zygote:
    """A running zygote, as seen from the parent."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._lock = threading.Lock()
        self.broken = False
        self.installed = _install.installed()
        self.forked = False
        init, library = self._init()
        if method == "spawn" and can_fork():
            self._fork(init)
        else:
            self._exec(init, library)

    def _init(self) -> "tuple[dict[str, Any], list[str]]":
        # what the zygote must know of us (see _get_ready), and the
        # library's modules we have imported
        from . import spawn
        library, own = _program_modules()
        init: "dict[str, Any]" = {
            "sys_path": [p if p else os.getcwd() for p in sys.path],
            "dir": os.getcwd(),
            # a child imports the program's modules itself, as under
            # spawn, but need not compile them again (see spawn.compiled)
            "compile": [path for _name, path in own if path.endswith(".py")],
            "own_modules": [name for name, _path in own],
            "parent_pid": os.getpid(),
            "installed": _install.installed(),
        }
        main = spawn.main_reference()
        if self.method == "forkserver":
            init["preload"] = library + [m for m in _preload if m != "__main__"]
            if "__main__" in _preload or not _preload:
                init.update(main)
        elif "init_main_from_path" in main:
            init["init_main_path"] = main["init_main_from_path"]
        return init, library

    def _exec(self, init: "dict[str, Any]", library: "list[str]") -> None:
        # a new interpreter, which imports what we have imported
        from . import spawn
        import subprocess
        init.setdefault("preload", library)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        exe = spawn.get_executable()
        argv = [exe, *subprocess._args_from_interpreter_flags(), "-c", _BOOT, package_root]
        try:
            self.pid, self._pidfd = exec_child(argv, [child_end.fileno()])
        finally:
            child_end.close()
        self.sock = parent_end
        blob = pickle.dumps(init)
        self.sock.sendall(_REQUEST.pack(len(blob)) + blob)

    def _fork(self, init: "dict[str, Any]") -> None:
        # a fork of this process, which has imported what children need
        # already: ready in about a millisecond instead of an interpreter
        # start-up (see can_fork and _become_forked_zygote)
        from . import util
        import warnings
        parent_end, child_end = (_above_std(s) for s in socket.socketpair(socket.AF_UNIX,
                                                                           socket.SOCK_STREAM))
        util._flush_std_streams()
        for stream in (sys.__stdout__, sys.__stderr__):  # what the zygote will use
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        with warnings.catch_warnings():
            # threads of a C library (a BLAS pool) are what glibc's fork handles
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                parent_end.close()
                _become_forked_zygote(child_end, init)
                code = 0
            except BaseException:
                pass
            finally:
                os._exit(code)
        child_end.close()
        self.pid, self._pidfd = pid, os.pidfd_open(pid)
        self.sock = parent_end
        self.forked = True

    def start(self, payload: Any, fds: "list[int]") -> "tuple[int, int, int]":
        """Fork a child that runs payload; returns (pid, pidfd, status fd),
        the status fd being -1 when the child is ours to reap. Needs no Go:
        a program that only starts processes never loads it."""
        with self._lock:  # an answer belongs to the oldest request
            try:
                _send_request(self.sock, payload, fds)
                # the first answer may wait for the zygote's imports: Ctrl-C
                # may come meanwhile
                wait_readable(self.sock.fileno(), None)
                return _receive_reply(self.sock)
            except BaseException:
                self.broken = True  # out of step with its answers
                raise

    def close(self) -> None:
        """Stop the zygote: closing its socket ends it, and with it any child
        it forked and could not hand over."""
        self.sock.close()
        try:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except OSError:
            pass
        os.close(self._pidfd)
        if self.forked:  # our own child, by os.fork: ours to reap
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


# The protocol, spoken over a Unix stream socket (both ends are here):
#   request: u32 length, payload; SCM_RIGHTS on its first bytes carries the
#            descriptors the child gets (its stdout and stderr, then any it
#            inherits)
#   reply:   i32 pid (negative: failure), u32 flags, u32 length, message;
#            SCM_RIGHTS carries the child's pidfd, then, if flags has
#            _REPLY_STATUS_PIPE, the read end of a pipe on which the zygote
#            writes the child's exit code (an i32) when the child is its own
#            (see forks_siblings)
# A reply answers the oldest request: the parent sends one at a time.
_REQUEST = struct.Struct("<I")
_REPLY = struct.Struct("<iII")
_REPLY_STATUS_PIPE = 1


def wait_readable(fd: int, timeout: Optional[float]) -> bool:
    """Wait up to timeout seconds (None: forever) until fd is readable, in
    signal slices, so that Ctrl-C interrupts it."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ms = SIGNAL_SLICE_MS
        if deadline is not None:
            # rounded up, so that a short timeout is not a busy poll
            ms = min(ms, max(0, math.ceil((deadline - time.monotonic()) * 1000)))
        events = poller.poll(ms)
        if events:
            if events[0][1] & select.POLLNVAL:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


def _send_request(sock: socket.socket, payload: Any, fds: "list[int]") -> None:
    head = _REQUEST.pack(len(payload))
    body = memoryview(payload).cast("B")
    # the descriptors ride on the first bytes; the rest follows plainly
    sent = socket.send_fds(sock, [head, body], fds)
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    if sent - len(head) < len(body):
        sock.sendall(body[sent - len(head):])


def _receive_reply(sock: socket.socket) -> "tuple[int, int, int]":
    head, fds, _flags, _addr = socket.recv_fds(sock, _REPLY.size, 2, socket.MSG_CMSG_CLOEXEC)
    fds = list(fds)
    try:
        if not head:
            raise OSError(errno.EPIPE, "zygote: it exited")
        if len(head) < _REPLY.size:
            head += _recv_exact(sock, _REPLY.size - len(head)) or b""
            if len(head) < _REPLY.size:
                raise OSError(errno.EPIPE, "zygote: it exited mid-reply")
        pid, flags, size = _REPLY.unpack(head)
        text = _recv_exact(sock, size) if size else b""
        if text is None:
            raise OSError(errno.EPIPE, "zygote: it exited mid-reply")
        if pid <= 0:
            raise OSError(errno.EAGAIN, "zygote: " + text.decode(errors="replace"))
        want = 2 if flags & _REPLY_STATUS_PIPE else 1
        if len(fds) != want:
            raise OSError(errno.EPROTO, f"zygote: expected {want} descriptors, got {len(fds)}")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return pid, fds[0], fds[1] if want == 2 else -1


def _above_std(sock: socket.socket) -> socket.socket:
    """sock on a descriptor above 2: a program that closed a standard
    stream would otherwise find its socket where its children's stdout is
    looked for."""
    if sock.fileno() > 2:
        return sock
    import fcntl
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
    sock.close()
    return socket.socket(fileno=fd)


# A forked zygote is only made from a process small enough that forking
# it costs little (its children are forked from the zygote, so its size is
# theirs too), before the Go runtime is loaded (it does not survive a
# fork) and with no other Python thread (a lock it holds would be copied
# held). GOMP_ZYGOTE=exec asks for the exec-started zygote always.
FORK_RSS_MAX = 256 << 20


def can_fork() -> bool:
    """Whether the spawn zygote may be a fork of this process."""
    from . import _core
    return (os.environ.get("GOMP_ZYGOTE") != "exec" and not getattr(sys, "frozen", False)
            and not _core.loaded() and threading.active_count() == 1
            and _rss() <= FORK_RSS_MAX)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return FORK_RSS_MAX + 1


_zygotes: "dict[str, Zygote]" = {}
_zygote_lock = threading.Lock()


def get(method: str) -> Zygote:
    """The zygote for a start method, started on first use."""
    with _zygote_lock:
        z = _zygotes.get(method)
        # a zygote made before gomp.install() has the stdlib's modules
        if z is not None and (z.broken or z.installed != _install.installed()):
            _zygotes.pop(method)
            z.close()
            z = None
        if z is None:
            z = _zygotes[method] = Zygote(method)
        return z


def _disown_inherited() -> None:
    # In a fork of this process (the program's own os.fork()): our zygotes'
    # sockets were inherited, and a request sent on one would get an answer
    # meant for us. The fork lets them go, without stopping them, and makes
    # its own when it starts a process.
    global _zygote_lock
    _zygote_lock = threading.Lock()  # the forking thread may have held it
    inherited = list(_zygotes.values())
    _zygotes.clear()
    for z in inherited:
        try:
            z.sock.close()
            os.close(z._pidfd)
        except OSError:
            pass


os.register_at_fork(after_in_child=_disown_inherited)


def running(method: str) -> Optional[Zygote]:
    """The zygote of a start method if one runs, else None."""
    with _zygote_lock:
        z = _zygotes.get(method)
        return None if z is None or z.broken else z


def stop_all() -> None:
    """Stop every zygote; the next start makes a new one. (Children a
    zygote forked as its own, not the program's, die with it.)"""
    with _zygote_lock:
        stopping = list(_zygotes.values())
        _zygotes.clear()
    for z in stopping:
        try:
            z.close()
        except OSError:
            pass


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

# the zygote reads a request this many bytes at a time at most (recv
# allocates what it is asked for, whatever arrives)
_RECV_CHUNK = 1 << 20
# descriptors one request may carry: the child's stdout, stderr and those
# duplicated for it
_REQUEST_FDS_MAX = 64


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    chunks = []
    while n:
        chunk = sock.recv(min(n, _RECV_CHUNK))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_request(sock: socket.socket) -> "Optional[tuple[bytes, list[int]]]":
    # the descriptors arrive with the first bytes: read the length with them,
    # then exactly the payload, never into the next request
    head, fds, _flags, _addr = socket.recv_fds(sock, 4, _REQUEST_FDS_MAX)
    fds = list(fds)
    if len(head) < 4:
        more = _recv_exact(sock, 4 - len(head)) if head else None
        if more is None:
            for fd in fds:
                os.close(fd)
            return None
        head += more
    (size,) = _REQUEST.unpack(head)
    body = _recv_exact(sock, size)
    if body is None:
        for fd in fds:
            os.close(fd)
        return None
    return body, fds


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
    # Ctrl-C in a terminal reaches the whole process group; the zygote
    # outlives it, its children get KeyboardInterrupt as under spawn.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=3)
    init = _receive_init(sock)
    if init is None:
        return
    _get_ready(init)
    _serve(sock, init)


def _become_forked_zygote(sock: socket.socket, init: "dict[str, Any]") -> None:
    """In a fork of the program: become a zygote that starts children with
    spawn semantics. Everything of the program's that a spawned child would
    not have is let go: its __main__ and own modules (each child imports
    them again), its descriptors, exit hooks, finalizers and signal
    handlers."""
    # The program's objects are let go of, never destroyed: a collection
    # here could run their finalizers (delete the program's temporary files,
    # say). They are frozen, out of the collector's sight for good.
    gc.disable()
    from . import _core
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)) and sig != signal.SIGINT:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    _core.ext().set_pdeathsig(signal.SIGKILL)
    if os.getppid() != init["parent_pid"]:
        return  # the program died before we could follow it
    _forget_the_program(sock.fileno(), init.get("own_modules", ()))
    gc.freeze()
    gc.enable()
    if _rss() > FORK_RSS_MAX:
        # what we could not let go (a big object on the program's stack, at
        # the fork) would be every child's too: start over as a new process
        _reexec(sock, init)
    # the first child is started at once; what makes the later ones
    # cheaper (imports, compiled sources) is done after it
    _serve(sock, init, warm_up=lambda: _get_ready(init, imported=True))


# the program's modules a forked zygote let go of, kept from being freed
_let_go: "list[Any]" = []


def _forget_the_program(keep_fd: int, own_modules: "Sequence[str]") -> None:
    import atexit
    from . import process, util
    # its descriptors: those a spawned child would not inherit now stand for
    # /dev/null (closing them would free their numbers, which stale objects
    # of the program's would close again later)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    import fcntl
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in (keep_fd, null):
            continue
        try:
            if fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                os.dup2(null, fd, inheritable=False)
        except OSError:
            pass
    # a standard stream the program closed stays taken (by /dev/null), so
    # that a descriptor received later does not land there
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.dup2(null, fd, inheritable=True)
    os.close(null)
    # the interpreter's own standard streams, not what the program (or a
    # test harness capturing its output) put in their place
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__
    # its main module and its own modules: each child imports them anew;
    # and so does it any module the program was still importing at the fork
    # (a Lock made at import time may have forked us): here it would stay
    # half-made for good
    half_made = [name for name, mod in list(sys.modules.items())
                 if getattr(getattr(mod, "__spec__", None), "_initializing", False)]
    for name in ("__main__", "__mp_main__", *own_modules, *half_made):
        _let_go.append(sys.modules.pop(name, None))
    sys.modules["__main__"] = types.ModuleType("__main__")
    # its state in gomp, and its exit hooks (re-registering the libraries'
    # that a child would have registered by importing them)
    process._children.clear()
    util._finalizer_registry.clear()
    util._afterfork_registry.clear()
    tracker = sys.modules.get(__package__ + ".resource_tracker")
    if tracker is not None:
        tracker._resource_tracker._fd = None
        tracker._resource_tracker._pid = None
    atexit._clear()
    # in the order of a child's imports: logging's hook first, so that
    # multiprocessing's exit handlers (which log) run before it
    for module, hook in (("logging", "shutdown"), ("multiprocessing.util", "_exit_function")):
        m = sys.modules.get(module)
        f = getattr(m, hook, None)
        if f is not None and f is not util._exit_function:
            atexit.register(f)
    atexit.register(util._exit_function)
    import weakref
    weakref.finalize._registered_with_atexit = False  # type: ignore[attr-defined]


def _reexec(sock: socket.socket, init: "dict[str, Any]") -> None:
    # as an exec-started zygote, which imports only what the program has
    # imported from the library (main() reads fd 3)
    init = dict(init, preload=modules_to_preload())
    os.environ["GOMP_ZYGOTE_INIT"] = pickle.dumps(init).hex()
    os.dup2(sock.fileno(), 3, inheritable=True)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.execv(sys.executable, [sys.executable, "-c", _BOOT, package_root])


def _receive_init(sock: socket.socket) -> "Optional[dict[str, Any]]":
    replay = os.environ.pop("GOMP_ZYGOTE_INIT", None)
    if replay is not None:
        return pickle.loads(bytes.fromhex(replay))
    head = _recv_exact(sock, 4)
    if head is None:
        return None
    return pickle.loads(_recv_exact(sock, _REQUEST.unpack(head)[0]) or b"")


def _get_ready(init: "dict[str, Any]", imported: bool = False) -> None:
    """Take the parent's sys.path and directory, import what children will
    need (unless a fork of the parent has it already), and freeze the
    result."""
    from . import spawn
    if not imported:
        if init.get("installed"):
            _install.install()
        sys.path[:] = init["sys_path"]
        os.chdir(init["dir"])
    # what every child needs, then the parent's libraries
    from . import context, process, reduction, connection  # noqa: F401
    import runpy  # noqa: F401  (a child started by `python -m` uses it)
    _preload_modules(init.get("preload", ()))
    # spawn: each child runs the main script and imports the user's modules
    # itself; compile them once, here
    main = init.get("init_main_path")
    for path in [main, *init.get("compile", ())]:
        if path:
            try:
                spawn.compiled(path, main=path == main)
            except (OSError, SyntaxError, ValueError):
                pass
    spawn.import_from_compiled()
    if "init_main_from_name" in init or "init_main_from_path" in init:
        # forkserver: the main module is imported once, here
        process.current_process()._inheriting = True
        try:
            spawn.prepare({k: v for k, v in init.items() if k.startswith("init_main")})
        except BaseException:
            pass
        finally:
            del process.current_process()._inheriting
    from . import _core
    if threading.active_count() > 1 or _core.loaded():
        # An import started a Python thread (a fork now could copy a lock it
        # holds into every child) or made a gomp object at module level,
        # which started the Go runtime (it does not survive a fork). Start
        # over, preloading nothing but what gomp needs: the children import
        # the rest themselves. (Threads of a C library, such as a BLAS pool,
        # are handled in _serve.)
        init = dict(init, preload=[])
        for key in ("init_main_from_name", "init_main_from_path"):
            init.pop(key, None)
        os.environ["GOMP_ZYGOTE_INIT"] = pickle.dumps(init).hex()
        argv = getattr(sys, "orig_argv", None) or [sys.executable, "-c", _BOOT, sys.argv[1]]
        os.execv(sys.executable, argv)
    # Move everything imported so far out of the collector's sight: a
    # child's collections then do not touch (and so copy) these pages. (A
    # forked zygote does not collect: see _become_forked_zygote.)
    if not imported:
        gc.collect()
    gc.freeze()


def _serve(sock: socket.socket, init: "dict[str, Any]",
           warm_up: "Optional[Any]" = None) -> None:
    """Fork a child per request until the parent closes its end; warm_up,
    if given, runs once no request has come for WARM_UP_IDLE_MS after the
    first child was started."""
    from . import _core
    ext = _core.ext()
    # A C library's threads (numpy's BLAS pool, say) survive only a fork
    # that runs the library's pthread_atfork handlers, which glibc's fork()
    # does and CLONE_PARENT does not: the children are then the zygote's,
    # as under the stdlib's forkserver.
    sibling = forks_siblings() and _thread_count() == 1
    if not sibling:
        import warnings
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=".*multi-threaded.*fork")
    # a sibling's parent is the program (CLONE_PARENT); a plain child's is us
    expected_ppid = init["parent_pid"] if sibling else os.getpid()
    children: "dict[int, tuple[int, int]]" = {}  # pidfd -> (pid, status pipe)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    sys.stdout.flush()
    sys.stderr.flush()
    started = False
    while True:
        idle = WARM_UP_IDLE_MS if warm_up is not None and started else None
        try:
            events = poller.poll(idle)
        except InterruptedError:
            continue
        if not events and warm_up is not None:
            warm_up, run = None, warm_up
            run()
            continue
        for fd, _ev in events:
            if fd != sock.fileno():
                _report_exit(fd, *children.pop(fd))
                poller.unregister(fd)
                continue
            try:
                req = _read_request(sock)
            except OSError:
                req = None
            if req is None:
                return  # the parent closed its end: it exited
            payload, fds = req
            status_r = status_w = -1
            try:
                if sibling:
                    pid = ext.fork_as_sibling()
                else:
                    status_r, status_w = os.pipe()
                    pid = os.fork()
            except OSError as e:
                # out of processes or memory: the parent gets the reason
                for f in (status_r, status_w, *fds):
                    if f >= 0:
                        os.close(f)
                msg = f"cannot fork: {e}".encode()
                sock.sendall(_REPLY.pack(-1, 0, len(msg)) + msg)
                continue
            if pid == 0:
                code = 1
                try:
                    sock.close()
                    for pidfd, (_pid, w) in children.items():
                        os.close(pidfd)
                        os.close(w)
                    if status_w >= 0:
                        os.close(status_r)
                        os.close(status_w)
                    ext.set_pdeathsig(signal.SIGKILL)
                    if os.getppid() != expected_ppid:
                        os._exit(1)  # the parent died before we could follow it
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    code = _become_child(payload, fds)
                finally:
                    os._exit(code)
            for f in fds:
                os.close(f)
            pidfd = os.pidfd_open(pid)
            if sibling:
                socket.send_fds(sock, [_REPLY.pack(pid, 0, 0)], [pidfd])
                os.close(pidfd)
            else:
                socket.send_fds(sock, [_REPLY.pack(pid, _REPLY_STATUS_PIPE, 0)],
                                [pidfd, status_r])
                os.close(status_r)
                children[pidfd] = (pid, status_w)
                poller.register(pidfd, select.POLLIN)
            started = True


# A forked zygote's warm-up (imports, compiling the program's sources:
# milliseconds of CPU) waits until it has been idle this long: a program
# that starts its processes at once (a Pool's workers) or starts one and
# exits does not share the CPUs with it.
WARM_UP_IDLE_MS = 10


def forks_siblings() -> bool:
    """Whether children are forked with CLONE_PARENT (see fork_as_sibling
    in _gomp_process.c). It needs glibc 2.34 or later, whose pthread_kill
    and raise do not trust the thread id cached at fork; GOMP_ZYGOTE_FORK=plain
    turns it off."""
    if os.environ.get("GOMP_ZYGOTE_FORK") == "plain":
        return False
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = (int(x) for x in version.split(".")[:2])
    except (ValueError, OSError, AttributeError):
        return False
    return name == "glibc" and (major, minor) >= (2, 34)


def _report_exit(pidfd: int, pid: int, status_w: int) -> None:
    # a plain child of ours ended: reap it and tell the parent its exit code
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    try:
        os.write(status_w, struct.pack("<i", os.waitstatus_to_exitcode(status)))
    except OSError:
        pass
    os.close(status_w)


def _become_child(payload: bytes, fds: "list[int]") -> int:
    from . import spawn
    # fds: the parent's stdout and stderr at start(), then DupFd slots
    for target, fd in ((1, fds[0]), (2, fds[1])):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    try:
        code = spawn.run_child(payload, fds[2:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    return spawn.finish(code)

"""Helpers of the stdlib's ``multiprocessing.util``: logging, finalizers,
after-fork hooks and the exit handler that joins children."""
from __future__ import annotations

import atexit
import itertools
import os
import sys
import threading
import weakref
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any, Callable, Optional

from . import process

__all__ = [
    "sub_debug", "debug", "info", "sub_warning", "get_logger", "log_to_stderr",
    "get_temp_dir", "register_after_fork", "is_exiting", "Finalize",
    "ForkAwareThreadLock", "ForkAwareLocal", "close_all_fds_except",
    "SUBDEBUG", "SUBWARNING",
]

NOTSET = 0
SUBDEBUG = 5
DEBUG = 10
INFO = 20
SUBWARNING = 25

LOGGER_NAME = "multiprocessing"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"

_logger: Optional[logging.Logger] = None
_logging_lock = threading.RLock()
_log_to_stderr = False


def sub_debug(msg: str, *args: Any) -> None:
    if _logger:
        _logger.log(SUBDEBUG, msg, *args, stacklevel=2)


def debug(msg: str, *args: Any) -> None:
    if _logger:
        _logger.log(DEBUG, msg, *args, stacklevel=2)


def info(msg: str, *args: Any) -> None:
    if _logger:
        _logger.log(INFO, msg, *args, stacklevel=2)


def sub_warning(msg: str, *args: Any) -> None:
    if _logger:
        _logger.log(SUBWARNING, msg, *args, stacklevel=2)


def get_logger() -> logging.Logger:
    """Return the logger used by multiprocessing (named 'multiprocessing');
    it is created on first use, with no handler and propagation off."""
    global _logger
    import logging  # on first use, as the stdlib: most programs never log
    with _logging_lock:
        if not _logger:
            _logger = logging.getLogger(LOGGER_NAME)
            _logger.propagate = False
            logging.addLevelName(SUBDEBUG, "SUBDEBUG")
            logging.addLevelName(SUBWARNING, "SUBWARNING")
            # our exit handler logs: it must run before logging's own
            atexit.unregister(_exit_function)
            atexit.register(_exit_function)
    return _logger


def log_to_stderr(level: Optional[int] = None) -> logging.Logger:
    """Turn on logging to stderr and return the logger."""
    global _log_to_stderr
    import logging
    logger = get_logger()
    formatter = logging.Formatter(DEFAULT_LOGGING_FORMAT)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    _log_to_stderr = True
    return _logger


def __getattr__(name: str) -> Any:
    # the stdlib's name for subprocess's helper, without importing
    # subprocess at start-up
    if name == "_args_from_interpreter_flags":
        from subprocess import _args_from_interpreter_flags
        return _args_from_interpreter_flags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Linux has an abstract socket namespace (gomp does not listen in it: any
# local user could connect)
abstract_sockets_supported = sys.platform == "linux"


def _platform_supports_abstract_sockets() -> bool:
    return abstract_sockets_supported


def is_abstract_socket_namespace(address: Any) -> bool:
    """Whether address names a socket in the abstract namespace."""
    if not address:
        return False
    if isinstance(address, bytes):
        return address[0] == 0
    if isinstance(address, str):
        return address[0] == "\0"
    raise TypeError(f"address type of {address!r} unrecognized")


def _remove_temp_dir(rmtree: Callable[[str], Any], tempdir: str) -> None:
    rmtree(tempdir)
    current = process.current_process()
    # None late in interpreter shutdown
    if current is not None:
        current._config["tempdir"] = None


def get_temp_dir() -> str:
    """A temporary directory for this process, removed at exit."""
    tempdir = process.current_process()._config.get("tempdir")
    if tempdir is None:
        import shutil
        import tempfile
        tempdir = tempfile.mkdtemp(prefix="pymp-")
        info("created temp directory %s", tempdir)
        # rmtree bound now: the finalizer may run late in shutdown
        Finalize(None, _remove_temp_dir, args=(shutil.rmtree, tempdir), exitpriority=-100)
        process.current_process()._config["tempdir"] = tempdir
    return tempdir


# hooks run in a child process before its target
_afterfork_registry: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_afterfork_counter = itertools.count()


def _run_after_forkers() -> None:
    items = sorted(_afterfork_registry.items())
    for (index, ident, func), obj in items:
        try:
            func(obj)
        except Exception as e:
            info("after forker raised exception %s", e)


def register_after_fork(obj: Any, func: Callable[[Any], None]) -> None:
    """Call func(obj) in a child process before it runs its target."""
    _afterfork_registry[(next(_afterfork_counter), id(obj), func)] = obj


_finalizer_registry: "dict[Any, Finalize]" = {}
_finalizer_counter = itertools.count()


class Finalize:
    """Calls callback(*args, **kwargs) once: when obj is garbage collected,
    when called, or at exit if exitpriority is not None (higher first)."""

    def __init__(self, obj: Any, callback: Callable[..., Any], args: tuple = (),
                 kwargs: Optional[dict] = None, exitpriority: Optional[int] = None) -> None:
        if exitpriority is not None and not isinstance(exitpriority, int):
            raise TypeError("Exitpriority ({0!r}) must be None or int, not {1!s}".format(
                exitpriority, type(exitpriority)))
        if obj is not None:
            self._weakref = weakref.ref(obj, self)
        elif exitpriority is None:
            raise ValueError("Without object, exitpriority cannot be None")
        self._callback = callback
        self._args = args
        self._kwargs = kwargs or {}
        self._key = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        _finalizer_registry[self._key] = self

    def __call__(self, wr: Any = None,
                 # bound now: at interpreter exit a weakref may fire after
                 # this module's globals are gone
                 _registry: Any = _finalizer_registry, _debug: Any = sub_debug,
                 _getpid: Any = os.getpid) -> Any:
        """Run the callback unless it already ran."""
        try:
            del _registry[self._key]
        except KeyError:
            _debug("finalizer no longer registered")
            return None
        if self._pid != _getpid():
            _debug("finalizer ignored because different process")
            res = None
        else:
            _debug("finalizer calling %s with args %s and kwargs %s",
                      self._callback, self._args, self._kwargs)
            res = self._callback(*self._args, **self._kwargs)
        self._weakref = self._callback = self._args = self._kwargs = self._key = None
        return res

    def cancel(self) -> None:
        """Cancel the finalizer without running it."""
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            pass
        else:
            self._weakref = self._callback = self._args = self._kwargs = self._key = None

    def still_active(self) -> bool:
        return self._key in _finalizer_registry

    def __repr__(self) -> str:
        try:
            obj = self._weakref()
        except (AttributeError, TypeError):
            obj = None
        if obj is None:
            return "<%s object, dead>" % type(self).__name__
        x = "<%s object, callback=%s" % (type(self).__name__,
                                         getattr(self._callback, "__name__", self._callback))
        if self._args:
            x += ", args=" + str(self._args)
        if self._kwargs:
            x += ", kwargs=" + str(self._kwargs)
        if self._key[0] is not None:
            x += ", exitpriority=" + str(self._key[0])
        return x + ">"


def _run_finalizers(minpriority: Optional[int] = None) -> None:
    """Run finalizers with priority >= minpriority (all with a priority if
    None), highest priority first, newest first among equals."""
    if _finalizer_registry is None:
        return
    if minpriority is None:
        def wanted(p):
            return p[0] is not None
    else:
        def wanted(p):
            return p[0] is not None and p[0] >= minpriority
    keys = [key for key in list(_finalizer_registry) if wanted(key)]
    keys.sort(reverse=True)
    for key in keys:
        finalizer = _finalizer_registry.get(key)
        if finalizer is not None:
            sub_debug("calling %s", finalizer)
            try:
                finalizer()
            except Exception:
                import traceback
                traceback.print_exc()
    if minpriority is None:
        _finalizer_registry.clear()


_exiting = False


def is_exiting() -> bool:
    """Whether the process is shutting down."""
    return _exiting or _exiting is None


def _exit_function() -> None:
    """At exit: run finalizers, terminate daemonic children, join the rest."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    info("process shutting down")
    _run_finalizers(0)
    if process.current_process() is not None:
        for p in process.active_children():
            if p.daemon:
                info("calling terminate() for daemon %s", p.name)
                p._popen.terminate()
        for p in process.active_children():
            info("calling join() for process %s", p.name)
            p.join()
    _run_finalizers()


atexit.register(_exit_function)


class ForkAwareThreadLock:
    """A threading.Lock that is replaced by a fresh one in a child process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        register_after_fork(self, ForkAwareThreadLock._at_fork_reinit)

    def _at_fork_reinit(self) -> None:
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> None:
        return self._lock.__exit__(*args)


class ForkAwareLocal(threading.local):
    """A threading.local that is emptied in a child process."""

    def __init__(self) -> None:
        register_after_fork(self, lambda obj: obj.__dict__.clear())

    def __reduce__(self):
        return type(self), ()


try:
    MAXFD = os.sysconf("SC_OPEN_MAX")
except (AttributeError, ValueError, OSError):
    MAXFD = 256


def close_all_fds_except(fds: "list[int]") -> None:
    fds = sorted(set(list(fds) + [-1]))
    fds.append(MAXFD)
    for i in range(len(fds) - 1):
        os.closerange(fds[i] + 1, fds[i + 1])


def spawnv_passfds(path: str, args: "list[str]", passfds: Any) -> int:
    """Start the program at path with args, passing the descriptors passfds
    (under their own numbers) and no other; returns its pid, which the
    caller reaps. The child does not die with this process."""
    import subprocess
    # subprocess forks and execs in C, which is safe once Go runs
    proc = subprocess.Popen(args, executable=path, close_fds=True,
                            pass_fds=sorted({int(fd) for fd in passfds}))
    # the caller reaps the pid: keep subprocess from doing it behind its back
    proc.returncode = 0
    return proc.pid


def close_fds(*fds: int) -> None:
    """Close each file descriptor given as an argument."""
    for fd in fds:
        os.close(fd)


def _close_stdin() -> None:
    # a child does not read its parent's stdin
    if sys.stdin is None:
        return
    try:
        sys.stdin.close()
    except (OSError, ValueError):
        pass
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            sys.stdin = open(fd, encoding="utf-8", closefd=False)
        except BaseException:
            os.close(fd)
            raise
    except (OSError, ValueError):
        pass


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (AttributeError, ValueError):
            pass


def _cleanup_tests() -> None:
    """Stop what a test run of multiprocessing left running (children, the
    zygotes, the resource tracker) and remove its temporary directories."""
    from test import support
    from . import resource_tracker, zygote
    process._cleanup()
    zygote.stop_all()
    resource_tracker._resource_tracker._stop()
    _run_finalizers()
    support.gc_collect()
    support.reap_children()

"""Process objects: the stdlib's ``multiprocessing.process`` API.

A :class:`BaseProcess` describes work to run in a child process; a start
method (see :mod:`gomp.context`) supplies the ``_Popen`` that starts it.
"""
from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import weakref
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Mapping, Optional

__all__ = ["BaseProcess", "current_process", "active_children", "parent_process"]


def current_process() -> "BaseProcess":
    """Return the process object representing the current process."""
    return _current_process


def active_children() -> "list[BaseProcess]":
    """Return the list of living children of the current process (joining
    any that have finished)."""
    _cleanup()
    return list(_children)


def parent_process() -> "Optional[BaseProcess]":
    """Return the process object of the parent, or None in the main process."""
    return _parent_process


def _cleanup() -> None:
    # forget children that have exited
    for p in list(_children):
        popen = p._popen
        if popen is not None and popen.poll() is not None:
            _children.discard(p)


class BaseProcess:
    """Process objects represent activity that is run in a separate process.

    The class is analogous to :class:`threading.Thread`.
    """

    _start_method: Optional[str] = None

    def _Popen(self, process_obj: "BaseProcess"):
        raise NotImplementedError

    def __init__(self, group: None = None, target: Optional[Callable[..., Any]] = None,
                 name: Optional[str] = None, args: Iterable[Any] = (),
                 kwargs: Mapping[str, Any] = {}, *, daemon: Optional[bool] = None) -> None:
        assert group is None, "group argument must be None for now"
        count = next(_process_counter)
        self._identity = _current_process._identity + (count,)
        self._config = _current_process._config.copy()
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._popen = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._name = name or (type(self).__name__ + "-" +
                              ":".join(str(i) for i in self._identity))
        if daemon is not None:
            self.daemon = daemon
        _dangling.add(self)

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError("process object is closed")

    def run(self) -> None:
        """Method to be run in the child process; may be overridden."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        """Start the child process."""
        self._check_closed()
        assert self._popen is None, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), \
            "can only start a process object created by current process"
        assert not _current_process._config.get("daemon"), \
            "daemonic processes are not allowed to have children"
        _cleanup()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
        # the target and its arguments live on in the child only
        del self._target, self._args, self._kwargs
        _children.add(self)

    def terminate(self) -> None:
        """Terminate the process with SIGTERM."""
        self._check_closed()
        if self._popen is not None:
            self._popen.terminate()

    def kill(self) -> None:
        """Terminate the process with SIGKILL."""
        self._check_closed()
        if self._popen is not None:
            self._popen.kill()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the process terminates, or until timeout seconds pass."""
        self._check_closed()
        assert self._parent_pid == os.getpid(), "can only join a child process"
        assert self._popen is not None, "can only join a started process"
        res = self._popen.wait(timeout)
        if res is not None:
            _children.discard(self)

    def is_alive(self) -> bool:
        """Return whether the process is alive."""
        self._check_closed()
        if self is _current_process:
            return True
        assert self._parent_pid == os.getpid(), "can only test a child process"
        if self._popen is None:
            return False
        if self._popen.poll() is None:
            return True
        _children.discard(self)
        return False

    def close(self) -> None:
        """Release the resources held by the process object.

        Raises ValueError if the process is still running."""
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().")
            self._popen.close()
            self._popen = None
            del self._sentinel
            _children.discard(self)
        self._closed = True

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        assert isinstance(name, str), "name must be a string"
        self._name = name

    @property
    def daemon(self) -> bool:
        """Whether the process is a daemon: terminated when its parent exits,
        and not allowed to have children of its own."""
        return self._config.get("daemon", False)

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        assert self._popen is None, "process has already started"
        self._config["daemon"] = daemonic

    @property
    def authkey(self) -> bytes:
        return self._config["authkey"]

    @authkey.setter
    def authkey(self, authkey: bytes) -> None:
        self._config["authkey"] = AuthenticationString(authkey)

    @property
    def exitcode(self) -> Optional[int]:
        """The exit code: None while running, -N if killed by signal N."""
        self._check_closed()
        if self._popen is None:
            return self._popen
        return self._popen.poll()

    @property
    def ident(self) -> Optional[int]:
        """The process id, None before the process starts."""
        self._check_closed()
        if self is _current_process:
            return os.getpid()
        return self._popen and self._popen.pid

    pid = ident

    @property
    def sentinel(self) -> int:
        """A file descriptor that becomes readable when the process ends."""
        self._check_closed()
        try:
            return self._sentinel
        except AttributeError:
            raise ValueError("process not started") from None

    def __repr__(self) -> str:
        exitcode = None
        if self is _current_process:
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._parent_pid != os.getpid():
            status = "unknown"
        elif self._popen is None:
            status = "initial"
        else:
            exitcode = self._popen.poll()
            status = "stopped" if exitcode is not None else "started"
        info = [type(self).__name__, "name=%r" % self._name]
        if self._popen is not None:
            info.append("pid=%s" % self._popen.pid)
        info.append("parent=%s" % self._parent_pid)
        info.append(status)
        if exitcode is not None:
            info.append("exitcode=%s" % _exitcode_to_name.get(exitcode, exitcode))
        if self.daemon:
            info.append("daemon")
        return "<%s>" % " ".join(info)

    def _bootstrap(self, parent_sentinel: Optional[int] = None) -> int:
        """Run in the child: become the current process, run(), and return
        the exit code the child should exit with."""
        from . import util, context
        global _current_process, _parent_process, _process_counter, _children
        try:
            if self._start_method is not None:
                context._force_start_method(self._start_method)
            _process_counter = itertools.count(1)
            _children = set()
            util._close_stdin()
            old_process = _current_process
            _current_process = self
            _parent_process = _ParentProcess(self._parent_name, self._parent_pid,
                                             parent_sentinel)
            if hasattr(threading.main_thread(), "_set_native_id"):
                threading.main_thread()._set_native_id()
            try:
                util._run_after_forkers()
            finally:
                del old_process
            util.info("child process calling self.run()")
            try:
                self.run()
                exitcode = 0
            finally:
                util._exit_function()
        except SystemExit as e:
            if e.code is None:
                exitcode = 0
            elif isinstance(e.code, int):
                exitcode = e.code
            else:
                sys.stderr.write(str(e.code) + "\n")
                exitcode = 1
        except BaseException:
            exitcode = 1
            import traceback
            sys.stderr.write("Process %s:\n" % self.name)
            traceback.print_exc()
        finally:
            threading._shutdown()
            util.info("process exiting with exitcode %d" % exitcode)
            util._flush_std_streams()
        return exitcode


class AuthenticationString(bytes):
    """Bytes that refuse to be pickled except to start a child process."""

    def __reduce__(self):
        from .context import get_spawning_popen
        if get_spawning_popen() is None:
            raise TypeError("Pickling an AuthenticationString object is "
                            "disallowed for security reasons")
        return AuthenticationString, (bytes(self),)


class _ParentProcess(BaseProcess):
    """The parent, as seen from a child: it can only be watched."""

    def __init__(self, name: str, pid: int, sentinel: Optional[int]) -> None:
        self._identity = ()
        self._name = name
        self._pid = pid
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._sentinel = sentinel
        self._config = {}

    def is_alive(self) -> bool:
        from .connection import wait
        return not wait([self._sentinel], timeout=0)

    @property
    def ident(self) -> int:
        return self._pid

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the parent process terminates."""
        from .connection import wait
        wait([self._sentinel], timeout=timeout)

    pid = ident


class _MainProcess(BaseProcess):
    """The process the program started in."""

    def __init__(self) -> None:
        self._identity = ()
        self._name = "MainProcess"
        self._parent_pid = None
        self._popen = None
        self._closed = False
        # everything in _config is inherited by descendants
        self._config = {"authkey": AuthenticationString(os.urandom(32)),
                        "semprefix": "/mp"}

    def close(self) -> None:
        pass


# the working directory at start-up; a child resolves a relative main path here
try:
    ORIGINAL_DIR: Optional[str] = os.path.abspath(os.getcwd())
except OSError:
    ORIGINAL_DIR = None

_parent_process: Optional[BaseProcess] = None
_current_process: BaseProcess = _MainProcess()
_process_counter = itertools.count(1)
_children: "set[BaseProcess]" = set()
del _MainProcess

_exitcode_to_name = {}
for _name, _signum in list(signal.__dict__.items()):
    if _name[:3] == "SIG" and "_" not in _name:
        _exitcode_to_name[-_signum] = f"-{_name}"
del _name, _signum

# processes that may still be running, for debugging
_dangling: "weakref.WeakSet[BaseProcess]" = weakref.WeakSet()

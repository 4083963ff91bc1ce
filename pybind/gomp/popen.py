"""Starting and watching one child process (the stdlib's ``popen_*``).

A child is forked by the zygote of its start method (see :mod:`gomp.zygote`);
if no zygote can be had, it is started by fork+exec from the Go core. Either
way the parent holds a sentinel descriptor that becomes readable when the
child exits, and a pidfd to signal it without risk of pid reuse.
"""
from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import threading
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

from . import _stdlib
from . import context
from . import reduction
from . import spawn
from . import util
from . import zygote

__all__ = ["Popen"]

# a signal that could not be sent is an error only if the child has not
# ended within this (seconds), as in the stdlib
_SIGNAL_FAILED_WAIT = 0.1


class _ChildFd:
    """A descriptor passed to a child at start; it names its slot."""

    def __init__(self, slot: int) -> None:
        self.slot = slot

    def detach(self) -> int:
        return spawn.inherited_fd(self.slot)


class Popen:
    """A started child: pid, sentinel, poll/wait/terminate/kill/close."""

    method: str

    def __init__(self, process_obj: Any, method: str) -> None:
        util._flush_std_streams()
        self.method = method
        self.returncode: Optional[int] = None
        self.finalizer = None
        self._fds: "list[int]" = []
        self._collect_lock = threading.Lock()
        self._launch(process_obj)

    # for objects that pass a descriptor while the process object is pickled
    DupFd = _ChildFd

    def duplicate_for_child(self, fd: int) -> int:
        """Arrange for fd to be passed to the child; returns its slot."""
        self._fds.append(fd)
        return len(self._fds) - 1

    def _launch(self, process_obj: Any) -> None:
        prep = spawn.get_preparation_data(process_obj._name)
        # the child shares this process's resource tracker, if one runs
        tracker = sys.modules.get(__package__ + ".resource_tracker")
        tracker_fd = tracker._fd_for_child() if tracker is not None else None
        if tracker_fd is not None:
            prep["tracker_fd_slot"] = self.duplicate_for_child(tracker_fd)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        _stdlib.set_spawning_popen(self)  # for the stdlib's objects among the arguments
        try:
            pickle.dump(prep, buf, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                reduction.dump(process_obj, buf, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:
                if hasattr(e, "add_note"):
                    e.add_note("(gomp: while pickling the process object %r for its child)"
                               % process_obj.name)
                raise
        finally:
            context.set_spawning_popen(None)
            _stdlib.set_spawning_popen(None)
        payload = buf.getbuffer()
        # a frozen executable cannot run the zygote's `python -c`
        if os.environ.get("GOMP_START") == "exec" or getattr(sys, "frozen", False):
            self._start_by_exec(payload)
            return
        out, err = zygote.usable_fd(1), zygote.usable_fd(2)
        try:
            self._start_by_zygote(payload, [out, err, *self._fds])
        finally:
            for fd, std in ((out, 1), (err, 2)):
                if fd != std:
                    os.close(fd)

    def _start_by_zygote(self, payload: Any, fds: "list[int]") -> None:
        for attempt in range(2):
            z = zygote.get(self.method)
            try:
                self.pid, self._pidfd, self._status_fd = z.start(payload, fds)
            except OSError:
                # the zygote died (killed by a user, say): one new one
                zygote.discard(z)
                if attempt:
                    raise
                continue
            # the sentinel: the status pipe of a zygote's child, else the pidfd
            self.sentinel = self._status_fd if self._status_fd >= 0 else self._pidfd
            self._close_when_dropped()
            return

    def _start_by_exec(self, payload: Any) -> None:
        # the child reads its start-up data from descriptor 3 (a pipe); the
        # descriptors it inherits follow from 4 on
        r, w = os.pipe()
        try:
            self.pid, self._pidfd = zygote.exec_child(
                spawn.get_command_line() + ["3"], [r, *self._fds])
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._status_fd = -1
        self.sentinel = self._pidfd
        self._close_when_dropped()
        child_fds = range(4, 4 + len(self._fds))
        head = len(child_fds).to_bytes(4, "little") + len(payload).to_bytes(4, "little")
        head += b"".join(fd.to_bytes(4, "little") for fd in child_fds)
        try:
            with open(w, "wb", closefd=True) as f:
                f.write(head)
                f.write(payload)
        except BrokenPipeError:
            pass  # the child died early: poll() tells how

    def _close_when_dropped(self) -> None:
        # a Popen dropped without close() must not leak its descriptors
        self.finalizer = util.Finalize(self, _close_fds, ([self._pidfd, self._status_fd],))

    def poll(self, flag: int = os.WNOHANG) -> Optional[int]:
        """The exit code, or None if the child runs (flag=0 waits)."""
        if self.returncode is None:
            timeout = 0 if flag & os.WNOHANG else None
            if not zygote.wait_readable(self.sentinel, timeout):
                return None
            # several threads may poll one child: one of them collects
            with self._collect_lock:
                if self.returncode is None:
                    self.returncode = self._collect()
        return self.returncode

    def _collect(self) -> Optional[int]:
        if self._status_fd >= 0:
            code = _read_status(self._status_fd)
            if code is None:
                # the zygote died before it could tell; its children die
                # with it (PR_SET_PDEATHSIG)
                zygote.wait_readable(self._pidfd, None)
                code = -signal.SIGKILL
            return code
        try:
            return _reap(self._pidfd)
        except ChildProcessError:
            # reaped behind our back (os.wait() elsewhere): unknowable, as
            # in the stdlib
            return None

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait up to timeout seconds (None: forever) for the child to exit."""
        if self.returncode is None:
            if timeout is not None:
                if not zygote.wait_readable(self.sentinel, timeout):
                    return None
            return self.poll(0)
        return self.returncode

    def _send_signal(self, sig: int) -> None:
        if self.returncode is None and self._pidfd >= 0:
            try:
                # through the pidfd: a recycled pid cannot be hit
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass
            except OSError:
                if self.wait(timeout=_SIGNAL_FAILED_WAIT) is None:
                    raise

    def terminate(self) -> None:
        self._send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._send_signal(signal.SIGKILL)

    def close(self) -> None:
        if self.finalizer is not None:
            self.finalizer()
        self._status_fd = self._pidfd = self.sentinel = -1


def _reap(pidfd: int) -> Optional[int]:
    """The exit code of our child behind pidfd (negative: the signal that
    killed it), or None while it runs."""
    info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    if info is None or info.si_pid == 0:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


def _read_status(fd: int) -> Optional[int]:
    """The exit code the zygote wrote on a status pipe, or None if it
    closed the pipe first."""
    data = b""
    while len(data) < 4:
        chunk = os.read(fd, 4 - len(data))
        if not chunk:
            return None
        data += chunk
    return int.from_bytes(data, "little", signed=True)


def _close_fds(fds: "list[int]") -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

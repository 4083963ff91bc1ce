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
from typing import Any, Optional

from . import _core
from . import context
from . import reduction
from . import spawn
from . import util
from . import zygote

__all__ = ["Popen"]


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
        self._launch(process_obj)

    # for objects that pass a descriptor while the process object is pickled
    DupFd = _ChildFd

    def duplicate_for_child(self, fd: int) -> int:
        """Arrange for fd to be passed to the child; returns its slot."""
        self._fds.append(fd)
        return len(self._fds) - 1

    def _launch(self, process_obj: Any) -> None:
        prep = spawn.get_preparation_data(process_obj._name)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
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
        payload = buf.getbuffer()
        if os.environ.get("GOMP_START") == "exec":
            self._start_by_exec(payload)
            return
        for attempt in range(2):
            z = zygote.get(self.method)
            try:
                self.pid, self.sentinel, self._pidfd = z.start(payload, [1, 2, *self._fds])
            except OSError:
                # the zygote died (killed by a user, say): one new one
                zygote.discard(z)
                if attempt:
                    raise
                continue
            self._by_zygote = True
            return

    def _start_by_exec(self, payload: Any) -> None:
        r, w = os.pipe()
        try:
            argv = spawn.get_command_line()
            first_extra = 4
            argv.append("3")
            env = [f"{k}={v}" for k, v in os.environ.items()]
            child_fds = list(range(first_extra, first_extra + len(self._fds)))
            self.pid, self._pidfd = _core.go().spawn(
                argv[0], argv, env, None, [0, 1, 2, r, *self._fds])
        finally:
            os.close(r)
        self.sentinel = self._pidfd
        self._by_zygote = False
        try:
            head = len(child_fds).to_bytes(4, "little") + len(payload).to_bytes(4, "little")
            head += b"".join(fd.to_bytes(4, "little") for fd in child_fds)
            with open(w, "wb", closefd=True) as f:
                f.write(head)
                f.write(payload)
        except BrokenPipeError:
            pass  # the child died early: poll() tells how

    def poll(self, flag: int = os.WNOHANG) -> Optional[int]:
        """The exit code, or None if the child runs (flag=0 waits)."""
        if self.returncode is None:
            g = _core.go()
            if flag & os.WNOHANG:
                if not g.wait_readable(self.sentinel, 0):
                    return None
            else:
                g.wait_readable(self.sentinel, None)
            if self._by_zygote:
                code = g.read_status(self.sentinel)
                if code is None:
                    # the zygote died before it could tell; its children
                    # die with it (PR_SET_PDEATHSIG)
                    g.wait_readable(self._pidfd, None)
                    code = -signal.SIGKILL
            else:
                code = g.reap(self._pidfd)
                if code is None:
                    return None
            self.returncode = code
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait up to timeout seconds (None: forever) for the child to exit."""
        if self.returncode is None:
            if timeout is not None:
                if not _core.go().wait_readable(self.sentinel, timeout):
                    return None
            return self.poll(0)
        return self.returncode

    def _send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                _core.go().signal(self._pidfd, sig)
            except ProcessLookupError:
                pass
            except OSError:
                if self.wait(timeout=0.1) is None:
                    raise

    def terminate(self) -> None:
        self._send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._send_signal(signal.SIGKILL)

    def close(self) -> None:
        for name in ("sentinel", "_pidfd"):
            fd = getattr(self, name, None)
            if fd is not None and fd >= 0:
                setattr(self, name, -1)
                if name == "_pidfd" and not self._by_zygote:
                    continue  # the sentinel is the pidfd itself
                try:
                    os.close(fd)
                except OSError:
                    pass

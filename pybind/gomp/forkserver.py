"""The stdlib's ``multiprocessing.forkserver``, over gomp's zygote.

gomp's forkserver start method forks children from a zygote (see
:mod:`gomp.zygote`) rather than from the stdlib's server, which talks over
a socket of its own; this module keeps the stdlib's names for code that
reaches for them: ``ensure_running()``, the server's pid, stopping it,
the modules it preloads, and the descriptors a child inherited.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from . import spawn
from . import zygote

__all__ = ["ensure_running", "get_inherited_fds", "connect_to_new_process",
           "set_forkserver_preload"]

MAXFDS_TO_SEND = 256


class ForkServer:
    """The forkserver start method's server: gomp's forkserver zygote."""

    _METHOD = "forkserver"

    @property
    def _forkserver_pid(self) -> Optional[int]:
        z = zygote.running(self._METHOD)
        return None if z is None else z.pid

    # the stdlib's server listens on this; gomp's zygote has a socketpair
    _forkserver_address = None
    _forkserver_alive_fd = None
    _inherited_fds: Optional[List[int]] = None

    def _stop(self) -> None:
        """Stop the server; the next start makes a new one."""
        z = zygote.running(self._METHOD)
        if z is not None:
            zygote.discard(z)

    def set_forkserver_preload(self, modules_names: Sequence[str]) -> None:
        """Set list of module names to try to load in forkserver process."""
        zygote.set_preload(modules_names)

    def get_inherited_fds(self) -> Optional[List[int]]:
        """Return list of fds inherited from parent process (None when this
        process was not started by the forkserver method)."""
        return list(spawn._inherited_fds) if spawn._inherited_fds else None

    def connect_to_new_process(self, fds: Sequence[int]) -> None:
        raise NotImplementedError(
            "gomp's forkserver is not driven through a socket: start a Process "
            "with the forkserver context instead")

    def ensure_running(self) -> None:
        """Make sure that the server is running."""
        zygote.get(self._METHOD)


_forkserver = ForkServer()
ensure_running = _forkserver.ensure_running
get_inherited_fds = _forkserver.get_inherited_fds
connect_to_new_process = _forkserver.connect_to_new_process
set_forkserver_preload = _forkserver.set_forkserver_preload

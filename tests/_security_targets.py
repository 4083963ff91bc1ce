"""Initializers that the security tests run in a manager's process
(importable by name there)."""
from __future__ import annotations

import threading


def set_auth_timeout(seconds: float) -> None:
    """Give the manager's clients this long to authenticate."""
    from gomp import managers
    managers.AUTH_TIMEOUT = seconds


def fail_next_thread_start_in_accepter() -> None:
    """Make the next thread that the manager's accepter starts fail to
    start, as it does when a process limit is reached."""
    real_start = threading.Thread.start
    armed = [True]

    def start(self: threading.Thread) -> None:
        if armed[0] and threading.current_thread().name == "gomp-manager-accepter":
            armed[0] = False
            raise RuntimeError("can't start new thread")
        real_start(self)

    threading.Thread.start = start  # type: ignore[method-assign]

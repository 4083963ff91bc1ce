"""Running small Python programs in a fresh interpreter, for tests of what a
whole program does (its __main__, its exit, signals sent to it)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import gomp

# the directory gomp is imported from, so that a child interpreter finds the same one
GOMP_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(gomp.__file__)))


def env(**extra: str) -> "dict[str, str]":
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (GOMP_ROOT, e.get("PYTHONPATH")) if p)
    e.update(extra)
    return e


def write(path, source: str) -> str:
    path.write_text(textwrap.dedent(source))
    return str(path)


def run(args, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing its output as text."""
    kw.setdefault("env", env())
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def run_script(path, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, str(path), *args], timeout=timeout, **kw)


def start(args, **kw) -> subprocess.Popen:
    """Start a command with its output captured; the caller stops it."""
    kw.setdefault("env", env())
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 30) -> str:
    """Read proc's stdout until a line starting with prefix (or fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"no line starting with {prefix!r} from the script")


def pid_alive(pid: int) -> bool:
    """Whether pid names a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def kill_quietly(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=10)

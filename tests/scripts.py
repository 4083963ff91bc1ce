"""Running small Python programs in a fresh interpreter, for tests of what a
whole program does (its __main__, its exit, signals sent to it), and
looking at processes by pid. Every test starts its child interpreters with
these."""
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
# the tests' directory, for children that import its target modules
TESTS = os.path.dirname(os.path.abspath(__file__))
# the repository, for its examples
ROOT = os.path.dirname(TESTS)


def env(*path: str, **extra: str) -> "dict[str, str]":
    """This process's environment for a child interpreter: gomp's directory,
    then path's, then the inherited PYTHONPATH on its path; extra set on top
    (PYTHONPATH=... replaces the whole path)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (GOMP_ROOT, *path, e.get("PYTHONPATH")) if p)
    e.update(extra)
    return e


def example(name: str) -> str:
    """The path of one of the repository's examples."""
    return os.path.join(ROOT, "examples", name)


def write(path, source: str) -> str:
    path.write_text(textwrap.dedent(source))
    return str(path)


def run(args, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing its output as text."""
    kw.setdefault("env", env())
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def run_script(path, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, str(path), *args], timeout=timeout, **kw)


def run_code(code: str, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run Python source (dedented) in a child interpreter, as run() does."""
    return run([sys.executable, "-c", textwrap.dedent(code), *args], timeout=timeout, **kw)


def start(args, **kw) -> subprocess.Popen:
    """Start a command with its output captured (as text; stdout= and
    stderr= may say otherwise); the caller stops it."""
    kw.setdefault("env", env())
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(args, text=True, **kw)


def start_code(code: str, *args: str, **kw) -> subprocess.Popen:
    """Start Python source (dedented) in a child interpreter, as start() does."""
    return start([sys.executable, "-c", textwrap.dedent(code), *args], **kw)


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


def _stat(pid: int) -> "list[str]":
    """The fields of /proc/<pid>/stat after the command's name (the state
    first); raises FileNotFoundError or ProcessLookupError if pid is gone."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """Whether pid names a live (not zombie) process."""
    try:
        state = _stat(pid)[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def start_time(pid: int) -> "int | None":
    """pid's start time (field 22 of /proc/<pid>/stat, in clock ticks since
    boot), which tells a process from a later one given its pid; None if
    there is no such process (a zombie has one)."""
    try:
        return int(_stat(pid)[19])
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_gone(*pids: int, timeout: float = 10) -> bool:
    """Wait up to timeout seconds until none of pids is alive; whether so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(pid) for pid in pids):
            return True
        time.sleep(0.02)
    return False


def kill_quietly(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=10)


def kill_children() -> None:
    """Kill and join the process children still running here, gomp's and
    the stdlib's (whatever started them)."""
    import multiprocessing
    for p in gomp.active_children() + multiprocessing.active_children():
        try:
            p.kill()
            p.join(5)
        except Exception:
            pass

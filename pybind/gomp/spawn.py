"""Spawn semantics: what a child needs from its parent to unpickle and run a
process object, and the child's side of starting (the stdlib's
``multiprocessing.spawn``).

A child imports the parent's ``__main__`` as ``__mp_main__`` (from its path,
or by module name for ``python -m``), with the parent's ``sys.path``,
``sys.argv``, working directory and environment.
"""
from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import types
# typing costs milliseconds at start-up: only for type checkers
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

from . import _install
from . import process
from . import util

__all__ = ["_main", "freeze_support", "set_executable", "get_executable",
           "get_preparation_data", "get_command_line", "import_main_path", "prepare"]

WINEXE = False
WINSERVICE = False

_executable: Optional[str] = None


def set_executable(exe: str) -> None:
    """Set the interpreter that starts children (default: sys.executable)."""
    global _executable
    _executable = os.fsdecode(exe) if exe is not None else None


def get_executable() -> str:
    return _executable or sys.executable


def __getattr__(name: str) -> Any:
    # the stdlib's module names: the interpreter children run, and the
    # package's start-method functions
    if name == "_python_exe":
        return get_executable()
    if name in ("get_start_method", "set_start_method"):
        from . import context
        return getattr(context._default_context, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def is_forking(argv: "list[str]") -> bool:
    """Whether argv is that of a child being started (frozen executables)."""
    return len(argv) >= 2 and argv[1] == "--gomp-child"


def freeze_support() -> None:
    """Run the child's code when a frozen executable is started as a child."""
    if is_forking(sys.argv):
        fd = int(sys.argv[2])
        sys.exit(exec_main(fd))


def get_command_line(**kwds: Any) -> "list[str]":
    """The command line of an exec-started child; it reads its start-up data
    from the descriptor given as the last argument."""
    if getattr(sys, "frozen", False):
        return [get_executable(), "--gomp-child"]
    import subprocess
    prog = "from gomp.spawn import exec_main; import sys; sys.exit(exec_main(int(sys.argv[1])))"
    return [get_executable(), *subprocess._args_from_interpreter_flags(), "-c", prog]


def _check_not_importing_main() -> None:
    if getattr(process.current_process(), "_inheriting", False):
        raise RuntimeError("""
        An attempt has been made to start a new process before the
        current process has finished its bootstrapping phase.

        This probably means that you are not using fork to start your
        child processes and you have forgotten to use the proper idiom
        in the main module:

            if __name__ == '__main__':
                freeze_support()
                ...

        The "freeze_support()" line can be omitted if the program
        is not going to be frozen to produce an executable.""")


def get_preparation_data(name: str) -> "dict[str, Any]":
    """What a child needs to recreate its parent's state before unpickling."""
    from . import context
    _check_not_importing_main()
    d: "dict[str, Any]" = dict(
        log_to_stderr=util._log_to_stderr,
        authkey=bytes(process.current_process().authkey),
    )
    if util._logger is not None:
        d["log_level"] = util._logger.getEffectiveLevel()
    sys_path = sys.path.copy()
    if "" in sys_path:
        sys_path[sys_path.index("")] = process.ORIGINAL_DIR
    d.update(
        name=name,
        sys_path=sys_path,
        sys_argv=sys.argv,
        orig_dir=process.ORIGINAL_DIR,
        dir=os.getcwd(),
        start_method=context._default_context.get_start_method(),
        env=dict(os.environ),
        parent_pid=os.getpid(),
        installed=_install.installed(),
    )
    d.update(main_reference())
    return d


def main_reference() -> "dict[str, str]":
    """How a child finds the parent's __main__: by module name (python -m),
    by path (a script), or not at all (stdin, -c, the interactive prompt)."""
    main_module = sys.modules["__main__"]
    spec = getattr(main_module, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None:
        if name == "__main__" or name.endswith(".__main__"):
            # a package's __main__ runs the program itself (often with no
            # guard): never re-run it; its functions travel by value
            return {}
        return {"init_main_from_name": name}
    main_path = getattr(main_module, "__file__", None)
    # "<stdin>", "<string>": code that no file holds
    if main_path is not None and not main_path.startswith("<"):
        if not os.path.isabs(main_path) and process.ORIGINAL_DIR is not None:
            main_path = os.path.join(process.ORIGINAL_DIR, main_path)
        return {"init_main_from_path": os.path.normpath(main_path)}
    return {}


def prepare(data: "dict[str, Any]") -> None:
    """Apply the parent's state in a child, then import its __main__."""
    if data.get("installed"):
        _install.install()
    if "name" in data:
        process.current_process().name = data["name"]
    if "authkey" in data:
        process.current_process().authkey = data["authkey"]
    if "log_to_stderr" in data and data["log_to_stderr"]:
        util.log_to_stderr()
    if "log_level" in data:
        util.get_logger().setLevel(data["log_level"])
    if "env" in data:
        _set_environment(data["env"])
    if "sys_path" in data:
        sys.path = data["sys_path"]
    if "sys_argv" in data:
        sys.argv = data["sys_argv"]
    if "dir" in data:
        os.chdir(data["dir"])
    if "orig_dir" in data:
        process.ORIGINAL_DIR = data["orig_dir"]
    if "start_method" in data:
        from . import context
        context._force_start_method(data["start_method"])
    if "tracker_fd_slot" in data:
        from . import resource_tracker
        resource_tracker._use_inherited_fd(inherited_fd(data["tracker_fd_slot"]))
    if "init_main_from_name" in data:
        _fixup_main_from_name(data["init_main_from_name"])
    elif "init_main_from_path" in data:
        _fixup_main_from_path(data["init_main_from_path"])


def _set_environment(env: "dict[str, str]") -> None:
    # only what differs: every assignment is a putenv()
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


# the __main__ modules replaced in a child, kept alive for their globals
old_main_modules: "list[types.ModuleType]" = []


def _fixup_main_from_name(mod_name: str) -> None:
    current_main = sys.modules["__main__"]
    if getattr(current_main.__spec__, "name", None) == mod_name:
        return
    old_main_modules.append(current_main)
    main_module = types.ModuleType("__mp_main__")
    import runpy
    main_content = runpy.run_module(mod_name, run_name="__mp_main__", alter_sys=True)
    main_module.__dict__.update(main_content)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main_module


def _fixup_main_from_path(main_path: str) -> None:
    current_main = sys.modules["__main__"]
    main_name = os.path.splitext(os.path.basename(main_path))[0]
    if main_name == "ipython":
        return
    if getattr(current_main, "__file__", None) == main_path:
        return
    code = compiled(main_path, main=True)
    main_module = types.ModuleType("__mp_main__")
    main_module.__file__ = main_path
    main_module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    old_main_modules.append(current_main)
    saved = sys.modules.get("__mp_main__")
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main_module
    try:
        exec(code, main_module.__dict__)
    except BaseException:
        sys.modules["__main__"] = current_main
        if saved is None:
            sys.modules.pop("__mp_main__", None)
        else:
            sys.modules["__mp_main__"] = saved
        raise


# compiled source files by path, with the version they were compiled from;
# the zygote fills it so that its children only check that nothing changed
_compiled: "dict[str, tuple[int, int, types.CodeType]]" = {}


def compiled(path: str, main: bool = False) -> types.CodeType:
    """The code object of the source file at path, compiled once per
    version (modification time and size); a main script's through a
    bytecode cache of gomp's (see _cached_code), since Python keeps none
    for it."""
    st = os.stat(path)
    hit = _compiled.get(path)
    if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    if main and path.endswith(".py"):
        code = _cached_code(path)
    else:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec", dont_inherit=True)
    _compiled[path] = (st.st_mtime_ns, st.st_size, code)
    return code


# the flags of a bytecode cache file validated by its source's hash (PEP 552)
_PYC_CHECKED_HASH = (0b11).to_bytes(4, "little")


def _cached_code(path: str) -> types.CodeType:
    """The code of a main script, through a bytecode cache in its __pycache__.

    A process compiles its first source in over a millisecond: a child that
    runs the parent's main script (which Python never caches) would pay
    that at every start. The cache is validated by the source's hash, not
    its modification time, so a script rewritten within the same second,
    at the same size, is never run stale; Python's imports accept it too.
    """
    import _imp
    import marshal
    from importlib import _bootstrap_external as bootstrap
    with open(path, "rb") as f:
        source = f.read()
    key = _imp.source_hash(int.from_bytes(bootstrap.MAGIC_NUMBER, "little"), source)
    try:
        cache: Optional[str] = bootstrap.cache_from_source(path)
    except (NotImplementedError, ValueError):
        cache = None
    if cache is not None:
        try:
            with open(cache, "rb") as f:
                head = f.read(16)
                if head == bootstrap.MAGIC_NUMBER + _PYC_CHECKED_HASH + key:
                    code = marshal.loads(f.read())
                    _imp._fix_co_filename(code, path)
                    return code
        except (OSError, ValueError, EOFError, TypeError):
            pass  # absent, or not ours: compile and write it anew
    code = compile(source, path, "exec", dont_inherit=True)
    if cache is not None and not sys.dont_write_bytecode:
        data = bootstrap.MAGIC_NUMBER + _PYC_CHECKED_HASH + key + marshal.dumps(code)
        temp = f"{cache}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(temp, "wb") as f:
                f.write(data)
            os.replace(temp, cache)  # whole or not at all, for a reader racing us
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass
    return code


def import_from_compiled() -> None:
    """Make imports use the code in _compiled for the files it holds (a
    child that must import the user's modules then skips compiling them,
    which matters where no bytecode cache is written)."""
    from importlib.machinery import SourceFileLoader
    if getattr(SourceFileLoader.get_code, "_gomp", False):
        return
    original = SourceFileLoader.get_code

    def get_code(self: Any, fullname: str) -> Any:
        path = getattr(self, "path", None)
        if path in _compiled:
            try:
                return compiled(path)
            except OSError:
                pass
        return original(self, fullname)

    get_code._gomp = True  # type: ignore[attr-defined]
    SourceFileLoader.get_code = get_code  # type: ignore[method-assign]


def import_main_path(main_path: str) -> None:
    """Set sys.modules['__main__'] to the module at main_path."""
    _fixup_main_from_path(main_path)


# descriptors a child received at start, in the order the parent listed them
_inherited_fds: "list[int]" = []


def inherited_fd(slot: int) -> int:
    """The descriptor the parent passed in the given slot (see Popen.DupFd)."""
    return _inherited_fds[slot]


def _parent_sentinel(parent_pid: int) -> int:
    # a pidfd is readable once the process it names has exited
    try:
        return os.pidfd_open(parent_pid)
    except (OSError, AttributeError):
        # already gone (or no pidfd): a pipe with no writer reads as ended
        r, w = os.pipe()
        os.close(w)
        return r


def run_child(payload: Any, fds: "list[int]") -> int:
    """Run a process object in a freshly started child and return its exit
    code. payload holds the preparation data and the pickled process object;
    fds are the descriptors the parent passed (slots for DupFd)."""
    global _inherited_fds
    _inherited_fds = list(fds)
    stream = io.BytesIO(payload)
    data = pickle.load(stream)
    current = process.current_process()
    current._inheriting = True
    try:
        prepare(data)
        obj = pickle.load(stream)
    finally:
        del current._inheriting
    del payload, stream
    parent_sentinel = _parent_sentinel(data["parent_pid"])
    return obj._bootstrap(parent_sentinel)


def finish(exitcode: int) -> int:
    """Do what interpreter exit would (atexit handlers, flushing), for a
    child that leaves with os._exit()."""
    import atexit
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    util._flush_std_streams()
    return exitcode


def exec_main(fd: int) -> int:
    """Entry point of a child started by fork+exec: its start-up data comes
    on descriptor fd (a pipe), framed as a length and the payload."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(fd, "rb", closefd=True) as f:
        head = f.read(8)
        if len(head) != 8:
            return 1
        nfds = int.from_bytes(head[:4], "little")
        size = int.from_bytes(head[4:], "little")
        fds = [int.from_bytes(f.read(4), "little") for _ in range(nfds)]
        payload = f.read(size)
    if len(payload) != size:
        return 1
    return run_child(payload, fds)


def _main(fd: int, parent_sentinel: Optional[int] = None) -> int:
    """The stdlib's name for a spawned child's entry point."""
    return exec_main(fd)


def spawn_main(pipe_handle: int, parent_pid: Optional[int] = None,
               tracker_fd: Optional[int] = None) -> None:
    """Run code of a child started by exec, reading its start-up data from
    pipe_handle, and exit with its exit code."""
    sys.exit(exec_main(pipe_handle))

"""Named shared memory (the stdlib's ``multiprocessing.shared_memory``).

Unlike the segments gomp makes for its own objects, these are named in
/dev/shm by design, exactly as the stdlib names them (``shm_open``), so a
block made by gomp opens by name in a program using the stdlib and the
other way round; ``ShareableList`` uses the stdlib's layout for the same
reason. A block lives until ``unlink()``. Blocks created by the main
process, or by a child that shares its tracker, are registered with the
resource tracker (with ``track=True``, the default, as the stdlib's are,
whether made or opened), which unlinks them once every process of the
program has exited if it forgot to; a child with no tracker of the
program's does not track, so its blocks outlive it.
"""
from __future__ import annotations

import errno
import mmap
import os
import secrets
import struct
import types
from functools import partial
from typing import Any, Iterable, Optional

__all__ = ["SharedMemory", "ShareableList"]

_SHM_DIR = "/dev/shm"
# the stdlib's module names: POSIX shared memory, its names ("/psm_" and 10
# hex digits, short enough for every platform's limit) and flags
_USE_POSIX = True
_O_CREX = os.O_CREAT | os.O_EXCL
_SHM_SAFE_NAME_LENGTH = 14
_SHM_NAME_PREFIX = "/psm_"
# what every open adds: no symbolic link followed, not inherited by exec
_O_ALWAYS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _make_filename() -> str:
    """Create a random filename for the shared memory object."""
    nbytes = (_SHM_SAFE_NAME_LENGTH - len(_SHM_NAME_PREFIX)) // 2
    return _SHM_NAME_PREFIX + secrets.token_hex(nbytes)


def _shm_open(name: str, flags: int, mode: int = 0o600) -> int:
    # what glibc's shm_open does: a file in /dev/shm, no slash in the name
    base = name[1:] if name.startswith("/") else name
    if not base or "/" in base or base in (".", ".."):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), name)
    try:
        return os.open(os.path.join(_SHM_DIR, base), flags | _O_ALWAYS, mode)
    except OSError as e:
        e.filename = name
        raise


def _shm_unlink(name: str) -> None:
    base = name[1:] if name.startswith("/") else name
    try:
        os.unlink(os.path.join(_SHM_DIR, base))
    except OSError as e:
        e.filename = name
        raise


def _may_track() -> bool:
    """Whether a block made or opened here may be registered with the
    resource tracker: in the main process, or in a child that shares its
    parent's tracker. A child with no tracker of the program's would start
    its own, which would unlink the block when the child exits."""
    from . import process, resource_tracker
    return (process.parent_process() is None
            or resource_tracker._resource_tracker._fd is not None)


class SharedMemory:
    """Creates a new shared memory block or attaches to an existing
    shared memory block.

    Every shared memory block is assigned a unique name. This enables
    one process to create a shared memory block with a particular name
    so that a different process can attach to that same shared memory
    block using that same name.

    As a resource for sharing data across processes, shared memory blocks
    may outlive the original process that created them. When one process
    no longer needs access to a shared memory block that might still be
    needed by other processes, the close() method should be called.
    When a shared memory block is no longer needed by any process, the
    unlink() method should be called to ensure proper cleanup."""

    _name: Optional[str] = None
    _fd = -1
    _mmap: Optional[mmap.mmap] = None
    _buf: Optional[memoryview] = None
    _tracked = False
    # as in the stdlib, a subclass may open with other flags or mode
    _flags = os.O_RDWR
    _mode = 0o600
    _prepend_leading_slash = True

    def __init__(self, name: Optional[str] = None, create: bool = False, size: int = 0,
                 *, track: bool = True) -> None:
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            self._flags = _O_CREX | os.O_RDWR
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
        if name is None and not self._flags & os.O_EXCL:
            raise ValueError("'name' can only be None if create=True")

        if name is None:
            while True:
                # looked up at each call: tests replace it
                name = _make_filename()
                try:
                    self._fd = _shm_open(name, self._flags, self._mode)
                except FileExistsError:
                    continue
                break
        else:
            if self._prepend_leading_slash and not name.startswith("/"):
                name = "/" + name
            self._fd = _shm_open(name, self._flags, self._mode)
        self._name = name
        try:
            if create and size:
                os.ftruncate(self._fd, size)
            size = os.fstat(self._fd).st_size
            self._mmap = mmap.mmap(self._fd, size)
        except (OSError, ValueError):
            if create:
                _shm_unlink(name)
            self._close_fd()
            raise
        self._size = size
        self._buf = memoryview(self._mmap)
        if track and _may_track():
            from . import resource_tracker
            resource_tracker.register(self._name, "shared_memory")
            self._tracked = True

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __reduce__(self) -> Any:
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    @property
    def buf(self) -> memoryview:
        "A memoryview of contents of the shared memory block."
        return self._buf  # type: ignore[return-value]

    @property
    def name(self) -> str:
        "Unique name that identifies the shared memory block."
        name = self._name or ""
        return name[1:] if name.startswith("/") else name

    @property
    def size(self) -> int:
        "Size in bytes."
        return self._size

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        """Closes access to the shared memory from this instance but does
        not destroy the shared memory block."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        self._close_fd()

    def unlink(self) -> None:
        """Requests that the underlying shared memory block be destroyed.

        Unlink should be called once (and only once) across all handles
        which have access to the shared memory block, even if these
        handles belong to different processes. Closing and unlinking may
        happen in any order."""
        if self._name:
            _shm_unlink(self._name)
            if self._tracked:
                from . import resource_tracker
                resource_tracker.unregister(self._name, "shared_memory")
                self._tracked = False


_encoding = "utf8"

# ShareableList's layout, the stdlib's (a list made by either opens in the
# other): the item count N (int64); N+1 int64 offsets of the items in the
# data area; the data area, each item in an 8-byte multiple; N struct
# formats of 8 bytes; N one-byte codes saying how to turn the unpacked
# value back into its type.
_FORMATS = {
    int: "q",
    float: "d",
    bool: "xxxxxxx?",
    type(None): "xxxxxx?x",
}
_CODE_PLAIN, _CODE_STR, _CODE_BYTES, _CODE_NONE = 0, 1, 2, 3
_SLOT = 8


def _code(value: Any) -> int:
    if isinstance(value, str):
        return _CODE_STR
    if isinstance(value, bytes):
        return _CODE_BYTES
    if value is None:
        return _CODE_NONE
    return _CODE_PLAIN


def _from_stored(code: int, value: Any) -> Any:
    if code == _CODE_STR:
        return value.rstrip(b"\x00").decode(_encoding)
    if code == _CODE_BYTES:
        return value.rstrip(b"\x00")
    if code == _CODE_NONE:
        return None
    return value


def _format_of(value: Any) -> str:
    if isinstance(value, (str, bytes)):
        # the stdlib's room: the length (in characters for a str) rounded
        # up to whole slots, with at least one byte to spare; but never
        # less than the encoded bytes need (the stdlib would cut a long
        # non-ASCII str short)
        n = len(value)
        encoded = len(value.encode(_encoding)) if isinstance(value, str) else n
        room = max(_SLOT * (n // _SLOT + 1), -(-encoded // _SLOT) * _SLOT)
        return "%ds" % room
    try:
        return _FORMATS[type(value)]
    except KeyError:
        raise TypeError("ShareableList cannot hold %s values" % type(value).__name__) from None


class ShareableList:
    """Pattern for a mutable list-like object shareable via a shared
    memory block.  It differs from the built-in list type in that these
    lists can not change their overall length (i.e. no append, insert,
    etc.)

    Because values are packed into a memoryview as bytes, the struct
    packing format for any storable value must require no more than 8
    characters to describe its format."""

    def __init__(self, sequence: Optional[Iterable[Any]] = None, *,
                 name: Optional[str] = None) -> None:
        if name is None or sequence is not None:
            items = list(sequence or ())
            formats = [_format_of(v) for v in items]
            n = len(items)
            offsets = [0]
            for fmt in formats:
                offsets.append(offsets[-1] + (int(fmt[:-1]) if fmt.endswith("s") else _SLOT))
            size = struct.calcsize("q" * (n + 2) + "".join(formats) + "8s" * n + "b" * n)
            self.shm = SharedMemory(name, create=True, size=size)
            buf = self.shm.buf
            self._list_len = n
            self._allocated_offsets = offsets
            struct.pack_into("q" * (n + 2), buf, 0, n, *offsets)
            stored = [v.encode(_encoding) if isinstance(v, str) else v for v in items]
            struct.pack_into("".join(formats), buf, self._offset_data_start, *stored)
            struct.pack_into("8s" * n, buf, self._offset_packing_formats,
                             *(f.encode(_encoding) for f in formats))
            struct.pack_into("b" * n, buf, self._offset_back_transform_codes,
                             *(_code(v) for v in items))
        else:
            self.shm = SharedMemory(name)
            n = struct.unpack_from("q", self.shm.buf, 0)[0]
            self._list_len = n
            self._allocated_offsets = list(struct.unpack_from("q" * (n + 1), self.shm.buf, 8))

    # where things are
    @property
    def _offset_data_start(self) -> int:
        return (self._list_len + 2) * 8

    @property
    def _offset_packing_formats(self) -> int:
        return self._offset_data_start + self._allocated_offsets[-1]

    @property
    def _offset_back_transform_codes(self) -> int:
        return self._offset_packing_formats + self._list_len * 8

    def _position(self, position: int) -> int:
        if position < 0:
            position += self._list_len
        if not 0 <= position < self._list_len:
            raise IndexError("index out of range")
        return position

    def _get_packing_format(self, position: int) -> str:
        raw = struct.unpack_from("8s", self.shm.buf, self._offset_packing_formats + position * 8)[0]
        return raw.rstrip(b"\x00").decode(_encoding)

    def __getitem__(self, position: int) -> Any:
        position = self._position(position)
        fmt = self._get_packing_format(position)
        (value,) = struct.unpack_from(fmt, self.shm.buf,
                                      self._offset_data_start + self._allocated_offsets[position])
        code = struct.unpack_from("b", self.shm.buf, self._offset_back_transform_codes + position)[0]
        return _from_stored(code, value)

    def __setitem__(self, position: int, value: Any) -> None:
        try:
            position = self._position(position)
        except IndexError:
            raise IndexError("assignment index out of range") from None
        start = self._allocated_offsets[position]
        if isinstance(value, (str, bytes)):
            stored = value.encode(_encoding) if isinstance(value, str) else value
            room = self._allocated_offsets[position + 1] - start
            if len(stored) > room:
                raise ValueError("bytes/str item exceeds available storage")
            current = self._get_packing_format(position)
            fmt = current if current.endswith("s") else "%ds" % room
        else:
            stored = value
            fmt = _format_of(value)
        buf = self.shm.buf
        struct.pack_into("8s", buf, self._offset_packing_formats + position * 8,
                         fmt.encode(_encoding))
        struct.pack_into("b", buf, self._offset_back_transform_codes + position, _code(value))
        struct.pack_into(fmt, buf, self._offset_data_start + start, stored)

    def __reduce__(self) -> Any:
        return partial(self.__class__, name=self.shm.name), ()

    def __len__(self) -> int:
        return struct.unpack_from("q", self.shm.buf, 0)[0]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self)}, name={self.shm.name!r})"

    @property
    def format(self) -> str:
        "The struct packing format used by all currently stored items."
        return "".join(self._get_packing_format(i) for i in range(self._list_len))

    def count(self, value: Any) -> int:
        "L.count(value) -> integer -- return number of occurrences of value."
        return sum(value == entry for entry in self)

    def index(self, value: Any) -> int:
        """L.index(value) -> integer -- return first index of value.
        Raises ValueError if the value is not present."""
        for position, entry in enumerate(self):
            if value == entry:
                return position
        raise ValueError(f"{value!r} not in this container")

    __class_getitem__ = classmethod(types.GenericAlias)

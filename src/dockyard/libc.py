"""libc's functions through a sliver of ``_ctypes``, below every layer that calls one.

Python 3.11 exposes neither mount(2) nor unshare(2) and the like; the store mounts snapshots and the
runtime sets up containers with them.  What is used of ctypes -- four integer types, char buffers, errno
and libc's functions -- is made from ``_ctypes``, the C extension that ``ctypes`` wraps, exactly as
``ctypes/__init__.py`` makes it: the whole ``ctypes`` package costs ~2 ms to import (dozens of classes,
``struct``, ``types``, size checks), a twentieth of a ``dockyard run``.  Should ``_ctypes`` ever lack a
piece, ``ctypes`` itself is used.  libc's functions are resolved from the already loaded libc
(``dlopen(NULL)``), never through ``ldconfig``; nothing is loaded until first used.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_C: Any = None  # the ctypes sliver (or ctypes): c_int, c_uint, c_long, c_ulong, c_size_t, get_errno, ...
_LIBC: Any = None


def _ctypes_sliver() -> tuple[Any, Any]:
    """(types, libc) from ``_ctypes``; the class definitions are ``ctypes/__init__.py``'s own."""
    import _ctypes as _ctypes_module

    _ctypes: Any = _ctypes_module  # private API, untyped here

    class c_int(_ctypes._SimpleCData):
        _type_ = "i"

    class c_uint(_ctypes._SimpleCData):
        _type_ = "I"

    class c_long(_ctypes._SimpleCData):
        _type_ = "l"

    class c_ulong(_ctypes._SimpleCData):
        _type_ = "L"

    class _c_char(_ctypes._SimpleCData):
        _type_ = "c"

    c_char: Any = _c_char  # arrays of it (c_char * n) get .value/.raw, as ctypes' own

    class _FuncPtr(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO  # CDLL(..., use_errno=True)
        _restype_ = c_int

    class _Libc:
        """``CDLL(None)``: attribute access resolves (and caches) a function."""

        _handle = _ctypes.dlopen(None, 0)

        def __getattr__(self, name: str) -> Any:
            func = _FuncPtr((name, self))
            setattr(self, name, func)
            return func

    class _Types:
        pass

    def create_string_buffer(init: bytes | int, size: int | None = None) -> Any:
        if isinstance(init, int):
            return (c_char * init)()
        buf: Any = (c_char * (len(init) + 1 if size is None else size))()
        buf.value = init
        return buf

    t: Any = _Types()
    t.c_int, t.c_uint, t.c_long, t.c_ulong, t.c_size_t = c_int, c_uint, c_long, c_ulong, c_ulong
    t.get_errno, t.addressof, t.create_string_buffer = _ctypes.get_errno, _ctypes.addressof, create_string_buffer
    if c_long(-1).value != -1 or c_ulong(1 << 40).value != 1 << 40:  # not an LP64 platform: use ctypes
        raise TypeError("unexpected C type sizes")
    return t, _Libc()


def ct() -> Any:
    """The ctypes sliver, loaded on first use (``import ctypes`` as a fallback)."""
    global _C, _LIBC
    if _C is None:
        try:
            _C, _LIBC = _ctypes_sliver()
        except (ImportError, AttributeError, TypeError, OSError):
            import ctypes

            _C, _LIBC = ctypes, ctypes.CDLL(None, use_errno=True)
    return _C


def libc() -> Any:
    """libc's functions (``CDLL(None, use_errno=True)``)."""
    if _LIBC is None:
        ct()
    return _LIBC


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2).  ``OSError.filename`` is the target so messages name what failed."""
    types = ct()
    if libc().mount(_b(source), _b(target), _b(fstype), types.c_ulong(flags), _b(data or None)) != 0:
        err = types.get_errno()
        raise OSError(err, os.strerror(err), target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2), raising ``OSError`` with the real errno and the target."""
    types = ct()
    if libc().umount2(_b(target), types.c_int(flags)) != 0:
        err = types.get_errno()
        raise OSError(err, f"umount2: {os.strerror(err)}", target)

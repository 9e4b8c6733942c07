"""The few names of ``ctypes`` the kernel modules on the run path use, built on its C half
``_ctypes`` as ``ctypes/__init__.py`` builds them, without the rest of that module: importing
``ctypes`` costs ~2 ms (``struct``, ``types``, ``ctypes._endian`` and ~40 classes); this module
costs ~0.1 ms more than ``_ctypes``. Its types are ctypes' own kind (``_SimpleCData``
subclasses with the same ``_type_`` codes), so they mix with ``ctypes``' where other code
loads that. tests/unit/kernel/test_cdata.py checks each against ``ctypes``.

The modules use it as ``from pyrkt.kernel import cdata as ctypes``; anything not here comes
from ``ctypes`` itself, imported where it is used (off the run path).
"""

from __future__ import annotations

from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_USE_ERRNO,
    POINTER,
    RTLD_LOCAL,
    Array,
    CFuncPtr,
    Structure,
    addressof,
    byref,
    dlopen,
    get_errno,
    sizeof,
)
from _ctypes import _SimpleCData as SimpleCData

__all__ = ["CDLL", "POINTER", "Array", "Structure", "addressof", "byref", "c_byte", "c_char", "c_char_p", "c_int",
           "c_long", "c_size_t", "c_uint", "c_uint32", "c_uint64", "c_ulong", "c_ushort", "c_void_p",
           "create_string_buffer", "get_errno", "sizeof"]

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy reads ctypes' own declarations of the same names
    from ctypes import CDLL as CDLL
    from ctypes import c_byte as c_byte
    from ctypes import c_char as c_char
    from ctypes import c_char_p as c_char_p
    from ctypes import c_int as c_int
    from ctypes import c_long as c_long
    from ctypes import c_uint as c_uint
    from ctypes import c_ulong as c_ulong
    from ctypes import c_ushort as c_ushort
    from ctypes import c_void_p as c_void_p
    from ctypes import create_string_buffer as create_string_buffer
else:
    class c_byte(SimpleCData):
        _type_ = "b"

    class c_char(SimpleCData):
        _type_ = "c"

    class c_char_p(SimpleCData):
        _type_ = "z"

    class c_int(SimpleCData):
        _type_ = "i"

    class c_uint(SimpleCData):
        _type_ = "I"

    class c_long(SimpleCData):
        _type_ = "l"

    class c_ulong(SimpleCData):
        _type_ = "L"

    class c_ushort(SimpleCData):
        _type_ = "H"

    class c_void_p(SimpleCData):
        _type_ = "P"

    def create_string_buffer(init, size=None):
        """A mutable ``char`` buffer of ``size`` bytes (default: ``init`` and a NUL), ``init`` at its start."""
        buf = (c_char * (len(init) + 1 if size is None else size))()
        buf.value = init
        return buf

    class CDLL:
        """A shared library whose functions return C ``int`` unless told otherwise (``restype``),
        errno kept for ``get_errno`` with ``use_errno``: ``ctypes.CDLL`` of a library name."""

        def __init__(self, name, use_errno=False):
            self._name = name
            flags = FUNCFLAG_CDECL | (FUNCFLAG_USE_ERRNO if use_errno else 0)

            class FuncPtr(CFuncPtr):
                _flags_ = flags
                _restype_ = c_int

            self._FuncPtr = FuncPtr
            self._handle = dlopen(name, RTLD_LOCAL)

        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            func = self._FuncPtr((name, self))
            func.__name__ = name
            setattr(self, name, func)
            return func


c_uint32 = c_uint
# as ctypes defines them on Linux, where long is 64 bits wide (LP64; checked below)
c_uint64 = c_ulong
c_size_t = c_ulong
if sizeof(c_ulong) != 8 or sizeof(c_uint) != 4:  # pragma: no cover  (an ILP32 or LLP64 build)
    raise ImportError("pyrkt.kernel.cdata assumes LP64: 32-bit int, 64-bit long")


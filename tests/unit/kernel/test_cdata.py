"""pyrkt.kernel.cdata: ctypes' names the run path's kernel modules use, built on _ctypes, as
ctypes builds them (the run path then does without ctypes' ~2 ms import)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from pyrkt.kernel import cdata

SIMPLE = ("c_byte", "c_char", "c_char_p", "c_int", "c_long", "c_uint", "c_uint32", "c_uint64", "c_ulong",
          "c_ushort", "c_void_p", "c_size_t")


@pytest.mark.parametrize("name", SIMPLE)
def test_simple_types_are_ctypes_own_kind(name: str) -> None:
    mine, theirs = getattr(cdata, name), getattr(ctypes, name)
    assert mine._type_ == theirs._type_
    assert cdata.sizeof(mine) == ctypes.sizeof(theirs)
    assert isinstance(mine(), ctypes._SimpleCData)


def test_the_rest_is_ctypes_own() -> None:
    for name in ("Structure", "Array", "POINTER", "byref", "sizeof", "addressof", "get_errno"):
        assert getattr(cdata, name) is getattr(ctypes, name), name


def test_structures_of_its_types_lay_out_as_ctypes() -> None:
    class Mine(cdata.Structure):
        _fields_ = [("a", cdata.c_ushort), ("b", cdata.c_void_p), ("c", cdata.c_uint64), ("d", cdata.c_int)]

    class Theirs(ctypes.Structure):
        _fields_ = [("a", ctypes.c_ushort), ("b", ctypes.c_void_p), ("c", ctypes.c_uint64), ("d", ctypes.c_int)]

    assert cdata.sizeof(Mine) == ctypes.sizeof(Theirs)
    assert [getattr(Mine, f).offset for f in "abcd"] == [getattr(Theirs, f).offset for f in "abcd"]


def test_string_buffers_as_ctypes() -> None:
    for init, size in ((b"lo", 40), (b"a\0b\0", None), (b"\x01" * 16, 16)):
        mine = cdata.create_string_buffer(init, size)
        assert mine.raw == ctypes.create_string_buffer(init, size).raw
    req = cdata.create_string_buffer(b"lo", 40)  # loopback_up's struct ifreq, its flags set
    buf = cdata.create_string_buffer(req.raw[:16] + (0x1049).to_bytes(2, "little"), 40)
    assert buf.raw[:2] == b"lo" and buf.raw[16:18] == b"\x49\x10" and buf.raw[18:] == bytes(22)


def test_libc_calls_return_int_or_restype_and_keep_errno() -> None:
    libc = cdata.CDLL("libc.so.6", use_errno=True)
    assert libc.getpid() == os.getpid()
    assert libc.close(cdata.c_int(-1)) == -1 and cdata.get_errno() == 9  # EBADF
    libc.labs.restype = cdata.c_long  # as pyrkt.kernel.libc sets syscall's: wider than int
    assert libc.labs(cdata.c_long(-(2**40))) == 2**40
    assert libc.labs.__name__ == "labs"
    with pytest.raises(AttributeError):
        libc.no_such_function_here  # noqa: B018


def test_run_path_kernel_modules_do_not_load_ctypes() -> None:
    code = (f"import sys\nsys.path[:0] = {sys.path!r}\nimport pyrkt.kernel.api, pyrkt.kernel.mount, pyrkt.kernel.libc\n"
            "pyrkt.kernel.libc.libc()\nprint('ctypes' in sys.modules)")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "False\n"), r.stderr

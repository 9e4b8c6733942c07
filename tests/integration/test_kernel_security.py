"""Capabilities, no_new_privs and the default seccomp filter on the real kernel, as an app
process sees them after exec (read from its own /proc/self/status)."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable

import pytest

from pyrkt.kernel import caps, seccomp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: capsets, setresuid, seccomp")

BUSYBOX = "/usr/bin/busybox"
DEFAULT_MASK = "00000000a80425fb"
MOUNT_ERRNOS = """
import ctypes, errno
c = ctypes.CDLL(None, use_errno=True)
c.mount(None, b"/nonexistent/pyrkt-test", b"tmpfs", 0, None)
print("mount", errno.errorcode[ctypes.get_errno()])
c.umount2(b"/nonexistent/pyrkt-test", 0)
print("umount2", errno.errorcode[ctypes.get_errno()])
"""
THREAD = "import threading; t = threading.Thread(target=print, args=('thread ran',)); t.start(); t.join()"


@pytest.fixture(scope="module")
def bpf() -> bytes:
    return seccomp.compile_default()


def run_app(argv: list[str], *, uid: int = 0, keep: Iterable[int] | None = caps.DEFAULT_CAPS,
            bpf: bytes = b"") -> tuple[int, str]:
    """Fork, apply the app's security setup as stage1 does, exec ``argv``; its exit code and output."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            os.dup2(w, 2)
            kept = caps.held() if keep is None else set(keep)
            caps.drop_bounding(kept)
            caps.set_keepcaps(True)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            caps.set_caps(kept, uid=uid)
            caps.set_no_new_privs()
            if bpf:
                seccomp.load_bpf(bpf)
            os.execv(argv[0], argv)
        except BaseException as e:  # report anything to the parent through the pipe
            os.write(2, f"setup failed: {e!r}\n".encode())
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode()


def status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def test_root_app_has_exactly_the_default_caps_nnp_and_a_filter(bpf: bytes) -> None:
    code, out = run_app([BUSYBOX, "cat", "/proc/self/status"], uid=0, bpf=bpf)
    assert code == 0, out
    f = status_fields(out)
    assert (f["CapBnd"], f["CapEff"], f["CapPrm"]) == (DEFAULT_MASK,) * 3
    assert f["CapInh"] == f["CapAmb"] == "0000000000000000"  # as systemd left rkt's apps
    assert f["NoNewPrivs"] == "1"
    assert f["Seccomp"] == "2"
    assert f["Uid"].split() == ["0"] * 4


def test_caps_set_for_a_non_root_uid_are_raised_as_ambient_caps(bpf: bytes) -> None:
    # the kernel call can; stage1 asks it for none (execute.become: as rkt, a non-root app has
    # its caps only in its bounding set)
    code, out = run_app([BUSYBOX, "cat", "/proc/self/status"], uid=1000, bpf=bpf)
    assert code == 0, out
    f = status_fields(out)
    assert (f["CapBnd"], f["CapEff"], f["CapPrm"], f["CapInh"], f["CapAmb"]) == (DEFAULT_MASK,) * 5
    assert f["NoNewPrivs"] == "1"
    assert f["Seccomp"] == "2"
    assert f["Uid"].split() == ["1000"] * 4


def test_all_caps_means_the_caps_the_caller_holds() -> None:
    # This host's bounding set may lack some caps (CAP_SYS_RESOURCE here); asking for all of them
    # must give what there is rather than fail.
    code, out = run_app([BUSYBOX, "cat", "/proc/self/status"], uid=0, keep=caps.ALL_CAPS)
    assert code == 0, out
    f = status_fields(out)
    expected = f"{caps.mask(caps.held() & caps.bounding()):016x}"
    assert (f["CapEff"], f["CapPrm"], f["CapBnd"]) == (expected,) * 3


def test_filter_denies_new_namespaces_with_eperm_even_with_every_cap(bpf: bytes) -> None:
    code, out = run_app([BUSYBOX, "unshare", "-n", "true"], keep=None)
    assert code == 0, out  # control: without the filter these caps suffice
    code, out = run_app([BUSYBOX, "unshare", "-n", "true"], keep=None, bpf=bpf)
    assert code != 0
    assert "Operation not permitted" in out


def test_filter_answers_mount_calls_with_eperm_before_the_kernel_looks_at_them(bpf: bytes) -> None:
    # The targets do not exist, so nothing can be mounted whatever happens; without the filter
    # the kernel itself answers ENOENT.
    code, out = run_app([sys.executable, "-I", "-S", "-c", MOUNT_ERRNOS], keep=None)
    assert (code, out) == (0, "mount ENOENT\numount2 ENOENT\n")
    code, out = run_app([sys.executable, "-I", "-S", "-c", MOUNT_ERRNOS], keep=None, bpf=bpf)
    assert (code, out) == (0, "mount EPERM\numount2 EPERM\n")


def test_shell_pipelines_work_under_the_filter(bpf: bytes) -> None:
    code, out = run_app([BUSYBOX, "sh", "-c", "echo hi | cat; ls / >/dev/null && echo listed"], uid=1000, bpf=bpf)
    assert (code, out) == (0, "hi\nlisted\n")


def test_python_can_start_a_thread_under_the_filter(bpf: bytes) -> None:
    code, out = run_app([sys.executable, "-I", "-S", "-c", THREAD], uid=1000, bpf=bpf)
    assert (code, out) == (0, "thread ran\n")


def test_python_threads_need_clone3_to_get_enosys_not_eperm() -> None:
    rules = tuple(r for r in seccomp.DEFAULT_PROFILE.rules if r.syscall != "clone3")
    without = seccomp.compile_profile(dataclasses.replace(seccomp.DEFAULT_PROFILE, rules=rules))
    code, out = run_app([sys.executable, "-I", "-S", "-c", THREAD], bpf=without)
    assert code != 0
    assert "can't start new thread" in out

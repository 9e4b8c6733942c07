"""The default seccomp profile's contents, its compilation to BPF and the BPF cache (no root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.kernel import seccomp

# Calls a container must never make under the default profile (namespace and mount escapes,
# kernel modules, tracing, kernel keyring, clocks, swap, reboot...).
FORBIDDEN = (
    "mount", "umount", "umount2", "unshare", "setns", "pivot_root", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "ptrace", "keyctl",
    "add_key", "request_key", "swapon", "swapoff", "reboot", "syslog", "open_by_handle_at",
    "name_to_handle_at", "iopl", "ioperm", "acct", "settimeofday", "clock_settime",
    "clock_settime64", "stime", "adjtimex", "clock_adjtime", "lookup_dcookie", "userfaultfd",
    "quotactl", "vhangup", "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr",
    "process_vm_readv", "process_vm_writev", "io_uring_setup", "sethostname", "setdomainname",
)


def test_profile_lists_each_syscall_once() -> None:
    allow = seccomp.DEFAULT_PROFILE.allow
    assert len(allow) == len(set(allow))
    assert not set(allow) & {r.syscall for r in seccomp.DEFAULT_PROFILE.rules}


@pytest.mark.parametrize("name", FORBIDDEN)
def test_dangerous_syscalls_are_not_allowed(name: str) -> None:
    assert name not in seccomp.DEFAULT_PROFILE.allow
    assert name not in {r.syscall for r in seccomp.DEFAULT_PROFILE.rules}


def test_everyday_syscalls_are_allowed() -> None:
    for name in ("read", "write", "openat", "execve", "mmap", "futex", "epoll_wait", "accept4", "wait4"):
        assert name in seccomp.DEFAULT_PROFILE.allow


def test_denied_calls_fail_with_eperm() -> None:
    assert seccomp.DEFAULT_PROFILE.default_errno == 1


def test_clone_is_allowed_only_without_namespace_flags() -> None:
    (rule,) = [r for r in seccomp.DEFAULT_PROFILE.rules if r.syscall == "clone"]
    assert rule.errno is None
    (cond,) = rule.conds
    assert (cond.index, cond.op, cond.a, cond.b) == (0, seccomp.CMP_MASKED_EQ, 0x7E020000, 0)


def test_clone3_gets_enosys_so_libc_falls_back_to_clone() -> None:
    (rule,) = [r for r in seccomp.DEFAULT_PROFILE.rules if r.syscall == "clone3"]
    assert rule.errno == 38 and rule.conds == ()


def test_socket_is_allowed_for_every_family_but_vsock() -> None:
    (rule,) = [r for r in seccomp.DEFAULT_PROFILE.rules if r.syscall == "socket"]
    assert [(c.index, c.op, c.a) for c in rule.conds] == [(0, seccomp.CMP_NE, 40)]


def test_personality_is_allowed_only_for_the_usual_personas() -> None:
    values = {r.conds[0].a for r in seccomp.DEFAULT_PROFILE.rules if r.syscall == "personality"}
    assert values == {0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF}


def test_compiled_default_profile_is_whole_bpf_instructions() -> None:
    bpf = seccomp.compile_default()
    assert len(bpf) >= 8 * 300  # several hundred syscalls on three arches
    assert len(bpf) % 8 == 0
    assert len(bpf) // 8 < 65536  # sock_fprog.len is 16 bits
    assert seccomp.compile_default() == bpf


def test_cache_returns_identical_bytes_and_writes_one_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = seccomp.default_bpf(str(cache))
    assert os.listdir(cache) == [seccomp.cache_name()]
    assert (cache / seccomp.cache_name()).read_bytes() == first
    second = seccomp.default_bpf(str(cache))
    assert second == first == seccomp.compile_default()
    assert os.listdir(cache) == [seccomp.cache_name()]


def test_cache_is_read_rather_than_recompiled(tmp_path: Path) -> None:
    planted = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one instruction: RET ALLOW
    (tmp_path / seccomp.cache_name()).write_bytes(planted)
    assert seccomp.default_bpf(str(tmp_path)) == planted


def test_truncated_cache_file_is_recompiled(tmp_path: Path) -> None:
    (tmp_path / seccomp.cache_name()).write_bytes(b"\x06\x00\x00")
    bpf = seccomp.default_bpf(str(tmp_path))
    assert bpf == seccomp.compile_default()
    assert (tmp_path / seccomp.cache_name()).read_bytes() == bpf


def test_cache_name_changes_with_the_profile() -> None:
    other = seccomp.Profile(default_errno=1, allow=("read",), rules=())
    assert seccomp.cache_name(other) != seccomp.cache_name()
    assert seccomp.cache_name() == seccomp.cache_name(seccomp.DEFAULT_PROFILE)
    assert seccomp.libseccomp_version() in seccomp.cache_name()


def test_load_refuses_bytes_that_are_not_whole_instructions() -> None:
    from pyrkt.errors import KernelError

    with pytest.raises(KernelError, match="seccomp"):
        seccomp.load_bpf(b"\x00" * 12)


def test_the_default_profiles_crc_constant_is_the_crc_of_the_profile() -> None:
    # DEFAULT_PROFILE_CRC spares each pod start computing it; it must follow the profile
    assert seccomp.profile_crc() == seccomp.DEFAULT_PROFILE_CRC
    assert seccomp.profile_crc(seccomp.DEFAULT_PROFILE) == seccomp.DEFAULT_PROFILE_CRC


def test_the_libseccomp_version_from_the_library_name_is_the_librarys_own() -> None:
    v = seccomp.libseccomp().seccomp_version().contents
    assert seccomp.libseccomp_version() == f"{v.major}.{v.minor}.{v.micro}"

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


# -- filters of seccomp isolators, run in a small classic-BPF interpreter -------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000


def run_filter(bpf: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64) -> int:
    """What the kernel's seccomp would answer for syscall ``nr`` (classic BPF over seccomp_data:
    nr at 0, arch at 4, the instruction pointer at 8, 64-bit args from 16)."""
    import struct

    data = struct.pack("<iIQ6Q", nr, arch, 0, *(args + (0,) * (6 - len(args))))
    prog = [struct.unpack_from("<HBBI", bpf, off) for off in range(0, len(bpf), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if code == 0x20:  # ld w abs
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:  # ld imm
            a = k
        elif code == 0x60:  # ld mem
            a = mem[k]
        elif code == 0x61:  # ldx mem
            x = mem[k]
        elif code == 0x02:  # st
            mem[k] = a
        elif code == 0x03:  # stx
            mem[k] = x
        elif code == 0x54:  # and k
            a &= k
        elif code == 0x07:  # tax
            x = a
        elif code == 0x87:  # txa
            a = x
        elif code == 0x05:  # ja
            pc += k
        elif cls == 0x05:  # conditional jumps, k or x
            operand = x if code & 0x08 else k
            op = code & 0xF0
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}[op]
            pc += jt if taken else jf
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")


def nr(name: str) -> int:
    return int(seccomp.libseccomp().seccomp_syscall_resolve_name(name.encode()))


def isolator_bpf(mode: str, errno: int | None, names: tuple[str, ...]) -> bytes:
    from pyrkt.kernel import seccomp_compile, seccomp_groups

    return seccomp.compile_profile(seccomp_compile.isolator_profile(
        mode, errno, names, seccomp_groups.SYSTEMD_ALWAYS_ALLOWED, seccomp_groups.ENOSYS_UNLESS_RETAINED))


pytestmark_x86 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="the interpreter checks x86_64's arch")


@pytestmark_x86
def test_remove_set_answers_its_calls_with_the_errno_and_allows_the_rest() -> None:
    bpf = isolator_bpf("remove", 95, ("mkdir", "mkdirat"))
    assert run_filter(bpf, nr("mkdir")) == RET_ERRNO | 95
    assert run_filter(bpf, nr("mkdirat")) == RET_ERRNO | 95
    for name in ("read", "openat", "execve", "mount"):
        assert run_filter(bpf, nr(name)) == RET_ALLOW, name


@pytestmark_x86
def test_retain_set_allows_its_calls_and_systemds_always_allowed_ones_and_kills_the_rest() -> None:
    from pyrkt.kernel import seccomp_groups

    bpf = isolator_bpf("retain", None, ("read", "write"))
    for name in ("read", "write", *seccomp_groups.SYSTEMD_ALWAYS_ALLOWED):
        if nr(name) >= 0:  # sigreturn and time-like names of other arches
            assert run_filter(bpf, nr(name)) == RET_ALLOW, name
    for name in ("openat", "mkdir", "mmap", "socket"):
        assert run_filter(bpf, nr(name)) == RET_KILL_PROCESS, name
    assert run_filter(bpf, nr("clone3")) == RET_ERRNO | 38  # libc falls back to clone, which kills here
    assert run_filter(bpf, nr("rseq")) == RET_ERRNO | 38  # glibc registers rseq at start, and does without
    assert run_filter(isolator_bpf("retain", None, ("read", "rseq")), nr("rseq")) == RET_ALLOW


@pytestmark_x86
@pytest.mark.parametrize("group", ["@docker/default-whitelist", "@rkt/default-whitelist"])
def test_whitelist_groups_allow_their_calls_only(group: str) -> None:
    from pyrkt.stage1 import isolators

    wanted = isolators.seccomp_filter(((isolators.SECCOMP_RETAIN, {"set": [group], "errno": "EPERM"}),))
    assert wanted is not None
    bpf = isolator_bpf(wanted.mode, wanted.errno, wanted.names)
    allowed = [n for n in wanted.names if nr(n) >= 0]
    assert len(allowed) > 250
    for name in allowed:
        assert run_filter(bpf, nr(name)) == RET_ALLOW, name
    for name in ("mount", "unshare", "setns", "ptrace", "reboot", "kexec_load", "bpf"):
        assert run_filter(bpf, nr(name)) == RET_ERRNO | 1, name


@pytestmark_x86
@pytest.mark.parametrize("group", ["@docker/default-blacklist", "@rkt/default-blacklist"])
def test_blacklist_groups_deny_their_calls_only(group: str) -> None:
    from pyrkt.kernel import seccomp_groups
    from pyrkt.stage1 import isolators

    wanted = isolators.seccomp_filter(((isolators.SECCOMP_REMOVE, {"set": [group]}),))
    assert wanted is not None and wanted.names == seccomp_groups.DOCKER_DEFAULT_BLACKLIST
    bpf = isolator_bpf(wanted.mode, wanted.errno, wanted.names)
    for name in wanted.names:
        if nr(name) >= 0:
            assert run_filter(bpf, nr(name)) == RET_KILL_PROCESS, name
    for name in ("read", "openat", "clone", "execve", "socket"):
        assert run_filter(bpf, nr(name)) == RET_ALLOW, name


@pytestmark_x86
def test_the_default_profile_in_the_interpreter() -> None:
    bpf = seccomp.compile_default()
    assert run_filter(bpf, nr("read")) == RET_ALLOW
    assert run_filter(bpf, nr("mount")) == RET_ERRNO | 1
    assert run_filter(bpf, nr("clone"), (0x11,)) == RET_ALLOW  # SIGCHLD: a fork
    assert run_filter(bpf, nr("clone"), (0x40000000,)) == RET_ERRNO | 1  # CLONE_NEWNET


def test_isolator_filters_are_cached_once_per_profile(tmp_path: Path) -> None:
    from pyrkt.kernel import seccomp_compile

    remove = seccomp_compile.isolator_profile("remove", 95, ("mkdir",), ())
    retain = seccomp_compile.isolator_profile("retain", None, ("read",), ("execve",))
    first = seccomp.cached_bpf(str(tmp_path), remove)
    assert seccomp.cached_bpf(str(tmp_path), remove) == first == seccomp.compile_profile(remove)
    seccomp.cached_bpf(str(tmp_path), retain)
    assert sorted(os.listdir(tmp_path)) == sorted({seccomp.cache_name(remove), seccomp.cache_name(retain)})


@pytestmark_x86
@pytest.mark.parametrize("group", ["@systemd/clock", "@systemd/mount", "@systemd/network-io", "@systemd/obsolete",
                                   "@systemd/privileged", "@systemd/process", "@systemd/raw-io"])
def test_systemd_groups_deny_their_calls_with_the_errno(group: str) -> None:
    from pyrkt.stage1 import isolators

    wanted = isolators.seccomp_filter(((isolators.SECCOMP_REMOVE, {"set": [group], "errno": "EPERM"}),))
    assert wanted is not None
    bpf = isolator_bpf(wanted.mode, wanted.errno, wanted.names)
    known = [n for n in wanted.names if nr(n) >= 0]
    assert known
    for name in known:
        assert run_filter(bpf, nr(name)) == RET_ERRNO | 1, name
    for name in ("read", "openat", "execve"):
        assert run_filter(bpf, nr(name)) == RET_ALLOW, name

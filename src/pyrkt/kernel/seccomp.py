"""The default seccomp profile of an app, compiled to BPF with libseccomp and loaded raw.

The profile is an allow-list in the spirit of Docker's default: anything not listed fails with
EPERM; namespace, mount, module, tracing, key and clock calls are left out. Compiling takes
libseccomp several milliseconds, so the BPF is compiled once per profile, libseccomp version
and machine, cached in a file, and loaded with the bare ``seccomp(2)`` syscall (≈1 ms)::

    bpf = default_bpf(cache_dir)     # stage0/pod side, before forking the app
    ...
    caps.set_no_new_privs()          # required: an unprivileged filter load needs NNP
    load_bpf(bpf)                    # last thing before exec
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from pyrkt.errors import KernelError
from pyrkt.kernel import libc as L

EPERM = 1
ENOSYS = 38
AF_VSOCK = 40

# Namespace flags a contained process must not pass to clone(2).
CLONE_NEW_ANY = (0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
                 | 0x02000000)  # NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP

# Comparison operators of libseccomp (enum scmp_compare).
CMP_NE, CMP_EQ, CMP_MASKED_EQ = 1, 4, 7


@dataclass(frozen=True)
class ArgCond:
    """``arg[index] <op> value`` (for MASKED_EQ: ``arg & mask == value``)."""

    index: int
    op: int
    a: int
    b: int = 0


@dataclass(frozen=True)
class Rule:
    """A syscall allowed only under conditions (all must hold), or answered with ``errno``."""

    syscall: str
    conds: tuple[ArgCond, ...] = ()
    errno: int | None = None  # None: allow


@dataclass(frozen=True)
class Profile:
    default_errno: int
    allow: tuple[str, ...]
    rules: tuple[Rule, ...]


# Grouped by what programs use them for; names unknown to this libseccomp are skipped, so 32-bit
# (x86, arm) and arm-only names can sit next to the x86_64 ones.
_ALLOW = (
    # reading and writing descriptors
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "_llseek", "sendfile", "sendfile64", "copy_file_range", "splice", "tee",
    "vmsplice", "readahead", "fadvise64", "fadvise64_64", "arm_fadvise64_64",
    # opening and managing descriptors
    "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
    "fcntl64", "ioctl", "flock", "pipe", "pipe2", "eventfd", "eventfd2", "memfd_create",
    # file data and space
    "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "sync_file_range2",
    "arm_sync_file_range", "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate",
    # file metadata
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "newfstatat", "fstatat64", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "readlink",
    "readlinkat", "chmod", "fchmod", "fchmodat", "chown", "chown32", "fchown", "fchown32",
    "fchownat", "lchown", "lchown32", "utime", "utimes", "futimesat", "utimensat",
    "utimensat_time64", "umask",
    # extended attributes
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    # directory tree
    "getdents", "getdents64", "getcwd", "chdir", "fchdir", "chroot", "mkdir", "mkdirat", "rmdir",
    "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink",
    "unlinkat", "mknod", "mknodat",
    # watching files
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    # memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore",
    "mlock", "mlock2", "munlock", "mlockall", "munlockall", "membarrier", "remap_file_pages",
    "get_mempolicy", "set_mempolicy", "mbind", "pkey_alloc", "pkey_free", "pkey_mprotect",
    # processes and threads (clone and clone3 are rules below)
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_time64",
    "futex_waitv", "rseq", "arch_prctl", "set_thread_area", "get_thread_area", "set_tls",
    "cacheflush", "breakpoint", "prctl", "capget", "capset", "seccomp", "restart_syscall",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    # identity
    "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid",
    "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32", "getresuid",
    "getresuid32", "getresgid", "getresgid32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
    "getgroups", "getgroups32", "setgroups", "setgroups32",
    # scheduling, limits, accounting of oneself
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "nice", "ioprio_get", "ioprio_set", "getrlimit", "ugetrlimit",
    "setrlimit", "prlimit64", "getrusage", "times", "getcpu",
    # system information
    "uname", "sysinfo", "getrandom",
    # signals
    "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "sigaltstack", "signalfd", "signalfd4", "sigaction", "sigprocmask",
    "sigpending", "sigsuspend", "sigreturn", "signal", "pause", "pidfd_open", "pidfd_send_signal",
    # time and timers (reading clocks only)
    "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "clock_nanosleep",
    "clock_nanosleep_time64", "gettimeofday", "time", "nanosleep", "alarm", "getitimer",
    "setitimer", "timer_create", "timer_delete", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "timer_getoverrun", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
    # waiting for descriptors
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    # asynchronous I/O (io_uring stays out, as in Docker's current default)
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
    # sockets (socket itself is a rule below)
    "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
    "sendto", "recvfrom", "send", "recv", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    "recvmmsg_time64", "shutdown", "setsockopt", "getsockopt", "socketcall",
    # System V and POSIX IPC (isolated by the pod's IPC namespace)
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semctl", "semtimedop",
    "semtimedop_time64", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_notify", "mq_getsetattr",
)

# personality(2) values Docker allows too: PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26,
# and 0xffffffff, which only queries the current persona.
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

_RULES = (
    Rule("clone", (ArgCond(0, CMP_MASKED_EQ, CLONE_NEW_ANY, 0),)),
    # glibc falls back to clone only on ENOSYS; EPERM here would break every thread start.
    Rule("clone3", errno=ENOSYS),
    Rule("socket", (ArgCond(0, CMP_NE, AF_VSOCK),)),
    *(Rule("personality", (ArgCond(0, CMP_EQ, value),)) for value in _PERSONALITIES),
)

DEFAULT_PROFILE = Profile(default_errno=EPERM, allow=_ALLOW, rules=_RULES)
"""The profile every app gets unless ``--insecure-options=seccomp``."""

# Extra architectures whose syscalls the filter also covers, so 32-bit binaries work too.
_EXTRA_ARCHES = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}

_ACT_ALLOW = 0x7FFF0000
_FLTATR_CTL_NNP = 3
_CACHE_FORMAT = 1


def _act_errno(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_LIBSECCOMP: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIBSECCOMP
    if _LIBSECCOMP is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2")
        except OSError as e:
            raise KernelError("dlopen", 2, f"libseccomp.so.2 ({e})") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        _LIBSECCOMP = lib
    return _LIBSECCOMP


def libseccomp_version() -> str:
    """The version of the libseccomp that compiles filters, e.g. ``2.5.4``."""
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _lcheck(ret: int, call: str, detail: str = "") -> None:
    # libseccomp returns -errno instead of setting errno.
    if ret < 0:
        raise KernelError(call, -ret, detail)


def compile_profile(profile: Profile) -> bytes:
    """Compile ``profile`` for this machine (plus its 32-bit arches) to classic BPF bytes."""
    lib = _lib()
    ctx = lib.seccomp_init(_act_errno(profile.default_errno))
    if not ctx:
        raise KernelError("seccomp_init", 12, "default seccomp profile")
    try:
        # The caller sets no_new_privs itself; the exported BPF does not carry it anyway.
        _lcheck(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0), "seccomp_attr_set", "CTL_NNP")
        for arch in _EXTRA_ARCHES.get(L.MACHINE, ()):
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token:
                ret = lib.seccomp_arch_add(ctx, token)
                if ret != -17:  # EEXIST: already the native arch
                    _lcheck(ret, "seccomp_arch_add", arch)
        for syscall in profile.allow:
            _add(lib, ctx, Rule(syscall))
        for rule in profile.rules:
            _add(lib, ctx, rule)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _add(lib: ctypes.CDLL, ctx: int, rule: Rule) -> None:
    nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
    if nr == -1:  # __NR_SCMP_ERROR: no such syscall on any arch this libseccomp knows
        return
    action = _ACT_ALLOW if rule.errno is None else _act_errno(rule.errno)
    conds = (_ArgCmp * max(1, len(rule.conds)))()
    for i, c in enumerate(rule.conds):
        conds[i].arg, conds[i].op, conds[i].datum_a, conds[i].datum_b = c.index, c.op, c.a, c.b
    _lcheck(lib.seccomp_rule_add_array(ctx, action, nr, len(rule.conds), conds),
            "seccomp_rule_add", rule.syscall)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("pyrkt-seccomp", os.MFD_CLOEXEC)
    try:
        _lcheck(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def compile_default() -> bytes:
    """The default profile as BPF bytes, compiled now (several ms; see ``default_bpf``)."""
    return compile_profile(DEFAULT_PROFILE)


def cache_name(profile: Profile = DEFAULT_PROFILE) -> str:
    """The cache file name of ``profile``'s BPF: it changes with the profile data, the libseccomp
    version and the machine.

    CRC-32 of the profile's repr names it: the cache dir is root's, so no collision resistance is
    needed, and hashlib would add ~3.5 ms of imports to the run path.
    """
    import binascii

    version = libseccomp_version()
    key = f"{_CACHE_FORMAT}:{L.MACHINE}:{version}:{profile!r}"
    return f"seccomp-{L.MACHINE}-{version}-{binascii.crc32(key.encode()):08x}.bpf"


def default_bpf(cache_dir: str) -> bytes:
    """The default profile's BPF, from ``cache_dir`` when compiled before, else compiled and
    stored there atomically (concurrent pods may race; each writes identical bytes)."""
    from pyrkt.kernel import fs

    path = os.path.join(cache_dir, cache_name())
    try:
        with open(path, "rb") as f:
            bpf = f.read()
        if bpf and len(bpf) % 8 == 0:
            return bpf
    except FileNotFoundError:
        pass
    bpf = compile_default()
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    fs.atomic_write(path, bpf, mode=0o600)
    return bpf


def load_bpf(bpf: bytes) -> None:
    """Install ``bpf`` as a seccomp filter of the calling thread with ``seccomp(2)``.

    The caller must have set no_new_privs first (``caps.set_no_new_privs``) unless it holds
    CAP_SYS_ADMIN; the filter is inherited by children and kept across exec.
    """
    if not bpf or len(bpf) % 8:
        raise KernelError("seccomp", 22, f"bpf of {len(bpf)} bytes is not whole instructions")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    SECCOMP_SET_MODE_FILTER = 1
    L.check(L.syscall(L.NR["seccomp"], SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)),
            "seccomp", "SECCOMP_SET_MODE_FILTER")

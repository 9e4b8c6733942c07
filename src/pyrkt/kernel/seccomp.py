"""The default seccomp profile of an app, compiled to BPF with libseccomp and loaded raw.

The profile is an allow-list in the spirit of Docker's default: anything not listed fails with
EPERM; namespace, mount, module, tracing, key and clock calls are left out. Compiling takes
libseccomp several milliseconds, so the BPF is compiled once per profile, libseccomp version
and machine, cached in a file, and loaded with the bare ``seccomp(2)`` syscall (≈1 ms)::

    bpf = default_bpf(cache_dir)     # stage0/pod side, before forking the app
    ...
    caps.set_no_new_privs()          # required: an unprivileged filter load needs NNP
    load_bpf(bpf)                    # last thing before exec

Only the cache lookup and the load are on the run path. The profile's contents are plain tuples
here (they also name the cache file); ``Profile``, ``Rule``, ``ArgCond``, ``DEFAULT_PROFILE`` and
the compiler live in ``seccomp_compile`` and are imported when first used, through this module
(``seccomp.DEFAULT_PROFILE``, ``seccomp.compile_profile``).
"""

from __future__ import annotations

import os

from pyrkt.errors import KernelError
from pyrkt.kernel import cdata as ctypes  # ctypes' names on _ctypes, without ctypes' import cost (cdata.py)
from pyrkt.kernel import libc as L

TYPE_CHECKING = False
if TYPE_CHECKING:  # the profile types are dataclasses of seccomp_compile, off the run path
    from typing import Any

    # re-exported: at run time module __getattr__ below imports them on first use
    from pyrkt.kernel.seccomp_compile import DEFAULT_PROFILE as DEFAULT_PROFILE
    from pyrkt.kernel.seccomp_compile import ArgCond as ArgCond
    from pyrkt.kernel.seccomp_compile import Profile as Profile
    from pyrkt.kernel.seccomp_compile import Rule as Rule

EPERM = 1
ENOSYS = 38
KILL = -1  # in place of an errno: the call kills the process with SIGSYS (systemd's, so rkt's, default)
AF_VSOCK = 40

# Namespace flags a contained process must not pass to clone(2).
CLONE_NEW_ANY = (0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
                 | 0x02000000)  # NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP

# Comparison operators of libseccomp (enum scmp_compare).
CMP_NE, CMP_EQ, CMP_MASKED_EQ = 1, 4, 7


# Grouped by what programs use them for; names unknown to this libseccomp are skipped, so 32-bit
# (x86, arm) and arm-only names can sit next to the x86_64 ones.
DEFAULT_ALLOW: tuple[str, ...] = (
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

DEFAULT_ERRNO = EPERM

# (syscall, ((arg index, operator, a, b), ...), errno or None to allow): the default profile's
# conditional rules as plain data; seccomp_compile turns them into Rule and ArgCond values.
DEFAULT_RULES: tuple[tuple[str, tuple[tuple[int, int, int, int], ...], int | None], ...] = (
    ("clone", ((0, CMP_MASKED_EQ, CLONE_NEW_ANY, 0),), None),
    # glibc falls back to clone only on ENOSYS; EPERM here would break every thread start.
    ("clone3", (), ENOSYS),
    ("socket", ((0, CMP_NE, AF_VSOCK, 0),), None),
    *(("personality", ((0, CMP_EQ, value, 0),), None) for value in _PERSONALITIES),
)

_CACHE_FORMAT = 3  # 3: the binary-tree BPF
# profile_crc() of the default profile, kept here so that a pod's start does not compute it
# (tests/unit/kernel/test_seccomp.py fails when the profile changes and this does not).
DEFAULT_PROFILE_CRC = "24ace799"
_TRIPLET = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(L.MACHINE, f"{L.MACHINE}-linux-gnu")
_LIB_DIRS = (f"/usr/lib/{_TRIPLET}", f"/lib/{_TRIPLET}", "/usr/lib64", "/lib64", "/usr/lib", "/lib")
_LAZY = ("ArgCond", "Rule", "Profile", "DEFAULT_PROFILE")

if not TYPE_CHECKING:  # hidden from mypy, which sees the names imported above instead
    def __getattr__(name: str) -> Any:
        """``Profile``, ``Rule``, ``ArgCond``, ``DEFAULT_PROFILE``: from seccomp_compile on first use."""
        if name in _LAZY:
            from pyrkt.kernel import seccomp_compile

            return getattr(seccomp_compile, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ArgCmp(ctypes.Structure):
    """libseccomp's ``struct scmp_arg_cmp``."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_LIBSECCOMP: ctypes.CDLL | None = None


def libseccomp() -> ctypes.CDLL:
    """libseccomp.so.2, loaded once, with the prototypes pyrkt uses."""
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
                                               ctypes.c_uint, ctypes.POINTER(ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
        _LIBSECCOMP = lib
    return _LIBSECCOMP


def libseccomp_version() -> str:
    """The version of the libseccomp that compiles filters, e.g. ``2.5.4``: read from the name
    the library's ``libseccomp.so.2`` link points to, which costs no dlopen on the run path, or
    asked of the library itself."""
    for d in _LIB_DIRS:
        real = os.path.basename(os.path.realpath(os.path.join(d, "libseccomp.so.2")))
        if real.startswith("libseccomp.so.2.") and os.path.exists(os.path.join(d, real)):
            return real.removeprefix("libseccomp.so.")
    v = libseccomp().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def compile_profile(profile: Profile) -> bytes:
    """Compile ``profile`` for this machine (plus its 32-bit arches) to classic BPF bytes."""
    from pyrkt.kernel import seccomp_compile

    return seccomp_compile.compile_profile(profile)


def compile_default() -> bytes:
    """The default profile as BPF bytes, compiled now (several ms; see ``default_bpf``)."""
    from pyrkt.kernel import seccomp_compile

    return seccomp_compile.compile_profile(seccomp_compile.DEFAULT_PROFILE)


def profile_data(profile: Profile | None = None) -> tuple[Any, ...]:
    """``profile`` (default: the default profile) as plain tuples, the form that names its cache."""
    if profile is None:
        return (DEFAULT_ERRNO, DEFAULT_ALLOW, DEFAULT_RULES)
    rules = tuple((r.syscall, tuple((c.index, c.op, c.a, c.b) for c in r.conds), r.errno) for r in profile.rules)
    return (profile.default_errno, tuple(profile.allow), rules)


def profile_crc(profile: Profile | None = None) -> str:
    """CRC-32 of the cache format and ``profile``'s data, which names its cache file: the cache
    dir is root's, so no collision resistance is needed (and hashlib costs ~3.5 ms of imports)."""
    import binascii

    return f"{binascii.crc32(repr((_CACHE_FORMAT, profile_data(profile))).encode()):08x}"


def cache_name(profile: Profile | None = None) -> str:
    """The cache file name of ``profile``'s BPF (default: the default profile's): it changes with
    the profile data, the libseccomp version and the machine."""
    crc = DEFAULT_PROFILE_CRC if profile is None else profile_crc(profile)
    return f"seccomp-{L.MACHINE}-{libseccomp_version()}-{crc}.bpf"


def default_bpf(cache_dir: str) -> bytes:
    """The default profile's BPF, from ``cache_dir`` when compiled before, else compiled and
    stored there atomically (concurrent pods may race; each writes identical bytes)."""
    return cached_bpf(cache_dir)


def cached_bpf(cache_dir: str, profile: Profile | None = None) -> bytes:
    """``profile``'s BPF (default: the default profile's), cached in ``cache_dir`` as
    ``default_bpf`` caches the default one: each distinct profile is compiled once."""
    from pyrkt.kernel import fs

    path = os.path.join(cache_dir, cache_name(profile))
    try:
        with open(path, "rb") as f:
            bpf = f.read()
        if bpf and len(bpf) % 8 == 0:
            return bpf
    except FileNotFoundError:
        pass
    bpf = compile_default() if profile is None else compile_profile(profile)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    fs.atomic_write(path, bpf, mode=0o600)
    return bpf


def syscall_known(name: str) -> bool:
    """Whether this machine's libseccomp knows a syscall ``name`` on any arch."""
    return int(libseccomp().seccomp_syscall_resolve_name(name.encode())) != -1


def load_bpf(bpf: bytes) -> None:
    """Install ``bpf`` as a seccomp filter of the calling thread with ``seccomp(2)``.

    The caller must have set no_new_privs first (``caps.set_no_new_privs``) unless it holds
    CAP_SYS_ADMIN; the filter is inherited by children and kept across exec.
    """
    if not bpf or len(bpf) % 8:
        raise KernelError("seccomp", 22, f"bpf of {len(bpf)} bytes is not whole instructions")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    SECCOMP_SET_MODE_FILTER = 1
    L.check(L.syscall(L.NR["seccomp"], SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)),
            "seccomp", "SECCOMP_SET_MODE_FILTER")

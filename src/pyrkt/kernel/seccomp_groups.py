"""rkt's named seccomp groups (``@docker/default-whitelist``, ``@rkt/default-blacklist``, ...) as
syscall names, as rkt's stage1 lists them (stage1/init/common/seccomp_wildcards.go: Docker's
profile of 2016-2017, without its argument filters), and the calls systemd's filter always
allowed under a retain-set (its ``@default`` set, v233, the systemd of rkt's stage1).

Pure data; ``pyrkt.stage1.isolators`` expands the groups. Names a libseccomp does not know on
this machine's arches (other arches' calls) are left out when a filter is compiled.
"""

from __future__ import annotations

DOCKER_DEFAULT_WHITELIST: tuple[str, ...] = (
    "accept", "accept4", "access", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
    "chown", "chown32", "clock_getres", "clock_gettime", "clock_nanosleep", "close", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_ctl_old", "epoll_pwait", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
    "execveat", "exit", "exit_group", "faccessat", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
    "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futex", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "lchown", "lchown32", "lgetxattr", "link",
    "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "lstat64", "madvise", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl",
    "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "pause", "personality", "pipe", "pipe2", "poll",
    "ppoll", "prctl", "pread64", "preadv", "prlimit64", "pselect6", "pwrite64", "pwritev", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid",
    "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat",
    "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigreturn",
    "socket", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
    "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "syslog", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timerfd_create", "timerfd_gettime",
    "timerfd_settime", "timer_getoverrun", "timer_gettime", "timer_settime", "times", "tkill",
    "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime",
    "utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
    "arch_prctl", "modify_ldt", "chroot", "clone",
)
"""rkt's ``@docker/default-whitelist`` and ``@rkt/default-whitelist``, and its filter without isolators."""

# Docker filters clone and personality by their arguments; rkt's list leaves them out.
DOCKER_DEFAULT_BLACKLIST: tuple[str, ...] = (
    "acct", "add_key", "adjtimex", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm",
    "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
    "move_pages", "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open",
    "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "stime", "swapon", "swapoff",
    "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86",
    "vm86old",
)
"""rkt's ``@docker/default-blacklist`` and ``@rkt/default-blacklist``."""

ARM_WHITELIST: tuple[str, ...] = (
    "arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls",
    "sync_file_range2",
)
"""What rkt adds to its default whitelist on arm and arm64."""

SYSTEMD_ALWAYS_ALLOWED: tuple[str, ...] = (
    "clock_getres", "clock_gettime", "clock_nanosleep", "execve", "exit", "exit_group", "getrlimit",
    "gettimeofday", "nanosleep", "pause", "rt_sigreturn", "sigreturn", "time",
)
"""systemd's ``@default`` (v233): allowed under every retain-set, so a filtered app can still be
exec'd, exit and read the clock."""

ENOSYS_UNLESS_RETAINED: tuple[str, ...] = ("clone3", "rseq")
"""pyrkt's addition: calls a current glibc makes at start (rseq) or to start a thread (clone3)
and does without when they fail with ENOSYS. Under a retain-set that does not list them they
fail so, rather than kill the app (or fail with an errno libc does not fall back on)."""

_SYSTEMD_CLOCK = ("adjtimex", "clock_adjtime", "clock_settime", "settimeofday", "stime")
_SYSTEMD_MODULE = ("delete_module", "finit_module", "init_module")
_SYSTEMD_RAW_IO = ("ioperm", "iopl", "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "s390_pci_mmio_read",
                   "s390_pci_mmio_write")

SYSTEMD_GROUPS: dict[str, tuple[str, ...]] = {
    "clock": _SYSTEMD_CLOCK,
    "default-whitelist": SYSTEMD_ALWAYS_ALLOWED,
    "mount": ("chroot", "mount", "pivot_root", "umount2", "umount"),
    "network-io": (
        "accept4", "accept", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recv",
        "recvfrom", "recvmmsg", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown",
        "socket", "socketcall", "socketpair",
    ),
    "obsolete": (
        "_sysctl", "afs_syscall", "break", "create_module", "ftime", "get_kernel_syms", "getpmsg", "gtty", "lock",
        "mpx", "prof", "profil", "putpmsg", "query_module", "security", "sgetmask", "ssetmask", "stty", "sysfs",
        "tuxcall", "ulimit", "uselib", "ustat", "vserver",
    ),
    "privileged": (
        *_SYSTEMD_CLOCK, *_SYSTEMD_MODULE, *_SYSTEMD_RAW_IO, "acct", "bdflush", "bpf", "capset", "chown32",
        "chown", "chroot", "fchown32", "fchown", "fchownat", "kexec_file_load", "kexec_load", "lchown32", "lchown",
        "nfsservctl", "pivot_root", "quotactl", "reboot", "setdomainname", "setfsuid32", "setfsuid", "setgroups32",
        "setgroups", "sethostname", "setresuid32", "setresuid", "setreuid32", "setreuid", "setuid32", "setuid",
        "swapoff", "swapon", "_sysctl", "vhangup",
    ),
    "process": ("arch_prctl", "clone", "execveat", "fork", "kill", "prctl", "setns", "tgkill", "tkill", "unshare",
                "vfork"),
    "raw-io": _SYSTEMD_RAW_IO,
}
"""rkt's ``@systemd/NAME`` groups: the sets of the systemd in rkt's stage1 (v233) they stood
for (``@systemd/default-whitelist`` is its ``@default``, ``privileged`` includes its ``@clock``,
``@module`` and ``@raw-io``)."""

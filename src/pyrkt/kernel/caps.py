"""Linux capabilities of an app: names and numbers, the appc default set, the pure plan of which
caps an app gets, and the calls an app process makes right before exec.

Order of use in the app's child (each step needs what the previous one leaves)::

    drop_bounding(keep)            # needs CAP_SETPCAP in the effective set, so it comes first
    set_keepcaps(True)             # only to keep caps across a change to a non-root uid
    os.setgroups(...); os.setresgid(...); os.setresuid(...)
    set_caps(keep, uid=uid)        # e = p = keep; for a non-root uid i = ambient = keep too
    set_no_new_privs()             # then seccomp, then exec

The inheritable set is never "all": for a uid-0 app the kernel adds the inheritable set to the
permitted set at exec, which would re-grant every cap the bounding drop removed. A root app's
is empty (as systemd left rkt's apps); a non-root uid's ambient caps need theirs in it.
(Stage1 gives a non-root app no caps at all, as rkt: ``execute.become``.)
"""

from __future__ import annotations

from pyrkt.errors import KernelError, UsageError
from pyrkt.kernel import cdata as ctypes  # ctypes' names on _ctypes, without ctypes' import cost (cdata.py)
from pyrkt.kernel import libc as L

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc costs 1.7 ms of imports on the app path; annotations only
    from collections.abc import Iterable

# Index = capability number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE = 40.
NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
_NUMBERS = {name: i for i, name in enumerate(NAMES)}

ALL_CAPS: frozenset[int] = frozenset(range(len(NAMES)))
"""Every capability pyrkt knows; the kernel calls below leave out those the caller lacks."""

DEFAULT_CAPS: frozenset[int] = frozenset(_NUMBERS[n] for n in (
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_KILL",
    "CAP_MKNOD", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP",
    "CAP_SETFCAP", "CAP_SYS_CHROOT",
))
"""The appc/rkt default set of an app (mask 0xa80425fb)."""

PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_V3 = 0x20080522
_EINVAL = 22


# -- names and plans (pure) ------------------------------------------------------------------

def parse(name: str) -> int:
    """The number of a capability given as ``CAP_NET_ADMIN``, ``net_admin`` or ``NET_ADMIN``."""
    key = name.strip().upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    try:
        return _NUMBERS[key]
    except KeyError:
        raise UsageError(f"unknown capability {name!r}") from None


def parse_all(names: Iterable[str]) -> set[int]:
    """The numbers of several capability names (see ``parse``)."""
    return {parse(n) for n in names}


def name(cap: int) -> str:
    """``CAP_…`` for a capability number (``CAP_<n>`` for one newer than pyrkt knows)."""
    return NAMES[cap] if 0 <= cap < len(NAMES) else f"CAP_{cap}"


def mask(caps: Iterable[int]) -> int:
    """The bit mask of a set of caps, as ``/proc/PID/status`` shows it in hex."""
    bits = 0
    for cap in caps:
        bits |= 1 << cap
    return bits


def from_mask(bits: int) -> set[int]:
    """The caps whose bits are set in ``bits``."""
    return {cap for cap in range(bits.bit_length()) if bits >> cap & 1}


def plan_caps(*, retain: set[int] | None, remove: set[int] | None, insecure: bool) -> set[int]:
    """The caps an app keeps: a retain-set replaces the default set, a remove-set subtracts from
    it, both at once is an error, and ``insecure`` (``--insecure-options=capabilities``) keeps all.
    """
    if retain is not None and remove is not None:
        raise UsageError("capabilities retain-set and remove-set cannot be used together")
    if insecure:
        return set(ALL_CAPS)
    if retain is not None:
        return set(retain)
    return set(DEFAULT_CAPS) - (remove or set())


# -- kernel calls ------------------------------------------------------------------------------

class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_last_cap: int | None = None


def _prctl_raw(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return int(L.libc().prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(0), ctypes.c_ulong(0)))


def _prctl(option: int, arg2: int, what: str, arg3: int = 0) -> int:
    ret = _prctl_raw(option, arg2, arg3)
    if ret < 0:
        raise KernelError("prctl", ctypes.get_errno(), what)
    return ret


def last_cap() -> int:
    """The highest capability number this kernel has (``/proc/sys/kernel/cap_last_cap``).

    Without /proc (e.g. between pivot_root and mounting the app's /proc) it is probed with
    ``PR_CAPBSET_READ``, which fails with EINVAL past the last cap.
    """
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap = int(f.read())
        except (OSError, ValueError):
            cap = 0
            while _prctl_raw(PR_CAPBSET_READ, cap + 1) >= 0:
                cap += 1
            _last_cap = cap
    return _last_cap


def _capget() -> tuple[int, int, int]:
    header = _Header(_CAP_V3, 0)
    data = (_Data * 2)()
    L.check(L.libc().capget(ctypes.byref(header), data), "capget")
    lo, hi = data[0], data[1]
    return (lo.effective | hi.effective << 32, lo.permitted | hi.permitted << 32,
            lo.inheritable | hi.inheritable << 32)


def held() -> set[int]:
    """The caps the calling process holds (its permitted set): what "all caps" can mean."""
    return from_mask(_capget()[1])


def bounding() -> set[int]:
    """The calling process's bounding set."""
    return {cap for cap in range(last_cap() + 1) if _prctl(PR_CAPBSET_READ, cap, "PR_CAPBSET_READ")}


def drop_bounding(keep: Iterable[int]) -> None:
    """Drop every cap not in ``keep`` from the bounding set, so no exec can gain it back.

    Needs CAP_SETPCAP in the effective set: call it before ``set_caps``. Caps the kernel does
    not have (EINVAL) are skipped.
    """
    kept = set(keep)
    for cap in range(last_cap() + 1):
        if cap in kept:
            continue
        if _prctl_raw(PR_CAPBSET_DROP, cap) < 0:
            err = ctypes.get_errno()
            if err != _EINVAL:
                raise KernelError("prctl", err, f"PR_CAPBSET_DROP {name(cap)}")


def set_caps(keep: Iterable[int], *, uid: int) -> None:
    """Make the effective and permitted sets exactly ``keep`` and, for a non-root ``uid``, the
    inheritable and ambient sets too, so they survive the exec (root gets them from the
    bounding set; its inheritable and ambient sets are cleared).

    Caps the caller does not hold (e.g. CAP_SYS_RESOURCE missing from this host's bounding set)
    cannot be granted and are left out, as systemd did for rkt. Call after setresuid (with
    ``set_keepcaps(True)`` before it) and after ``drop_bounding``.
    """
    want = set(keep) & held()
    want = {cap for cap in want if _prctl(PR_CAPBSET_READ, cap, "PR_CAPBSET_READ")}
    bits = mask(want)
    header = _Header(_CAP_V3, 0)
    data = (_Data * 2)()
    for i, word in enumerate((bits & 0xFFFFFFFF, bits >> 32)):
        data[i].effective = data[i].permitted = word
        data[i].inheritable = word if uid != 0 else 0
    L.check(L.libc().capset(ctypes.byref(header), data), "capset", f"caps {bits:#x}")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "PR_CAP_AMBIENT_CLEAR_ALL")
    if uid != 0:
        for cap in sorted(want):
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, f"PR_CAP_AMBIENT_RAISE {name(cap)}", cap)


def set_keepcaps(on: bool) -> None:
    """``PR_SET_KEEPCAPS``: keep the permitted set when the uid changes from 0 (cleared at exec)."""
    _prctl(PR_SET_KEEPCAPS, int(on), "PR_SET_KEEPCAPS")


def set_no_new_privs() -> None:
    """``PR_SET_NO_NEW_PRIVS``: no exec may gain privileges (setuid bits, file caps) from now on."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")

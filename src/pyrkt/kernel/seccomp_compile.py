"""Seccomp profiles as values (``Profile``, ``Rule``, ``ArgCond``), the default profile built
from ``seccomp``'s data, and their compilation to classic BPF with libseccomp.

Off the run path: a pod only loads the cached BPF (``seccomp.default_bpf``); this module is
imported when the cache misses, or by whoever inspects or changes a profile. Use it through
``pyrkt.kernel.seccomp`` (``seccomp.DEFAULT_PROFILE``, ``seccomp.compile_profile``).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from pyrkt.errors import KernelError
from pyrkt.kernel import libc as L
from pyrkt.kernel.seccomp import DEFAULT_ALLOW, DEFAULT_ERRNO, DEFAULT_RULES, ENOSYS, KILL, ArgCmp, libseccomp


@dataclass(frozen=True)
class ArgCond:
    """``arg[index] <op> value`` (for MASKED_EQ: ``arg & mask == value``)."""

    index: int
    op: int
    a: int
    b: int = 0


@dataclass(frozen=True)
class Rule:
    """A syscall allowed only under conditions (all must hold), or answered with ``errno``
    (``seccomp.KILL``: the process is killed with SIGSYS)."""

    syscall: str
    conds: tuple[ArgCond, ...] = ()
    errno: int | None = None  # None: allow


@dataclass(frozen=True)
class Profile:
    """``default_errno`` answers every call not ``allow``ed nor ruled (None: allow it,
    ``seccomp.KILL``: kill the process with SIGSYS)."""

    default_errno: int | None
    allow: tuple[str, ...]
    rules: tuple[Rule, ...]


DEFAULT_PROFILE = Profile(
    default_errno=DEFAULT_ERRNO,
    allow=DEFAULT_ALLOW,
    rules=tuple(Rule(name, tuple(ArgCond(*c) for c in conds), errno) for name, conds, errno in DEFAULT_RULES),
)
"""The profile every app gets unless ``--insecure-options=seccomp`` or a seccomp isolator."""


def isolator_profile(mode: str, errno: int | None, names: tuple[str, ...], always: tuple[str, ...] = (),
                     enosys: tuple[str, ...] = ()) -> Profile:
    """The profile of an appc seccomp isolator, as rkt's stage1 had systemd make it: ``retain``
    allows ``names`` and ``always`` (what systemd allowed under any list), ``remove`` allows all
    but ``names``; a call left out is answered with ``errno``, or kills the process with SIGSYS
    when it is None. Under a retain-set the calls of ``enosys`` not listed fail with ENOSYS
    instead: calls a current libc tries at start or for threads and does without (rseq,
    clone3, which rkt's lists predate)."""
    action = KILL if errno is None else errno
    if mode == "remove":
        return Profile(None, (), tuple(Rule(name, (), action) for name in dict.fromkeys(names)))
    allow = tuple(dict.fromkeys((*names, *always)))
    rules = () if action == ENOSYS else tuple(Rule(name, (), ENOSYS) for name in enosys if name not in allow)
    return Profile(action, allow, rules)


# Extra architectures whose syscalls the filter also covers, so 32-bit binaries work too.
_EXTRA_ARCHES = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}

_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_PROCESS = 0x80000000
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_OPTIMIZE = 8  # libseccomp >= 2.5: 2 sorts the syscalls into a binary tree


def _action(errno: int | None) -> int:
    """libseccomp's action for a profile's answer: allow (None), kill (``KILL``) or the errno."""
    if errno is None:
        return _ACT_ALLOW
    if errno == KILL:
        return _ACT_KILL_PROCESS
    return 0x00050000 | (errno & 0xFFFF)


def _lcheck(ret: int, call: str, detail: str = "") -> None:
    # libseccomp returns -errno instead of setting errno.
    if ret < 0:
        raise KernelError(call, -ret, detail)


def compile_profile(profile: Profile) -> bytes:
    """Compile ``profile`` for this machine (plus its 32-bit arches) to classic BPF bytes."""
    lib = libseccomp()
    ctx = lib.seccomp_init(_action(profile.default_errno))
    if not ctx:
        raise KernelError("seccomp_init", 12, "seccomp profile")
    try:
        # The caller sets no_new_privs itself; the exported BPF does not carry it anyway.
        _lcheck(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0), "seccomp_attr_set", "CTL_NNP")
        # A binary tree instead of ~950 comparisons in a row: the kernel checks each syscall in
        # ~10 steps, and attaching the filter (which emulates it for every syscall number to
        # cache the always-allowed ones) takes 0.55 ms instead of 1 ms. Older libseccomp: linear.
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)
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
    action = _action(rule.errno)
    conds = (ArgCmp * max(1, len(rule.conds)))()
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

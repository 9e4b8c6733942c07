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
from pyrkt.kernel.seccomp import DEFAULT_ALLOW, DEFAULT_ERRNO, DEFAULT_RULES, ArgCmp, libseccomp


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


DEFAULT_PROFILE = Profile(
    default_errno=DEFAULT_ERRNO,
    allow=DEFAULT_ALLOW,
    rules=tuple(Rule(name, tuple(ArgCond(*c) for c in conds), errno) for name, conds, errno in DEFAULT_RULES),
)
"""The profile every app gets unless ``--insecure-options=seccomp``."""

# Extra architectures whose syscalls the filter also covers, so 32-bit binaries work too.
_EXTRA_ARCHES = {"x86_64": ("x86", "x32"), "aarch64": ("arm",)}

_ACT_ALLOW = 0x7FFF0000
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_OPTIMIZE = 8  # libseccomp >= 2.5: 2 sorts the syscalls into a binary tree


def _act_errno(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


def _lcheck(ret: int, call: str, detail: str = "") -> None:
    # libseccomp returns -errno instead of setting errno.
    if ret < 0:
        raise KernelError(call, -ret, detail)


def compile_profile(profile: Profile) -> bytes:
    """Compile ``profile`` for this machine (plus its 32-bit arches) to classic BPF bytes."""
    lib = libseccomp()
    ctx = lib.seccomp_init(_act_errno(profile.default_errno))
    if not ctx:
        raise KernelError("seccomp_init", 12, "default seccomp profile")
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
    action = _ACT_ALLOW if rule.errno is None else _act_errno(rule.errno)
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

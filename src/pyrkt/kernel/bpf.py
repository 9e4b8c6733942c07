"""The cgroup v2 device controller: an eBPF program of type ``BPF_PROG_TYPE_CGROUP_DEVICE``
that the kernel runs on every open and mknod of a device node by a process of the cgroup, built
here from an allow-list, loaded with ``bpf(BPF_PROG_LOAD)`` and attached to the pod's cgroup
directory with ``bpf(BPF_PROG_ATTACH)``.

The program reads ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}``
(``access_type`` is ``access << 16 | type``) and, rule after rule, falls through to the next
rule at the first field that does not match; a rule that matches returns 1 (allow). Past the
last rule it returns 0, which the kernel turns into EPERM::

    r2 = ctx->access_type; r3 = r2 & 0xffff (type); r2 >>= 16 (access)
    r4 = ctx->major; r5 = ctx->minor
    rule: if r3 != TYPE goto next; r6 = r2 & ~ACCESS; if r6 != 0 goto next;
          if r4 != MAJOR goto next; if r5 != MINOR goto next; r0 = 1; exit
    ...
    r0 = 0; exit

A wildcard major or minor, or an "a" rule's type, leaves its test out. Assembling is pure (the
unit tests run the program in a small interpreter); loading and attaching need CAP_SYS_ADMIN.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

from pyrkt.errors import KernelError
from pyrkt.kernel import libc as L
from pyrkt.model.devices import ANY, DeviceRule

# Instruction classes and fields (linux/bpf_common.h, linux/bpf.h); an opcode is their sum.
LDX, ALU64, JMP = 0x01, 0x07, 0x05
MEM, W = 0x60, 0x00
K, X = 0x00, 0x08
AND, RSH, MOV = 0x50, 0x70, 0xB0
JNE, EXIT = 0x50, 0x90

OP_LDXW = LDX | MEM | W
OP_AND_K = ALU64 | AND | K
OP_RSH_K = ALU64 | RSH | K
OP_MOV_K = ALU64 | MOV | K
OP_MOV_X = ALU64 | MOV | X
OP_JNE_K = JMP | JNE | K
OP_EXIT = JMP | EXIT

# struct bpf_cgroup_dev_ctx and its constants
CTX_ACCESS_TYPE, CTX_MAJOR, CTX_MINOR = 0, 4, 8
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# bpf(2)
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_OVERRIDE = 1  # a descendant's own program runs instead of this one
LICENSE = b"Apache-2.0"
PROG_NAME = b"pyrkt_devices"
ATTR_SIZE = 120
LOG_SIZE = 1 << 16

Insn = tuple[int, int, int, int, int]  # (opcode, dst, src, off, imm)


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    return (op, dst, src, off, imm)


def rule_block(rule: DeviceRule) -> list[Insn]:
    """One rule's instructions: a ``jne`` to the next rule per field that must match, then
    ``return 1``."""
    denied = 7 & ~sum(ACCESS_BITS[c] for c in rule.access)
    block: list[Insn] = []
    if rule.kind != "a":
        block.append(insn(OP_JNE_K, 3, imm=TYPES[rule.kind]))
    if denied:  # r6 = the access asked for that the rule does not grant: must be none
        block += [insn(OP_MOV_X, 6, 2), insn(OP_AND_K, 6, imm=denied), insn(OP_JNE_K, 6, imm=0)]
    if rule.kind != "a" and rule.major != ANY:
        block.append(insn(OP_JNE_K, 4, imm=rule.major))
    if rule.kind != "a" and rule.minor != ANY:
        block.append(insn(OP_JNE_K, 5, imm=rule.minor))
    block += [insn(OP_MOV_K, 0, imm=1), insn(OP_EXIT)]
    return [(op, dst, src, len(block) - i - 1 if op == OP_JNE_K else off, imm)
            for i, (op, dst, src, off, imm) in enumerate(block)]


def device_program(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> list[Insn]:
    """The program allowing exactly ``rules``: a list of instructions (see ``encode``)."""
    prog = [
        insn(OP_LDXW, 2, 1, CTX_ACCESS_TYPE),
        insn(OP_MOV_X, 3, 2),
        insn(OP_AND_K, 3, imm=0xFFFF),
        insn(OP_RSH_K, 2, imm=16),
        insn(OP_LDXW, 4, 1, CTX_MAJOR),
        insn(OP_LDXW, 5, 1, CTX_MINOR),
    ]
    for rule in rules:
        block = rule_block(rule)
        prog += block
        if len(block) == 2:
            return prog  # allows everything: what follows would be unreachable, which the verifier refuses
    return prog + [insn(OP_MOV_K, 0, imm=0), insn(OP_EXIT)]


def encode(prog: list[Insn]) -> bytes:
    """``struct bpf_insn`` array in the machine's byte order (the register nibbles swap with it)."""
    little = sys.byteorder == "little"
    fmt = "<BBhi" if little else ">BBhi"
    return b"".join(struct.pack(fmt, op, (src << 4 | dst) if little else (dst << 4 | src), off, imm)
                    for op, dst, src, off, imm in prog)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    return L.syscall(L.NR["bpf"], ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))


def load_device_program(prog: list[Insn]) -> int:
    """Load the program; returns its fd. A verifier refusal names the verifier's last line."""
    code = ctypes.create_string_buffer(encode(prog))
    lic = ctypes.create_string_buffer(LICENSE)
    log = ctypes.create_string_buffer(LOG_SIZE)
    for log_level in (0, 1):
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("=IIQQIIQII16sII", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(prog),
                         ctypes.addressof(code), ctypes.addressof(lic), log_level,
                         LOG_SIZE if log_level else 0, ctypes.addressof(log) if log_level else 0,
                         0, 0, PROG_NAME, 0, BPF_CGROUP_DEVICE)
        fd = _bpf(BPF_PROG_LOAD, attr)
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != 13 and err != 22:  # EACCES/EINVAL come from the verifier: ask it why
            break
    lines = [ln for ln in log.value.decode(errors="replace").splitlines() if ln.strip()]
    raise KernelError("bpf(BPF_PROG_LOAD)", err, f"device program{': ' + lines[-1] if lines else ''}")


def attach_device_program(cgroup_dir: str, prog_fd: int, flags: int = 0) -> None:
    """Attach the program to the cgroup v2 directory; with ``flags`` 0 no descendant may
    attach one of its own, with ``BPF_F_ALLOW_OVERRIDE`` a descendant's runs instead (in it
    and below it)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(ATTR_SIZE)
        struct.pack_into("=IIII", attr, 0, fd, prog_fd, BPF_CGROUP_DEVICE, flags)
        L.check(_bpf(BPF_PROG_ATTACH, attr), "bpf(BPF_PROG_ATTACH)", cgroup_dir)
    finally:
        os.close(fd)


def limit_devices(cgroup_dir: str, rules: tuple[DeviceRule, ...], flags: int = 0) -> None:
    """Allow exactly ``rules`` to the processes of the cgroup (v2; ``flags`` as
    ``attach_device_program``'s). The cgroup keeps the program alive once attached; it goes
    with the cgroup's rmdir."""
    prog_fd = load_device_program(device_program(rules))
    try:
        attach_device_program(cgroup_dir, prog_fd, flags)
    finally:
        os.close(prog_fd)

"""The cgroup v2 device program, run without a kernel: a small interpreter executes the encoded
instructions (the subset kernel.bpf emits) against (type, major, minor, access) the way the
kernel's BPF_CGROUP_DEVICE hook calls it, and the verdicts must be the allow-list's."""

from __future__ import annotations

import struct
import sys

import pytest

from pyrkt.kernel import bpf
from pyrkt.model.devices import ANY, DEFAULT_ALLOW, DeviceRule, policy

U64 = (1 << 64) - 1
ACCESS = {"m": bpf.ACC_MKNOD, "r": bpf.ACC_READ, "w": bpf.ACC_WRITE}


def decode(code: bytes) -> list[tuple[int, int, int, int, int]]:
    little = sys.byteorder == "little"
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi" if little else ">BBhi", code[i:i + 8])
        dst, src = (regs & 0xF, regs >> 4) if little else (regs >> 4, regs & 0xF)
        out.append((op, dst, src, off, imm))
    return out


def interpret(code: bytes, ctx: bytes) -> int:
    """Run the program on ``ctx`` (struct bpf_cgroup_dev_ctx); its r0 at exit. Anything
    outside the emitted subset, a read of an unset register or a jump out of the program fails
    the test, as the kernel's verifier would refuse the program."""
    prog = decode(code)
    regs: dict[int, int] = {1: -1}  # r1 is the context pointer
    pc = 0
    steps = 0
    while True:
        assert 0 <= pc < len(prog), f"fell off the program at {pc}"
        steps += 1
        assert steps <= len(prog), "a loop: the verifier refuses back-edges"
        op, dst, src, off, imm = prog[pc]
        pc += 1
        imm64 = imm & U64  # the immediate is sign-extended to 64 bits
        if op == bpf.OP_LDXW:
            assert regs.get(src) == -1 and off in (0, 4, 8), "only 32-bit loads from the context"
            regs[dst] = struct.unpack_from("=I", ctx, off)[0]
        elif op == bpf.OP_MOV_X:
            regs[dst] = regs[src]
        elif op == bpf.OP_MOV_K:
            regs[dst] = imm64
        elif op == bpf.OP_AND_K:
            regs[dst] = regs[dst] & imm64
        elif op == bpf.OP_RSH_K:
            regs[dst] = (regs[dst] & U64) >> imm
        elif op == bpf.OP_JNE_K:
            assert off >= 0
            if regs[dst] != imm64:
                pc += off
        elif op == bpf.OP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"opcode {op:#x} is not in the emitted subset")


def allowed(rules: tuple[DeviceRule, ...] | list[DeviceRule], kind: str, major: int, minor: int, access: str) -> bool:
    ctx = struct.pack("=III", sum(ACCESS[c] for c in access) << 16 | bpf.TYPES[kind], major, minor)
    verdict = interpret(bpf.encode(bpf.device_program(rules)), ctx)
    assert verdict in (0, 1)
    return verdict == 1


@pytest.mark.parametrize(("major", "minor"), [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 0), (136, 77)])
@pytest.mark.parametrize("access", ["r", "w", "m", "rw", "rwm"])
def test_default_policy_allows_the_standard_devices(major: int, minor: int, access: str) -> None:
    assert allowed(DEFAULT_ALLOW, "c", major, minor, access)


@pytest.mark.parametrize(("kind", "major", "minor", "name"), [
    ("c", 1, 11, "kmsg"), ("c", 10, 232, "kvm"), ("c", 4, 1, "tty1"), ("c", 10, 237, "loop-control"),
    ("c", 1, 1, "mem"), ("c", 1, 4, "port"), ("b", 8, 0, "sda"), ("b", 7, 0, "loop0"),
    ("b", 1, 3, "a block device with null's numbers"), ("c", 137, 0, "next to the ptys"), ("c", 5, 3, "next to ptmx"),
])
@pytest.mark.parametrize("access", ["r", "w", "m"])
def test_default_policy_denies_every_other_device(kind: str, major: int, minor: int, name: str, access: str) -> None:
    assert not allowed(DEFAULT_ALLOW, kind, major, minor, access), name


def test_an_added_rule_grants_only_its_device_and_access() -> None:
    rules = policy((DeviceRule("c", 10, 237, "rw"), DeviceRule("b", 7, ANY, "r")))
    assert allowed(rules, "c", 10, 237, "rw")
    assert not allowed(rules, "c", 10, 237, "m")  # no mknod: the node is bound instead
    assert not allowed(rules, "c", 10, 237, "rwm")
    assert not allowed(rules, "c", 10, 236, "r")
    assert allowed(rules, "b", 7, 0, "r") and allowed(rules, "b", 7, 9, "r")
    assert not allowed(rules, "b", 7, 0, "w")
    assert not allowed(rules, "c", 7, 0, "r")  # the type counts
    assert allowed(rules, "c", 1, 3, "rwm")  # the defaults stay


def test_an_all_rule_allows_everything_and_ends_the_program() -> None:
    prog = bpf.device_program([DeviceRule("a", ANY, ANY), DeviceRule("c", 1, 3)])
    assert prog[-1] == bpf.insn(bpf.OP_EXIT) and prog[-2] == bpf.insn(bpf.OP_MOV_K, 0, imm=1)
    assert len(prog) == 8  # the 6 loads, then "return 1": nothing unreachable after it
    assert allowed([DeviceRule("a", ANY, ANY)], "b", 8, 0, "rwm")
    assert allowed([DeviceRule("a", ANY, ANY, "m")], "c", 1, 11, "m")
    assert not allowed([DeviceRule("a", ANY, ANY, "m")], "c", 1, 11, "w")


def test_no_rules_denies_everything() -> None:
    assert not allowed([], "c", 1, 3, "r")


def test_instructions_are_eight_bytes_with_registers_in_one_byte() -> None:
    code = bpf.encode([bpf.insn(bpf.OP_LDXW, 2, 1, 4), bpf.insn(bpf.OP_JNE_K, 5, imm=-1)])
    assert len(code) == 16
    assert decode(code) == [(bpf.OP_LDXW, 2, 1, 4, 0), (bpf.OP_JNE_K, 5, 0, 0, -1)]
    if sys.byteorder == "little":
        assert code[:8] == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])

"""The sysctls a pod may set (``--sysctl=KEY=VALUE``; appc's pod isolator ``os/unix/sysctl``):
their key and value syntax, and the namespace that owns each key, so that a pod can never set
a host-wide value. Pure: pod init does the writes (``pyrkt.kernel.sysctl``).
"""

from __future__ import annotations

import re

from pyrkt.errors import UsageError
from pyrkt.model.values import Value

NET, IPC = "net", "ipc"
# The IPC namespace's sysctls (ipc/ipc_sysctl.c) besides fs.mqueue.* (ipc/mq_sysctl.c).
IPC_KEYS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"))
UTS_KEYS = frozenset(("kernel.hostname", "kernel.domainname"))
ALLOWED = "net.*, fs.mqueue.*, " + ", ".join(sorted(IPC_KEYS))
# Characters of a /proc/sys file name: sysctl names and network interface names.
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@+")
VALUE_MAX = 4096

# The kernel's format of a value, where it is known: how many integers (proc_dointvec and its
# kin: whitespace-separated, decimal, 0x hex or 0 octal, as strtoul base 0 reads them), or None
# for a string the kernel parses itself. A key of a subtree not listed in INTEGER_TREES (IPVS,
# SCTP, netfilter's nf_log, ...) is left to the kernel, which refuses it when the pod starts.
VECTORS = {"kernel.sem": 4, "net.ipv4.ip_local_port_range": 2, "net.ipv4.ping_group_range": 2,
           "net.ipv4.tcp_rmem": 3, "net.ipv4.tcp_wmem": 3, "net.ipv4.tcp_mem": 3, "net.ipv4.udp_mem": 3}
# Keys of the integer subtrees that take a string: congestion control names, a key in hex, port and
# ICMP type lists ("8080,9000-9100"), an IPv6 address, a CPU mask, a qdisc name.
STRINGS = frozenset(("net.ipv4.tcp_congestion_control", "net.ipv4.tcp_allowed_congestion_control",
                     "net.ipv4.tcp_available_congestion_control", "net.ipv4.tcp_available_ulp",
                     "net.ipv4.tcp_fastopen_key", "net.ipv4.ip_local_reserved_ports", "net.ipv6.icmp.ratemask",
                     "net.core.rps_default_mask", "net.core.default_qdisc", "net.core.flow_limit_cpu_bitmap",
                     "net.core.netdev_rss_key"))
STRING_NAMES = frozenset(("stable_secret",))  # net.ipv6.conf.<interface>.stable_secret
# Subtrees whose keys are integers but for the above: (leading names, how many names follow).
INTEGER_TREES = ((("net", "ipv4"), 1), (("net", "ipv4", "conf"), 2), (("net", "ipv4", "neigh"), 2),
                 (("net", "ipv4", "route"), 1), (("net", "ipv6"), 1), (("net", "ipv6", "conf"), 2),
                 (("net", "ipv6", "neigh"), 2), (("net", "ipv6", "route"), 1), (("net", "ipv6", "icmp"), 1),
                 (("net", "core"), 1), (("net", "unix"), 1), (("fs", "mqueue"), 1))
INTEGER_RE = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


class Sysctl(Value):
    key: str  # sysctl(8)'s dotted spelling, e.g. net.ipv4.conf.eth0/100.rp_filter
    path: str  # below /proc/sys, e.g. net/ipv4/conf/eth0.100/rp_filter
    value: str
    namespace: str  # NET or IPC


def components(key: str) -> list[str]:
    """The file names under /proc/sys that ``key`` spells, in either of sysctl(8)'s forms:
    dots between names with "/" standing for a dot inside one (``net.ipv4.conf.eth0/100.rp_filter``),
    or slashes between names with dots literal (``net/ipv4/conf/eth0.100/rp_filter``); the
    first separator decides."""
    slash, dot = key.find("/"), key.find(".")
    if slash >= 0 and (dot < 0 or slash < dot):
        return key.split("/")
    return [part.replace("/", ".") for part in key.split(".")]


def namespace_of(names: list[str]) -> str:
    """NET or IPC for a key the pod's own namespaces own; UsageError (naming it) for any other."""
    key = dotted(names)
    if names[0] == "net" and len(names) >= 2:
        return NET
    if (len(names) == 2 and key in IPC_KEYS) or (names[:2] == ["fs", "mqueue"] and len(names) == 3):
        return IPC
    if len(names) == 2 and key in UTS_KEYS:
        raise UsageError(f"--sysctl {key}: set the pod's hostname with --hostname, not a sysctl")
    raise UsageError(f"--sysctl {key}: not a sysctl of the pod's own namespaces (a pod may set {ALLOWED})")


def dotted(names: list[str]) -> str:
    """sysctl(8)'s dotted spelling of ``names`` (a dot inside a name written as "/")."""
    return ".".join(n.replace(".", "/") for n in names)


def parse_pair(key: str, value: str) -> Sysctl:
    names = components(key)
    for name in names:
        if not name or name in (".", "..") or not NAME_CHARS.issuperset(name):
            raise UsageError(f"invalid --sysctl key {key!r}: want names of letters, digits, '_', '-', '@', '+' "
                             f"separated by dots (or slashes)")
    if not value or len(value) > VALUE_MAX or any(c < " " and c != "\t" or c == "\x7f" for c in value):
        raise UsageError(f"invalid --sysctl value {value!r} for {key}: want one line of at most {VALUE_MAX} "
                         f"characters")
    namespace = namespace_of(names)
    check_value(names, value)
    return Sysctl(key=dotted(names), path="/".join(names), value=value, namespace=namespace)


def integers(names: list[str]) -> int | None:
    """How many integers the kernel wants for the key ``names``; None where it takes a string
    (or where pyrkt does not know, and leaves the value to the kernel)."""
    key = dotted(names)
    if key in VECTORS:
        return VECTORS[key]
    if key in IPC_KEYS:
        return 1
    if key in STRINGS or names[-1] in STRING_NAMES:
        return None
    known = any(tuple(names[:len(lead)]) == lead and len(names) == len(lead) + rest
                for lead, rest in INTEGER_TREES)
    return 1 if known else None


def _magnitude(word: str) -> int:
    """The value of an integer as strtoul with base 0 reads it (0x hex, 0 octal), without its sign."""
    digits = word.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        return int(digits[2:], 16)
    return int(digits, 8 if digits.startswith("0") else 10)


def check_value(names: list[str], value: str) -> None:
    """UsageError (one line naming the key) for a value the kernel would refuse when the pod
    starts: not integers for an integer key, or not as many as a vector such as kernel.sem wants."""
    want = integers(names)
    if want is None:
        return
    words = [w for w in value.replace("\t", " ").split(" ") if w]  # the kernel's separators: space and tab (no newline here)
    if len(words) != want or not all(INTEGER_RE.fullmatch(w) and _magnitude(w) < 1 << 64 for w in words):
        what = "an integer" if want == 1 else f"{want} integers separated by spaces"
        raise UsageError(f"invalid --sysctl value {value!r} for {dotted(names)}: want {what}")


def parse(item: str) -> Sysctl:
    """One ``--sysctl`` argument, ``KEY=VALUE``."""
    key, eq, value = item.partition("=")
    if not eq or not key:
        raise UsageError(f"invalid --sysctl {item!r}: want KEY=VALUE")
    return parse_pair(key, value)


def parse_all(items: list[str]) -> dict[str, str]:
    """The pod's sysctls, key -> value in the order first given; a key given again takes the
    later value (as ``run-prepared --sysctl`` over the prepared pod's)."""
    out: dict[str, str] = {}
    for item in items:
        s = parse(item)
        out[s.key] = s.value
    return out


def check_namespaces(sysctls: dict[str, str], *, host_net: bool, host_ipc: bool) -> list[Sysctl]:
    """The checked sysctls; UsageError for one whose namespace the pod shares with the host."""
    out = []
    for key, value in sysctls.items():
        s = parse_pair(key, value)
        if s.namespace == NET and host_net:
            raise UsageError(f"--sysctl {s.key}: the pod shares the host's network namespace (--net=host); "
                             f"net.* sysctls need a network of its own")
        if s.namespace == IPC and host_ipc:
            raise UsageError(f"--sysctl {s.key}: the pod shares the host's IPC namespace (--ipc=parent); "
                             f"IPC sysctls need an IPC namespace of its own")
        out.append(s)
    return out

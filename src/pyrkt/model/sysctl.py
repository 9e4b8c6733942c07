"""The sysctls a pod may set (``--sysctl=KEY=VALUE``; appc's pod isolator ``os/unix/sysctl``):
their key and value syntax, and the namespace that owns each key, so that a pod can never set
a host-wide value. Pure: pod init does the writes (``pyrkt.kernel.sysctl``).
"""

from __future__ import annotations

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
    return Sysctl(key=dotted(names), path="/".join(names), value=value, namespace=namespace)


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

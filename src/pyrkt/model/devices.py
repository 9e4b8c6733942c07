"""The device policy of a pod: which device nodes its processes may open or make, as rules in
the cgroup v1 ``devices`` format (``c 1:3 rwm``), and the host devices ``--device`` passes in.

The default is rkt's ``DevicePolicy=closed`` with runc's terminal entries: the pseudo devices
(null, zero, full, random, urandom), tty, console, ptmx and the pod's ptys (136:*), each
``rwm``. Unlike runc, mknod of any other device is not allowed (runc adds ``c *:* m`` and
``b *:* m``): a node an app could make but never open is useless to it, yet one made in a
directory the host shares (a volume) would be a live device node for any host user who can
reach it. So mknod of a kmsg, kvm or disk node fails with EPERM as in rkt, and so does opening
one an image ships.
"""

from __future__ import annotations

from pyrkt.errors import UsageError
from pyrkt.model.values import Value

ANY = -1  # a wildcard major or minor ("*")
ACCESS = "rwm"


class DeviceRule(Value):
    """One allow rule: ``kind`` "c" (character), "b" (block) or "a" (all, majors and minors
    ANY); ``access`` a subset of "rwm" (read, write, mknod)."""

    kind: str
    major: int
    minor: int
    access: str = ACCESS

    def v1(self) -> str:
        """The rule as cgroup v1 ``devices.allow`` reads it."""
        if self.kind == "a":
            return "a"
        major = "*" if self.major == ANY else str(self.major)
        minor = "*" if self.minor == ANY else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"


def char(major: int, minor: int) -> DeviceRule:
    return DeviceRule("c", major, minor, ACCESS)


DEFAULT_ALLOW: tuple[DeviceRule, ...] = (
    char(1, 3),    # null
    char(1, 5),    # zero
    char(1, 7),    # full
    char(1, 8),    # random
    char(1, 9),    # urandom
    char(5, 0),    # tty
    char(5, 1),    # console
    char(5, 2),    # ptmx
    char(136, ANY),  # the pod's ptys (devpts newinstance) and a host pty given as console
)


class HostDevice(Value):
    """A host device node passed into the apps of a pod (``--device=PATH[:TARGET][:ACCESS]``):
    made in the app's /dev at ``target`` (its host path when "") with the host node's type,
    numbers, mode and owner, and allowed."""

    path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    access: str = ACCESS
    mode: int = 0o600
    uid: int = 0
    gid: int = 0
    target: str = ""  # where the app has it, when not at its host path

    def rule(self) -> DeviceRule:
        return DeviceRule(self.kind, self.major, self.minor, self.access)

    @property
    def at(self) -> str:
        """Its path in the app."""
        return self.target or self.path

    def flag(self) -> str:
        """As ``--device`` gives it (``parse_device_flag`` reads it back)."""
        return f"{self.path}:{self.target}:{self.access}" if self.target else f"{self.path}:{self.access}"

    def to_json(self) -> dict[str, object]:
        return {n: getattr(self, n) for n in type(self)._fields}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> HostDevice:
        return cls(**d)  # type: ignore[arg-type]


def parse_device_flag(text: str) -> tuple[str, str, str]:
    """``--device=HOSTPATH[:CONTAINERPATH][:ACCESS]`` (podman's syntax) -> (host path, container
    path or "" for the host path, access); access defaults to "rwm". What follows the last
    colon is ACCESS when it is letters only (``/dev/fuse:rw``, and ``:rwx`` is an error); a
    colon followed by a slash starts the container path (``/dev/sdc:/dev/xvdc``); any other
    colon is part of the path (``/dev/disk/by-path/pci-0000:00:1f.2``)."""
    rest, sep, access = text.rpartition(":")
    if not sep or (access and not access.isalpha()):
        rest, access = text, ACCESS
    host, sep, target = rest.rpartition(":/")
    if sep:
        target = "/" + target
    else:
        host, target = rest, ""
    if not host.startswith("/") or "\0" in rest:
        raise UsageError(f"invalid --device={text!r}: want an absolute HOSTPATH[:CONTAINERPATH][:ACCESS]")
    if not access or any(c not in ACCESS for c in access) or len(set(access)) != len(access):
        raise UsageError(f"invalid --device={text!r}: ACCESS is one or more of r, w and m (e.g. rw)")
    return host, target, "".join(c for c in ACCESS if c in access)


def policy(extra: tuple[DeviceRule, ...] = ()) -> tuple[DeviceRule, ...]:
    """The pod's allow-list: the default rules, then ``extra`` (duplicates left out)."""
    out = list(DEFAULT_ALLOW)
    for rule in extra:
        if rule not in out:
            out.append(rule)
    return tuple(out)

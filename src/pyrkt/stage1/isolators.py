"""An app's privilege isolators (appc's ``os/linux/capabilities-retain-set`` and ``-remove-set``,
``seccomp-retain-set`` and ``-remove-set``, ``no-new-privileges``) and rkt's per-app flags that
write them into the pod manifest (``--caps-retain``, ``--caps-remove``, ``--seccomp``): parsed,
checked, and turned into the app's capability set and seccomp filter as rkt's stage1 did. Pure.

A flag replaces every isolator of its kind the image had (rkt's stage0 prepareIsolators); the pod
manifest's app section is what stage1 reads, so it wins over the image's.
"""

from __future__ import annotations

import os

from pyrkt.errors import UsageError
from pyrkt.kernel import caps
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Isolators = tuple[tuple[str, Any], ...]

CAPS_RETAIN = "os/linux/capabilities-retain-set"
CAPS_REMOVE = "os/linux/capabilities-remove-set"
SECCOMP_RETAIN = "os/linux/seccomp-retain-set"
SECCOMP_REMOVE = "os/linux/seccomp-remove-set"
NO_NEW_PRIVS = "os/linux/no-new-privileges"
HONOURED = frozenset({CAPS_RETAIN, CAPS_REMOVE, SECCOMP_RETAIN, SECCOMP_REMOVE, NO_NEW_PRIVS})
"""The isolators this module applies (the default flavor; fly applies none of them)."""

# rkt's named groups (stage1/init/common/seccomp.go); "@appc.io/all" and "@appc.io/empty" are the
# appc spec's and handled apart.
GROUPS = ("@docker/default-blacklist", "@docker/default-whitelist", "@rkt/default-blacklist",
          "@rkt/default-whitelist", "@systemd/clock", "@systemd/default-whitelist", "@systemd/mount",
          "@systemd/network-io", "@systemd/obsolete", "@systemd/privileged", "@systemd/process", "@systemd/raw-io")


class SeccompFilter(Value):
    """What an app's seccomp isolator asks for. ``mode``: "retain" (only ``names``, plus the
    calls systemd always allowed), "remove" (all but ``names``), "default" (pyrkt's default
    profile: a remove-set of ``@appc.io/empty``), "none" (a retain-set of ``@appc.io/all``).
    ``errno``: what a filtered call returns; None kills the process with SIGSYS, as rkt's."""

    mode: str
    errno: int | None = None
    names: tuple[str, ...] = ()


# -- flags into isolators ------------------------------------------------------------------------

def caps_isolator(flag: str, text: str) -> tuple[str, Any]:
    """``--caps-retain=CAP_A,CAP_B`` or ``--caps-remove=…`` as its appc isolator."""
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"invalid --{flag}={text!r}: want a comma list of capabilities")
    caps.parse_all(names)
    return (CAPS_RETAIN if flag.endswith("retain") else CAPS_REMOVE, {"set": names})


def seccomp_isolator(text: str) -> tuple[str, Any]:
    """``--seccomp=mode=retain|remove[,errno=ENAME],SYSCALL|@GROUP,…`` as its appc isolator
    (rkt's common/apps SeccompOverride: ``key=value`` items set the mode and errno, any other
    item is a syscall or group)."""
    mode, errno, names = "", "", []
    for item in text.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            names.append(item)
        elif key == "mode" and value in ("retain", "remove"):
            mode = value
        elif key == "mode":
            raise UsageError(f"invalid --seccomp mode {value!r}: want retain or remove")
        elif key == "errno":
            errno = value
        else:
            raise UsageError(f"invalid --seccomp item {item!r}: want mode=, errno= or a syscall name")
    if not mode:
        raise UsageError(f"invalid --seccomp={text!r}: no mode=retain or mode=remove")
    spec: dict[str, Any] = {"set": names}
    if errno:
        spec["errno"] = errno
    isolator = (SECCOMP_RETAIN if mode == "retain" else SECCOMP_REMOVE, spec)
    seccomp_filter((isolator,))  # checks the set and the errno now, before a pod exists
    return isolator


def override(isolators: Isolators, *, caps_retain: str = "", caps_remove: str = "",
             seccomp: str = "") -> Isolators:
    """``isolators`` (the image's) with the app's flags applied: a capability flag replaces
    both capability isolators, ``--seccomp`` both seccomp ones."""
    if caps_retain and caps_remove:
        raise UsageError("cannot use both --caps-retain and --caps-remove on the same image")
    out = list(isolators)
    if caps_retain or caps_remove:
        flag, text = ("caps-retain", caps_retain) if caps_retain else ("caps-remove", caps_remove)
        out = [i for i in out if i[0] not in (CAPS_RETAIN, CAPS_REMOVE)] + [caps_isolator(flag, text)]
    if seccomp:
        out = [i for i in out if i[0] not in (SECCOMP_RETAIN, SECCOMP_REMOVE)] + [seccomp_isolator(seccomp)]
    return tuple(out)


# -- isolators into what the app gets ------------------------------------------------------------

def _set(name: str, value: Any) -> list[str]:
    items = value.get("set") if isinstance(value, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise UsageError(f"isolator {name}: want {{\"set\": [...]}} with a non-empty list of names")
    return items


def capabilities(isolators: Isolators, *, insecure: bool = False) -> tuple[int, ...]:
    """The app's capability set (rkt's getAppCapabilities): appc's default set, a retain-set
    instead of it, or the default set less a remove-set; both kinds at once is an error;
    ``insecure`` (``--insecure-options=capabilities``): every capability."""
    retain: set[int] | None = None
    remove: set[int] | None = None
    for name, value in isolators:
        if name == CAPS_RETAIN:
            retain = (retain or set()) | caps.parse_all(_set(name, value))
        elif name == CAPS_REMOVE:
            remove = (remove or set()) | caps.parse_all(_set(name, value))
    if retain is not None and remove is not None:
        raise UsageError(f"cannot have both {CAPS_RETAIN} and {CAPS_REMOVE}")
    return tuple(sorted(caps.plan_caps(retain=retain, remove=remove, insecure=insecure)))


def errno_number(name: str) -> int:
    """An errno given by name (``EPERM``, ``ENOSYS``, ``ENOTSUP``...), as systemd's
    SystemCallErrorNumber took it; appc wants upper case letters and digits after the E."""
    import errno

    spelled = name[:1] == "E" and all(c.isupper() or c.isdigit() for c in name)
    number = getattr(errno, name, None) if spelled else None
    if not isinstance(number, int):
        raise UsageError(f"unknown errno {name!r} in a seccomp isolator: want a name such as EPERM or ENOSYS")
    return number


def seccomp_filter(isolators: Isolators) -> SeccompFilter | None:
    """The app's seccomp isolator as a filter (rkt's generateSeccompFilter), None without one
    (pyrkt's default profile). At most one; groups expanded; an unknown group is an error."""
    found = [(n, v) for n, v in isolators if n in (SECCOMP_RETAIN, SECCOMP_REMOVE)]
    if not found:
        return None
    if len(found) > 1:
        raise UsageError("too many seccomp isolators specified: one of "
                         f"{SECCOMP_RETAIN} or {SECCOMP_REMOVE} per app")
    (name, value), = found
    items = _set(name, value)
    errno_name = value.get("errno") or ""
    if not isinstance(errno_name, str):
        raise UsageError(f"isolator {name}: errno must be a string such as \"EPERM\"")
    errno = errno_number(errno_name) if errno_name else None
    mode = "retain" if name == SECCOMP_RETAIN else "remove"
    names: list[str] = []
    for item in items:
        if item == "@appc.io/all":
            if mode == "retain":
                return SeccompFilter("none")
            return SeccompFilter("retain", errno)  # remove every call: only what is always allowed
        if item == "@appc.io/empty":
            if mode == "remove":
                return SeccompFilter("default", errno)
            continue  # retain nothing more
        names += group(item) if item.startswith("@") else [item]
    return SeccompFilter(mode, errno, tuple(dict.fromkeys(names)))


def group(name: str) -> tuple[str, ...]:
    """The syscalls of one of rkt's named groups (see ``GROUPS``)."""
    from pyrkt.kernel import seccomp_groups as g

    if name in ("@docker/default-whitelist", "@rkt/default-whitelist"):
        arm = name.startswith("@rkt") and os.uname().machine.startswith(("arm", "aarch64"))
        return g.DOCKER_DEFAULT_WHITELIST + (g.ARM_WHITELIST if arm else ())
    if name in ("@docker/default-blacklist", "@rkt/default-blacklist"):
        return g.DOCKER_DEFAULT_BLACKLIST
    if name.startswith("@systemd/") and name in GROUPS:
        return g.SYSTEMD_GROUPS[name.removeprefix("@systemd/")]
    raise UsageError(f"unknown seccomp group {name!r}: groups are {', '.join(GROUPS)}, @appc.io/all, @appc.io/empty")


def check(isolators: Isolators) -> None:
    """Refuse privilege isolators that ``capabilities`` or ``seccomp_filter`` would refuse, and a
    ``no-new-privileges`` that is not true or false."""
    capabilities(isolators)
    seccomp_filter(isolators)
    for name, value in isolators:
        if name == NO_NEW_PRIVS and not isinstance(value, bool):
            raise UsageError(f"isolator {name}: want true or false, not {value!r}")


def plain_syscalls(isolators: Isolators) -> list[str]:
    """The syscall names an app's seccomp isolator gives itself (not through a group)."""
    return [i for n, v in isolators if n in (SECCOMP_RETAIN, SECCOMP_REMOVE) and isinstance(v, dict)
            for i in v.get("set") or () if isinstance(i, str) and not i.startswith("@")]


def check_syscalls(isolators: Isolators, known: Callable[[str], bool]) -> None:
    """Refuse a syscall name that ``known`` (libseccomp's resolver) does not know."""
    for name in plain_syscalls(isolators):
        if not known(name):
            raise UsageError(f"unknown syscall {name!r} in the seccomp set")


def warnings(isolators: Isolators, *, flavor: str) -> list[str]:
    """What of the app's privilege isolators pyrkt does not apply, one line each: all of them
    under the fly flavor (as rkt's fly), and a ``no-new-privileges`` of false (pyrkt always
    sets no_new_privs)."""
    out = []
    for name, value in isolators:
        if name not in HONOURED:
            continue
        if flavor == "fly":
            out.append(f"isolator {name} is not applied by the fly flavor: ignored")
        elif name == NO_NEW_PRIVS and value is False:
            out.append(f"isolator {name} false is not honoured: pyrkt always sets no_new_privs")
    return out

"""An OCI/Docker image config mapped onto ``pyrkt.model.image.Image`` (docker2aci's rules).

- ``app.exec`` = Entrypoint + Cmd; ``environment`` from Env; ``working_directory`` from
  WorkingDir ("/" when empty)
- user/group from User: "" -> 0/0; "u" -> u/u (docker2aci: the group is the user's string);
  "u:g" -> u/g; names are kept as strings and looked up in the image at run time
- ExposedPorts "80/tcp" -> port "80-tcp"; Volumes "/data" -> mount point "volume-data"
- labels version=<tag>, os, arch (appc names: amd64, i386, aarch64, armv7l, ...);
  annotations from the config's Labels
``oci_config`` maps the other way (``pyrkt export --format=oci-archive``). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyrkt.errors import ImageError
from pyrkt.model.image import AppSpec, Image, MountPoint, Port
from pyrkt.store.digests import parse_digest

# Go architecture (+variant) -> appc arch label (rkt's stage0/arch.go vocabulary).
_APPC_ARCH = {("amd64", ""): "amd64", ("386", ""): "i386", ("arm64", ""): "aarch64", ("arm64", "v8"): "aarch64",
              ("arm", "v6"): "armv6l", ("arm", "v7"): "armv7l", ("arm", ""): "armv7l",
              ("ppc64le", ""): "ppc64le", ("s390x", ""): "s390x"}


def appc_arch(arch: str, variant: str = "") -> str:
    return _APPC_ARCH.get((arch, variant), _APPC_ARCH.get((arch, ""), arch))


def oci_arch(arch: str) -> tuple[str, str]:
    """An appc arch label as OCI's (architecture, variant): the reverse of ``appc_arch``."""
    for (go_arch, variant), appc in _APPC_ARCH.items():
        if appc == arch:
            return go_arch, variant if go_arch == "arm" else ""
    return arch, ""


def parse_user(user: str) -> tuple[str, str]:
    """Docker's ``User`` -> (user, group), as docker2aci did."""
    user = user.strip()
    if not user:
        return "0", "0"
    name, sep, group = user.partition(":")
    if not name:
        raise ImageError(f"invalid User {user!r} in the image config")
    return name, group if sep and group else name


def parse_env(env: Any) -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, list):
        raise ImageError("image config Env is not a list")
    out = []
    for item in env:
        if not isinstance(item, str):
            raise ImageError(f"image config Env holds {item!r}, not a string")
        if not item:
            continue  # an empty entry means nothing (docker2aci crashed on odd entries, rkt#3701)
        key, _, value = item.partition("=")
        if key:
            out.append((key, value))
    return tuple(out)


def parse_ports(exposed: Any) -> tuple[Port, ...]:
    if not exposed:
        return ()
    if not isinstance(exposed, dict):
        raise ImageError("image config ExposedPorts is not an object")
    ports = []
    for key in exposed:
        number, _, proto = key.partition("/")
        proto = (proto or "tcp").lower()
        if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("tcp", "udp", "sctp"):
            raise ImageError(f"invalid exposed port {key!r} in the image config")
        ports.append(Port(name=f"{number}-{proto}", protocol=proto, port=int(number)))
    return tuple(sorted(ports, key=lambda p: (p.port, p.protocol)))


def volume_name(path: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    return f"volume-{cleaned}" if cleaned else "volume-root"


def parse_volumes(volumes: Any) -> tuple[MountPoint, ...]:
    if not volumes:
        return ()
    if not isinstance(volumes, dict):
        raise ImageError("image config Volumes is not an object")
    return tuple(MountPoint(volume_name(p), p) for p in sorted(volumes))


def _words(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # some hand-written configs use a string; Docker means a shell-less argv
        return (value,)
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ImageError(f"image config {field} is not a list of strings")
    return tuple(value)


def diff_ids(config: dict[str, Any], what: str) -> tuple[str, ...]:
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ImageError(f"{what} has no rootfs.diff_ids")
    out = []
    for d in rootfs["diff_ids"]:
        if not isinstance(d, str):
            raise ImageError(f"{what} has an invalid diff id {d!r}")
        try:
            parse_digest(d)
        except ImageError:
            raise ImageError(f"{what} has an invalid diff id {d!r}") from None
        out.append(d)
    return tuple(out)


# The OCI image spec's types of the config's fields (image-spec config.md), as a JSON decoder
# such as Docker's holds them: null stands for a field not given. Entrypoint and Cmd may also be
# one string (Docker's StrSlice reads both forms). rootfs is checked by ``diff_ids``.
STR, STRINGS, ARGV, SET, STR_MAP, INT, BOOL = "string", "strings", "argv", "set", "str_map", "int", "bool"
TOP_FIELDS = {"created": STR, "author": STR, "architecture": STR, "os": STR, "os.version": STR,
              "os.features": STRINGS, "variant": STR}
CONFIG_FIELDS = {"User": STR, "ExposedPorts": SET, "Env": STRINGS, "Entrypoint": ARGV, "Cmd": ARGV,
                 "Volumes": SET, "WorkingDir": STR, "Labels": STR_MAP, "StopSignal": STR, "ArgsEscaped": BOOL,
                 "Memory": INT, "MemorySwap": INT, "CpuShares": INT}
HISTORY_FIELDS = {"created": STR, "author": STR, "created_by": STR, "comment": STR, "empty_layer": BOOL}
_WANT = {STR: "a string", STRINGS: "an array of strings", ARGV: "an array of strings",
         SET: "an object of empty objects", STR_MAP: "an object of strings", INT: "an integer", BOOL: "a boolean"}


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as a message names it."""
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "a number"), (float, "a number"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "null"


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == STR:
        return isinstance(value, str)
    if kind in (STRINGS, ARGV):
        return (kind == ARGV and isinstance(value, str)) or (
            isinstance(value, list) and all(isinstance(w, str) for w in value))
    if kind == SET:
        return isinstance(value, dict) and all(v is None or isinstance(v, dict) for v in value.values())
    if kind == STR_MAP:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, bool)


def _check_fields(obj: dict[str, Any], fields: dict[str, str], prefix: str, what: str) -> None:
    for name, kind in fields.items():
        value = obj.get(name)
        if not _fits(value, kind):
            raise ImageError(f"{what}: {prefix}{name} is {_shown(value, kind)}, want {_WANT[kind]}")


def _shown(value: Any, kind: str) -> str:
    """What a wrong value is: its type and, for a scalar or a wrong item, the value itself."""
    if isinstance(value, list) and kind in (STRINGS, ARGV):
        i, item = next((i, v) for i, v in enumerate(value) if not isinstance(v, str))
        return f"an array whose item {i} is {_shown(item, STR)}"
    if isinstance(value, dict) and kind in (SET, STR_MAP):
        key, item = next((k, v) for k, v in value.items() if not _fits(v, STR if kind == STR_MAP else SET)
                         or (kind == STR_MAP and v is None))
        return f"an object whose {key!r} is {_shown(item, STR)}"
    if value is None or isinstance(value, list | dict):
        return json_type(value)
    text = json.dumps(value)
    return f"{json_type(value)} ({text if len(text) <= 40 else text[:37] + '...'})"


def check_config(config: dict[str, Any], what: str) -> None:
    """ImageError (one line naming ``what``, the image's config, and the field) for a field of
    the wrong JSON type, rather than a value made of it by ``str()``: ``"User": 5``, an Env entry
    or a Cmd item that is no string, a Labels value that is none."""
    _check_fields(config, TOP_FIELDS, "", what)
    for key in ("config", "Config"):
        c = config.get(key)
        if c is not None and not isinstance(c, dict):
            raise ImageError(f"{what}: {key} is {json_type(c)}, want an object")
        if c:
            _check_fields(c, CONFIG_FIELDS, f"{key}.", what)
    history = config.get("history")
    if history is not None:
        if not isinstance(history, list):
            raise ImageError(f"{what}: history is {json_type(history)}, want an array of objects")
        for i, entry in enumerate(history):
            if not isinstance(entry, dict):
                raise ImageError(f"{what}: history[{i}] is {json_type(entry)}, want an object")
            _check_fields(entry, HISTORY_FIELDS, f"history[{i}].", what)


def image_from_config(config: Any, *, image_id: str, name: str, tag: str, fmt: str,
                      manifest_digest: str = "", what: str = "image config") -> Image:
    """The internal Image for an OCI/Docker config (already digest-verified as ``image_id``)."""
    if not isinstance(config, dict):
        raise ImageError(f"{what} is not a JSON object")
    check_config(config, what)
    c = config.get("config") or config.get("Config") or {}
    user, group = parse_user(c.get("User") or "")
    app = AppSpec(
        exec=_words(c.get("Entrypoint"), "Entrypoint") + _words(c.get("Cmd"), "Cmd"),
        user=user,
        group=group,
        environment=parse_env(c.get("Env")),
        working_directory=c.get("WorkingDir") or "/",
        ports=parse_ports(c.get("ExposedPorts")),
        mount_points=parse_volumes(c.get("Volumes")),
    )
    labels: list[tuple[str, str]] = []
    if tag:
        labels.append(("version", tag))
    if config.get("os"):
        labels.append(("os", config["os"]))
    if config.get("architecture"):
        labels.append(("arch", appc_arch(config["architecture"], config.get("variant") or "")))
    raw_labels = c.get("Labels") or {}
    return Image(
        id=image_id,
        name=name,
        labels=tuple(labels),
        layers=diff_ids(config, what),
        app=app,
        annotations=tuple(sorted(raw_labels.items())),
        format=fmt,
        manifest_digest=manifest_digest,
    )


def sanitize_name(text: str) -> str:
    """An image name made from a file or dir name: lower case, ``[a-z0-9._/-]`` only."""
    base = text.lower()
    for suffix in (".tar.gz", ".tgz", ".tar", ".oci"):
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    cleaned = re.sub(r"[^a-z0-9._/-]+", "-", base).strip("-._/")
    return cleaned or "image"


def oci_config(image: Image, diff_ids: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The OCI image config of ``image`` over the layers ``diff_ids``, and the names of what the
    image has that a config cannot hold (left out). ``image_from_config`` gives the app back:
    exec is the Entrypoint, user:group the User, mount points the Volumes, ports the
    ExposedPorts, annotations the Labels, the os/arch labels the platform."""
    arch, variant = oci_arch(image.label("arch") or "amd64")
    out: dict[str, Any] = {"architecture": arch, "os": image.label("os") or "linux"}
    if variant:
        out["variant"] = variant
    conf: dict[str, Any] = {}
    lost: list[str] = []
    app = image.app
    if app is not None:
        if app.exec:
            conf["Entrypoint"] = list(app.exec)
        conf["User"] = f"{app.user}:{app.group}"
        if app.environment:
            conf["Env"] = [f"{k}={v}" for k, v in app.environment]
        conf["WorkingDir"] = app.working_directory or "/"
        if app.ports:
            conf["ExposedPorts"] = {f"{p.port + i}/{p.protocol}": {} for p in app.ports for i in range(p.count)}
        if app.mount_points:
            conf["Volumes"] = {m.path: {} for m in app.mount_points}
        lost += [name for name, has in (
            ("isolators", bool(app.isolators)), ("eventHandlers", bool(app.event_handlers)),
            ("supplementaryGIDs", bool(app.supplementary_gids)),
            ("socket-activated ports", any(p.socket_activated for p in app.ports)),
            ("port names", any(p.name != f"{p.port}-{p.protocol}" or p.count != 1 for p in app.ports)),
            ("mount point names", any(m.name != volume_name(m.path) for m in app.mount_points)),
            ("read-only mount points", any(m.read_only for m in app.mount_points))) if has]
    if image.annotations:
        conf["Labels"] = dict(image.annotations)
    if conf:
        out["config"] = conf
    out["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    return out, lost

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
        if not isinstance(item, str) or not item:
            continue  # docker2aci crashed on odd entries (rkt#3701); an empty one means nothing
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
        number, _, proto = str(key).partition("/")
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
    return tuple(MountPoint(volume_name(str(p)), str(p)) for p in sorted(volumes))


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


def image_from_config(config: Any, *, image_id: str, name: str, tag: str, fmt: str,
                      manifest_digest: str = "", what: str = "image config") -> Image:
    """The internal Image for an OCI/Docker config (already digest-verified as ``image_id``)."""
    if not isinstance(config, dict):
        raise ImageError(f"{what} is not a JSON object")
    c = config.get("config") or config.get("Config") or {}
    if not isinstance(c, dict):
        raise ImageError(f"{what}: config is not an object")
    user, group = parse_user(str(c.get("User") or ""))
    app = AppSpec(
        exec=_words(c.get("Entrypoint"), "Entrypoint") + _words(c.get("Cmd"), "Cmd"),
        user=user,
        group=group,
        environment=parse_env(c.get("Env")),
        working_directory=str(c.get("WorkingDir") or "/"),
        ports=parse_ports(c.get("ExposedPorts")),
        mount_points=parse_volumes(c.get("Volumes")),
    )
    labels: list[tuple[str, str]] = []
    if tag:
        labels.append(("version", tag))
    if config.get("os"):
        labels.append(("os", str(config["os"])))
    if config.get("architecture"):
        labels.append(("arch", appc_arch(str(config["architecture"]), str(config.get("variant") or ""))))
    raw_labels = c.get("Labels") or {}
    if not isinstance(raw_labels, dict):
        raise ImageError(f"{what}: Labels is not an object")
    return Image(
        id=image_id,
        name=name,
        labels=tuple(labels),
        layers=diff_ids(config, what),
        app=app,
        annotations=tuple(sorted((str(k), str(v)) for k, v in raw_labels.items())),
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

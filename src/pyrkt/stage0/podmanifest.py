"""A pod manifest the user wrote (``run``/``prepare --pod-manifest=FILE``): read and checked as
appc's schema and rkt's stage0 check it, its images found by id in the store (or fetched by
name under the pull policy), and its apps reified: an app without an ``app`` section takes its
image's, one with it runs that section instead of the image's.

Only this path imports the module: the ordinary run stays as light as it was.
"""

from __future__ import annotations

import re

from pyrkt.errors import ImageError, NotFound, UsageError, quote
from pyrkt.model import jsonio
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.names import is_ac_identifier, is_ac_name
from pyrkt.model.pod import SYSCTL_ISOLATOR, PodManifest, PodPort, RuntimeApp, RuntimeImage
from pyrkt.model.stdio import Stdio
from pyrkt.model.values import Value
from pyrkt.model.volumes import AppMount, Volume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.config import Config
    from pyrkt.fetch.ui import FetchUI
    from pyrkt.store import Store

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9.-]*$")  # appc's environment variable names
ID_PREFIXES = ("sha512-", "sha256:")
HEX = frozenset("0123456789abcdef")
POD_KEYS = frozenset({"acVersion", "acKind", "apps", "volumes", "isolators", "annotations", "ports",
                      "userAnnotations", "userLabels"})
APP_KEYS = frozenset({"name", "image", "app", "readOnlyRootFS", "mounts", "annotations"})
APP_SECTION_KEYS = frozenset({"exec", "eventHandlers", "user", "group", "supplementaryGIDs", "workingDirectory",
                              "environment", "mountPoints", "ports", "isolators", "userAnnotations", "userLabels"})
EVENT_HANDLERS = ("pre-start", "post-stop")


class PodFile(Value):
    """A pod manifest as read: ``image_apps`` names the apps without an ``app`` section (they
    take their image's, once the images are known); ``notes`` are the warnings it earned."""

    manifest: PodManifest
    image_apps: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()


def read(path: str) -> PodFile:
    """The pod manifest at ``path``, checked; a UsageError naming the file and what is wrong."""
    from pyrkt.kernel import fs

    try:
        text = fs.read_file(path)
    except OSError as e:
        raise UsageError(f"cannot read pod manifest {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"pod manifest {path}: not UTF-8 text") from None
    return parse(text, path)


def parse(text: str, where: str) -> PodFile:
    """A pod manifest's text, checked as appc's ``schema.PodManifest`` (and rkt) check it."""
    try:
        return _Parser(where).pod(text)
    except _Bad as e:
        raise UsageError(f"pod manifest {where}: {e}") from None


class _Bad(Exception):
    """What is wrong in the file, without the file's name."""


def _want(ok: bool, message: str) -> None:
    if not ok:
        raise _Bad(message)


def _object(value: Any, what: str) -> dict[str, Any]:
    _want(isinstance(value, dict), f"{what}: want a JSON object")
    return value  # type: ignore[no-any-return]


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    _want(isinstance(value, list), f"{what}: want a JSON array")
    return value  # type: ignore[no-any-return]


def _str(value: Any, what: str) -> str:
    _want(isinstance(value, str), f"{what}: want a string")
    return value  # type: ignore[no-any-return]


def _int(value: Any, what: str, low: int, high: int) -> int:
    _want(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
          f"{what}: want a whole number from {low} to {high}")
    return value  # type: ignore[no-any-return]


def _bool(value: Any, what: str) -> bool:
    _want(isinstance(value, bool), f"{what}: want true or false")
    return value  # type: ignore[no-any-return]


def _strings(value: Any, what: str) -> tuple[str, ...]:
    return tuple(_str(v, what) for v in _list(value, what))


def _string_map(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    return tuple((k, _str(v, f"{what} {quote(k)}")) for k, v in _object(value, what).items())


def _annotations(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    """appc annotations: ``[{name, value}]``, each name an AC Identifier, once."""
    out: dict[str, str] = {}
    for item in _list(value, what):
        item = _object(item, what)
        name = _str(item.get("name"), f"{what}: annotation name")
        _want(is_ac_identifier(name), f"{what}: annotation name {quote(name)} is not a valid AC Identifier")
        _want(name not in out, f"{what}: duplicate annotations of name {quote(name)}")
        out[name] = _str(item.get("value"), f"{what}: annotation {quote(name)}")
    return tuple(out.items())


def _isolators(value: Any, what: str) -> tuple[tuple[str, Any], ...]:
    out = []
    for item in _list(value, what):
        item = _object(item, what)
        name = _str(item.get("name"), f"{what}: isolator name")
        _want(is_ac_identifier(name), f"{what}: isolator name {quote(name)} is not a valid AC Identifier")
        _want("value" in item, f"{what}: isolator {quote(name)} has no value")
        out.append((name, item["value"]))
    return tuple(out)


class _Parser:
    def __init__(self, where: str) -> None:
        self.where = where
        self.notes: list[str] = []

    def unknown(self, d: dict[str, Any], known: frozenset[str], what: str) -> None:
        for key in d:
            if key not in known:
                self.notes.append(f"pod manifest {self.where}: {what}unknown field {quote(key)} ignored")

    def pod(self, text: str) -> PodFile:
        try:
            d = jsonio.loads(text)
        except ValueError as e:  # also jsonio.TooDeep
            raise _Bad(f"invalid JSON: {e}") from None
        d = _object(d, "the pod manifest")
        _want(d.get("acKind") == "PodManifest", 'missing or bad ACKind (must be "PodManifest")')
        if "acVersion" in d:
            version = d["acVersion"]
            _want(isinstance(version, str) and SEMVER.match(version) is not None and version != "0.0.0",
                  f"acVersion {quote(str(version))} is not a semantic version")
        self.unknown(d, POD_KEYS, "")
        apps_json = _list(d.get("apps"), "apps")
        _want(bool(apps_json), "pod must contain at least one application")
        apps: list[RuntimeApp] = []
        image_apps: set[str] = set()
        for a in apps_json:
            app, own_section = self.app(_object(a, "apps"), {x.name for x in apps})
            apps.append(app)
            if not own_section:
                image_apps.add(app.name)
        sysctls: tuple[tuple[str, str], ...] = ()
        isolators = []
        for name, value in _isolators(d.get("isolators"), "isolators"):
            if name == SYSCTL_ISOLATOR:
                _want(not sysctls, f"isolators: {SYSCTL_ISOLATOR} given twice")
                sysctls = _string_map(value, f"isolator {SYSCTL_ISOLATOR}")
            else:
                isolators.append((name, value))
        manifest = PodManifest(
            apps=tuple(apps),
            ports=tuple(self.port(_object(p, "ports")) for p in _list(d.get("ports"), "ports")),
            volumes=self.volumes(_list(d.get("volumes"), "volumes")),
            annotations=_annotations(d.get("annotations"), "annotations"),
            user_annotations=_string_map(d.get("userAnnotations"), "userAnnotations"),
            user_labels=_string_map(d.get("userLabels"), "userLabels"),
            sysctls=sysctls,
            isolators=tuple(isolators),
        )
        return PodFile(manifest, frozenset(image_apps), tuple(self.notes))

    def app(self, a: dict[str, Any], seen: set[str]) -> tuple[RuntimeApp, bool]:
        name = _str(a.get("name"), "app name")
        _want(is_ac_name(name), f"app name {quote(name)} is not a valid AC Name")
        _want(name not in seen, f"duplicate apps of name {quote(name)}")
        what = f"app {name}"
        self.unknown(a, APP_KEYS, f"{what}: ")
        image = _object(a.get("image") or {}, f"{what}: image")
        image_id = image.get("id")
        _want(bool(image_id), f"no image ID for app {quote(name)}")
        image_id = _str(image_id, f"{what}: image id")
        prefix = next((p for p in ID_PREFIXES if image_id.startswith(p)), "")
        _want(bool(prefix) and len(image_id) > len(prefix) + 1 and HEX.issuperset(image_id[len(prefix):]),
              f"{what}: image id {quote(image_id)} is not an image ID (want sha512-HEX or sha256:HEX)")
        labels = []
        for label in _list(image.get("labels"), f"{what}: image labels"):
            label = _object(label, f"{what}: image labels")
            labels.append((_str(label.get("name"), f"{what}: image label name"),
                           _str(label.get("value"), f"{what}: image label value")))
        section = a.get("app")
        spec = self.app_section(_object(section, f"{what}: app"), what) if section is not None else AppSpec()
        read_only = a.get("readOnlyRootFS") is not None and _bool(a["readOnlyRootFS"], f"{what}: readOnlyRootFS")
        mounts = []
        for m in _list(a.get("mounts"), f"{what}: mounts"):
            try:
                mounts.append(AppMount.from_json(m))
            except UsageError as e:
                raise _Bad(f"{what}: {e}") from None
        runtime = RuntimeApp(
            name=name,
            image=RuntimeImage(image_id, _str(image.get("name") or "", f"{what}: image name"), tuple(labels)),
            app=spec,
            read_only_rootfs=read_only,
            annotations=_annotations(a.get("annotations"), f"{what}: annotations"),
            mounts=tuple(mounts),
        )
        try:  # rkt's stdio modes (coreos.com/rkt/stage2/stdin...), checked now rather than at run
            Stdio.from_annotations(runtime.annotations, f"{what}: ")
        except UsageError as e:
            raise _Bad(str(e)) from None
        return runtime, section is not None

    def app_section(self, d: dict[str, Any], what: str) -> AppSpec:
        """appc's ``types.App``: exec, a user and a group, an absolute working directory, well
        formed environment, event handlers, ports and mount points."""
        what = f"{what}: app"
        self.unknown(d, APP_SECTION_KEYS, f"{what}: ")
        exec_ = _strings(d.get("exec"), f"{what}: exec")
        _want(bool(exec_) and bool(exec_[0]), f"{what}: exec is empty: name the command to run")
        _want(bool(d.get("user")), f"{what}: user is required")
        _want(bool(d.get("group")), f"{what}: group is required")
        _str(d["user"], f"{what}: user")
        _str(d["group"], f"{what}: group")
        for gid in _list(d.get("supplementaryGIDs"), f"{what}: supplementaryGIDs"):
            _int(gid, f"{what}: supplementaryGIDs", 0, 2**32 - 1)
        wd = d.get("workingDirectory")
        if wd is not None:
            _want(_str(wd, f"{what}: workingDirectory").startswith("/") or wd == "",
                  f"{what}: workingDirectory must be an absolute path")
        env: set[str] = set()
        for e in _list(d.get("environment"), f"{what}: environment"):
            e = _object(e, f"{what}: environment")
            key = _str(e.get("name"), f"{what}: environment variable name")
            _want(ENV_NAME.match(key) is not None, f"{what}: environment variable name {quote(key)} is not valid")
            _want(key not in env, f"{what}: duplicate environment variable of name {quote(key)}")
            env.add(key)
            _str(e.get("value"), f"{what}: environment variable {key}")
        handlers: set[str] = set()
        for h in _list(d.get("eventHandlers"), f"{what}: eventHandlers"):
            h = _object(h, f"{what}: eventHandlers")
            hname = _str(h.get("name"), f"{what}: eventHandler name")
            _want(hname in EVENT_HANDLERS, f"{what}: bad eventHandler name {quote(hname)} (want pre-start or post-stop)")
            _want(hname not in handlers, f"{what}: only one eventHandler of name {quote(hname)} allowed")
            handlers.add(hname)
            _want(bool(_strings(h.get("exec"), f"{what}: eventHandler {hname} exec")),
                  f"{what}: eventHandler {hname} has no exec")
        for p in _list(d.get("ports"), f"{what}: ports"):
            p = _object(p, f"{what}: ports")
            pname = _str(p.get("name"), f"{what}: port name")
            _want(is_ac_name(pname), f"{what}: port name {quote(pname)} is not a valid AC Name")
            _int(p.get("port"), f"{what}: port {pname}", 1, 65535)
            _str(p.get("protocol", "tcp"), f"{what}: port {pname} protocol")
            if p.get("count") is not None:
                _int(p["count"], f"{what}: port {pname} count", 0, 65535)
        for m in _list(d.get("mountPoints"), f"{what}: mountPoints"):
            m = _object(m, f"{what}: mountPoints")
            mname = _str(m.get("name"), f"{what}: mount point name")
            _want(is_ac_name(mname), f"{what}: mount point name {quote(mname)} is not a valid AC Name")
            _str(m.get("path"), f"{what}: mount point {mname} path")
        _isolators(d.get("isolators"), f"{what}: isolators")
        _string_map(d.get("userAnnotations"), f"{what}: userAnnotations")
        _string_map(d.get("userLabels"), f"{what}: userLabels")
        try:
            return AppSpec.from_appc(d)
        except (KeyError, TypeError, ValueError) as e:  # a shape the checks above let through
            raise _Bad(f"{what}: invalid app section: {e}") from None

    def port(self, p: dict[str, Any]) -> PodPort:
        """appc's ``ExposedPort``: an app's port by name, forwarded from a host port (and IP)."""
        name = _str(p.get("name"), "ports: port name")
        _want(is_ac_name(name), f"ports: port name {quote(name)} is not a valid AC Name")
        host_port = _int(p.get("hostPort"), f"port {name}: hostPort", 1, 65535)
        host_ip = p.get("hostIP") or ""
        if host_ip:
            import ipaddress

            try:
                host_ip = str(ipaddress.ip_address(_str(host_ip, f"port {name}: hostIP")))
            except ValueError:
                raise _Bad(f"port {name}: hostIP {quote(host_ip)} is not an IP address") from None
        pod_port = p.get("podPort")
        if pod_port is None:
            return PodPort(name, host_port, host_ip)
        # rkt's extension (`app sandbox --port`'s): the pod's own port, which no app need name
        _want(isinstance(pod_port, dict), f"port {name}: podPort must be an object")
        port = _int(pod_port.get("port"), f"port {name}: podPort port", 1, 65535)
        protocol = pod_port.get("protocol", "tcp")
        _want(protocol in ("tcp", "udp"), f"port {name}: podPort protocol {quote(str(protocol))} is not tcp or udp")
        count, activated = pod_port.get("count"), pod_port.get("socketActivated")
        _want((count is None or (type(count) is int and count <= 1)) and activated in (None, False),
              f"port {name}: podPort count and socketActivated are not honoured by pyrkt (one port, no socket activation)")
        return PodPort(name, host_port, host_ip, pod_port=port, protocol=protocol)

    def volumes(self, items: list[Any]) -> tuple[Volume, ...]:
        out: list[Volume] = []
        for v in items:
            try:
                vol = Volume.from_json(v)
            except UsageError as e:
                raise _Bad(str(e)) from None
            _want(all(x.name != vol.name for x in out), f"duplicate volumes of name {quote(vol.name)}")
            out.append(vol)
        return tuple(out)


def resolve_images(config: Config, store: Store, manifest: PodManifest, *, pull_policy: str, platform: str = "",
                   ui: FetchUI | None = None) -> list[Image]:
    """Each app's image: the stored image of its id (a prefix will do, as rkt's store takes
    one); with none stored, its image name is fetched under the pull policy, and what comes
    must be the image of that id."""
    from pyrkt.stage0.images import resolve_image

    images = []
    for app in manifest.apps:
        want = app.image.id
        try:
            image = store.resolve(want)
        except NotFound:
            if not app.image.name or pull_policy == "never":
                raise NotFound(f"app {app.name}: image {want} not found in the store (fetch it first, or give the "
                               "image's name in the pod manifest)") from None
            image = resolve_image(config, store, image_argument(app.image), pull_policy=pull_policy,
                                  platform=platform, ui=ui)
            if not image.id.startswith(want):
                raise ImageError(f"app {app.name}: image {quote(app.image.name)} is {image.id}, not the pod "
                                 f"manifest's {want}") from None
        images.append(image)
    return images


def image_argument(image: RuntimeImage) -> str:
    """How the command line names the image: ``name[:version][,label=value...]``."""
    labels = dict(image.labels)
    version = labels.pop("version", "")
    head = f"{image.name}:{version}" if version else image.name
    return ",".join([head, *(f"{k}={v}" for k, v in labels.items())])


def reify(pod: PodFile, images: list[Image]) -> PodManifest:
    """The manifest to run: full image ids, the stored images' names and labels, and an ``app``
    section for every app (the image's where the file gave none); its ports checked."""
    apps = []
    for app, image in zip(pod.manifest.apps, images, strict=True):
        spec = app.app
        if app.name in pod.image_apps:
            if image.app is None or not image.app.exec:
                raise ImageError(f"app {app.name}: no app section in the pod manifest or the image manifest "
                                 f"of {quote(image.display_name)}")
            spec = image.app
        apps.append(app.replace(image=RuntimeImage(image.id, image.name, image.labels), app=spec))
    manifest = pod.manifest.replace(apps=tuple(apps))
    check_ports(manifest)
    return manifest


def check_ports(manifest: PodManifest) -> None:
    """rkt's check of forwarded ports: each names an app's port (or gives the pod's own, a
    ``podPort``), and no host port (with its protocol and host IP) is forwarded twice."""
    seen: dict[tuple[int, str, str], str] = {}
    for fwd in manifest.ports:
        owners = [(a.name, p) for a in manifest.apps for p in a.app.ports if p.name == fwd.name]
        if not owners and not fwd.pod_port:
            raise UsageError(f"port name {quote(fwd.name)} could not be found in any apps")
        if len(owners) > 1 and not fwd.pod_port:
            raise UsageError(f"port {quote(fwd.name)} is in several apps ({', '.join(a for a, _ in owners)})")
        key = (fwd.host_port, fwd.protocol if fwd.pod_port else owners[0][1].protocol, fwd.host_ip or "0.0.0.0")
        if key in seen:
            raise UsageError(f"host port {fwd.host_port}/{key[1]} is forwarded twice (ports {seen[key]} and {fwd.name})")
        seen[key] = fwd.name

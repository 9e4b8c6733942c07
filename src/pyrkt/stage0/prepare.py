"""Prepare a pod: resolve the images, reify each app (image defaults + the user's per-app
flags, or a pod manifest's apps: ``stage0.podmanifest``), refuse bad input before anything is
written, then lay out the pod dir.

The result is a pod in ``prepare/``, exclusively locked by the caller, which moves it on to
``prepared/`` (`pyrkt prepare`) or ``run/`` (`pyrkt run`). A failure after the pod dir was made
removes it again: bad input leaves nothing behind.
"""

from __future__ import annotations

import os

from pyrkt.config import Config, check_writable
from pyrkt.errors import ImageError, InvalidState, PyrktError, UsageError, undecodable
from pyrkt.kernel import fs
from pyrkt.model import abi, jsonio
from pyrkt.model.devices import HostDevice, parse_device_flag
from pyrkt.model.idmap import MAX_ID
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.isolators import POD_LIMITS, RESOURCE_ISOLATORS, limits, pod_limits, with_overrides
from pyrkt.model.names import app_name_from_image, check_app_name
from pyrkt.model.pod import AC_VERSION, PodManifest, PodPort, RuntimeApp, RuntimeImage
from pyrkt.model.values import Value, field
from pyrkt.model.volumes import parse_mount, parse_volume
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir
from pyrkt.stage0 import volumes
from pyrkt.stage0.volumes import merge_mounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrkt.fetch.ui import FetchUI
    from pyrkt.model.idmap import IdRange
    from pyrkt.stage0.stage1image import Stage1Image


class AppRequest(Value, frozen=False):
    """One image on the command line and the per-app flags that followed it."""

    image: str
    name: str = ""
    exec: str = ""
    args: list[str] = field(default_factory=list)
    user: str = ""
    group: str = ""
    working_dir: str = ""
    environment: list[str] = field(default_factory=list)
    supplementary_gids: str = ""
    readonly_rootfs: bool = False
    signature: str = ""  # an ACI's detached signature file (--signature)
    annotations: list[tuple[str, str]] = field(default_factory=list)  # --annotation, the app's in the pod manifest
    user_annotations: list[tuple[str, str]] = field(default_factory=list)  # --user-annotation after the image
    user_labels: list[tuple[str, str]] = field(default_factory=list)  # --user-label after the image
    caps_retain: str = ""  # --caps-retain, --caps-remove, --seccomp: privilege isolators of the app
    caps_remove: str = ""
    seccomp: str = ""
    isolators: list[tuple[str, Any]] = field(default_factory=list)  # --memory, --cpu...: over the image's
    mounts: list[str] = field(default_factory=list)  # --mount after this image: volume=NAME,target=PATH


class PodRequest(Value, frozen=False):
    apps: list[AppRequest]
    set_env: list[str] = field(default_factory=list)
    set_env_file: list[str] = field(default_factory=list)
    inherit_env: bool = False
    pull_policy: str = "new"
    uuid_file_save: str = ""
    stage1_name: str = "default"
    stage1_image: Stage1Image | None = None  # with stage1_name "image": where its stage1 image comes from
    ports: list[str] = field(default_factory=list)
    platform: str = ""  # --platform: os/arch[/variant] to choose from an image index (a registry's or a local layout's)
    devices: list[str] = field(default_factory=list)  # --device=HOSTPATH[:ACCESS]
    sysctl: list[str] = field(default_factory=list)  # --sysctl KEY=VALUE, namespaced sysctls of the pod
    pod_manifest: str = ""  # --pod-manifest=FILE: the whole pod, instead of apps and their flags
    user_annotations: list[tuple[str, str]] = field(default_factory=list)  # before any image: the pod's
    user_labels: list[tuple[str, str]] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # --volume NAME,kind=...
    mounts: list[str] = field(default_factory=list)  # --mount before any image: for every app
    private_users: bool = False  # --private-users: the pod in its own user namespace (a random id range)
    no_overlay: bool = False  # --no-overlay: each app gets a copy of its image instead of an overlay
    mutable: bool = False  # `app sandbox`: a pod with no app, apps added later
    annotations: list[tuple[str, str]] = field(default_factory=list)  # the pod's (app sandbox --annotation)
    cgroup_parent: str = ""  # --cgroup-parent: the cgroupfs path the pod's cgroup goes under


def parse_env(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid {what} {item!r}: want KEY=VALUE")
        if undecodable(item):
            raise UsageError(f"invalid {what} {item!r}: not UTF-8 text")
        out.append((key, value))
    return out


def parse_pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    """``--annotation``, ``--user-annotation``, ``--user-label``: NAME=VALUE, a name given again
    takes the later value (rkt keeps them in a map). An annotation's name is an AC Identifier."""
    out = dict(parse_env(items, flag))
    if flag == "--annotation":
        from pyrkt.model.names import is_ac_identifier

        for key in out:
            if not is_ac_identifier(key):
                raise UsageError(f"invalid --annotation name {key!r}: want an AC Identifier (lower case letters, "
                                 "digits and -._~/)")
    return list(out.items())


def read_env_file(path: str) -> list[tuple[str, str]]:
    """rkt's --set-env-file: KEY=VALUE lines; '#' and ';' start comments."""
    try:
        text = fs.read_file(path)
    except OSError as e:
        raise UsageError(f"cannot read --set-env-file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"cannot read --set-env-file {path}: byte {e.start} is not UTF-8 text") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return parse_env([ln for ln in lines if ln and not ln.startswith(("#", ";"))], f"line in {path}")


def save_uuid(path: str, uuid: str) -> None:
    """``--uuid-file-save``: a new or regular file is replaced whole; a device node, FIFO or symbolic
    link (/dev/null, /dev/stdout) is written into, as rkt does, never replaced by a file."""
    if os.path.isdir(path):
        raise UsageError(f"--uuid-file-save={path} is a directory")
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
        with open(path, "w") as f:
            f.write(uuid + "\n")
    else:
        fs.atomic_write(path, uuid + "\n", sync=False)


def merge_env(*layers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Later layers win; order of first appearance is kept."""
    env: dict[str, str] = {}
    for layer in layers:
        for k, v in layer:
            env[k] = v
    return tuple(env.items())


def reify(req: PodRequest, images: list[Image]) -> list[RuntimeApp]:
    """The pod's apps: names checked, exec resolved, env merged in rkt's precedence."""
    inherited = list(os.environ.items()) if req.inherit_env else []
    file_env: list[tuple[str, str]] = []
    for path in req.set_env_file:
        file_env += read_env_file(path)
    pod_env = parse_env(req.set_env, "--set-env")
    pod_mounts = [parse_mount(m) for m in req.mounts]
    apps: list[RuntimeApp] = []
    seen: set[str] = set()
    for ar, image in zip(req.apps, images, strict=True):
        name = check_app_name(ar.name) if ar.name else app_name_from_image(image.name)
        if name in seen:
            raise UsageError(f"multiple apps with name {name}: give each app its own --name")  # rkt's words
        seen.add(name)
        base = image.app or AppSpec()
        command = ([ar.exec] if ar.exec else list(base.exec)) + ar.args
        if not command:
            raise ImageError(f"image {image.display_name!r} has no command: give one with --exec")
        gids = base.supplementary_gids
        if ar.supplementary_gids:
            try:
                gids = tuple(int(g) for g in ar.supplementary_gids.split(","))
            except ValueError:
                raise UsageError(f"invalid --supplementary-gids {ar.supplementary_gids!r}") from None
            if not all(0 <= g <= MAX_ID for g in gids):
                raise UsageError(f"invalid --supplementary-gids {ar.supplementary_gids!r}: gids are 0 to {MAX_ID}")
        for flag, value in (("--user", ar.user), ("--group", ar.group)):
            if value.isdigit() and int(value) > MAX_ID:
                raise UsageError(f"invalid {flag} {value!r}: ids are 0 to {MAX_ID}")
        env = merge_env(inherited, list(base.environment), file_env, pod_env, parse_env(ar.environment, "--environment"))
        isolators = with_overrides(base.isolators, ar.isolators)
        limits(isolators, f"app {name}: ")  # a bad value, the image's too, fails here
        privileges = app_privileges(name, isolators, ar)
        spec = base.replace(
            exec=tuple(command),
            user=ar.user or base.user or "0",
            # a user given without a group takes its primary group from the image's passwd
            group=ar.group or ("" if ar.user else base.group),
            working_directory=ar.working_dir or base.working_directory or "/",
            environment=env,
            supplementary_gids=gids,
            user_annotations=tuple(ar.user_annotations) or base.user_annotations,
            user_labels=tuple(ar.user_labels) or base.user_labels,
            isolators=privileges,
        )
        apps.append(RuntimeApp(name=name, image=RuntimeImage(image.id, image.name, image.labels), app=spec,
                               read_only_rootfs=ar.readonly_rootfs, annotations=tuple(ar.annotations),
                               mounts=merge_mounts([parse_mount(m) for m in ar.mounts], pod_mounts)))
    return apps


def app_privileges(name: str, image_isolators: tuple[tuple[str, object], ...], ar: AppRequest) -> tuple[
        tuple[str, object], ...]:
    """The app's isolators: the image's with its --caps-retain/--caps-remove/--seccomp applied,
    their privilege isolators checked (a syscall name too, by libseccomp, when one is given)."""
    from pyrkt.stage1 import isolators

    try:
        out = isolators.override(image_isolators, caps_retain=ar.caps_retain, caps_remove=ar.caps_remove,
                                 seccomp=ar.seccomp)
        isolators.check(out)
        if isolators.plain_syscalls(out):
            from pyrkt.kernel import seccomp

            isolators.check_syscalls(out, seccomp.syscall_known)
    except UsageError as e:
        raise UsageError(f"app {name}: {e}") from None
    return out


def unhonoured(apps: list[RuntimeApp], images: list[Image]) -> list[str]:
    """What the apps (their images' app sections, or a pod manifest's) ask for that pyrkt does
    not honour yet, one warning each: appc wants an executor to tell the user rather than drop
    it. App isolators other than the privilege and resource ones (``stage1.isolators.HONOURED``,
    ``RESOURCE_ISOLATORS``) are not applied."""
    from pyrkt.stage1.isolators import HONOURED as HONOURED_ISOLATORS

    out = []
    for app, image in zip(apps, images, strict=True):
        spec = app.app
        where = f"app {app.name} (image {image.display_name})"
        out += [f"{where}: isolator {name} is not honoured yet: ignored" for name, _ in spec.isolators
                if name not in HONOURED_ISOLATORS and name not in RESOURCE_ISOLATORS]
    return out


def unapplied_privileges(apps: list[RuntimeApp], flavor_name: str) -> list[str]:
    """The privilege isolators (the image's or the flags') the flavor does not apply, one line each."""
    from pyrkt.stage1 import isolators
    from pyrkt.stage1.plan import privileged

    return [f"app {app.name}: {line}" for app in apps for line in isolators.warnings(app.app.isolators, flavor=flavor_name)
            ] + [f"app {app.name}: --privileged is not applied by the {flavor_name} stage1" for app in apps
                 if flavor_name not in ("default", "fly") and privileged(app)]


def parse_ports(specs: list[str], apps: list[RuntimeApp]) -> tuple[PodPort, ...]:
    """rkt's ``--port=NAME:[HOSTIP:]HOSTPORT``; NAME is an image port (``80-tcp`` for an OCI
    image's exposed 80/tcp) that exactly one app must have."""
    out = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        host_ip, _, host_port = rest.rpartition(":")
        if not name or not host_port.isdigit() or not 0 < int(host_port) < 65536:
            raise UsageError(f"invalid --port={spec!r}: want NAME:[HOSTIP:]HOSTPORT")
        owners = [a.name for a in apps for p in a.app.ports if p.name == name]
        if not owners:
            known = sorted({p.name for a in apps for p in a.app.ports})
            raise UsageError(f"--port={spec}: no app has a port named {name!r} (ports: {', '.join(known) or 'none'})")
        if len(owners) > 1:
            raise UsageError(f"--port={spec}: port {name!r} is in several apps ({', '.join(owners)})")
        out.append(PodPort(name, int(host_port), host_ip))
    return tuple(out)


# What every app's /dev has that is no device node of its own: mounts and links, left alone.
DEV_ENTRIES_REFUSED = frozenset({"pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr"})


def host_devices(specs: list[str]) -> tuple[HostDevice, ...]:
    """The ``--device`` flags, each checked to name a character or block device node under
    /dev on this host; its numbers, mode and owner as the host has them now."""
    import stat

    out = []
    for text in specs:
        path, target, access = parse_device_flag(text)
        path = os.path.normpath(path)
        if not path.startswith("/dev/"):
            raise UsageError(f"--device={text}: want a device node under /dev")
        if target:  # made in the app's own /dev: nowhere else in its root
            target = os.path.normpath(target)
            if not target.startswith("/dev/"):
                raise UsageError(f"--device={text}: the container path must be under /dev")
            if target.split("/")[2] in DEV_ENTRIES_REFUSED:
                raise UsageError(f"--device={text}: every app's /dev has its own {target.split('/')[2]}")
            target = "" if target == path else target
        try:
            st = os.stat(path)
        except OSError as e:
            raise UsageError(f"--device={text}: {e.strerror}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise UsageError(f"--device={text}: not a character or block device")
        if path.split("/")[2] in DEV_ENTRIES_REFUSED:
            raise UsageError(f"--device={text}: every app's /dev has its own {path.split('/')[2]}")
        out.append(HostDevice(path, "c" if stat.S_ISCHR(st.st_mode) else "b", os.major(st.st_rdev),
                              os.minor(st.st_rdev), access, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                              target))
    return tuple(out)


def check_executables(apps: list[RuntimeApp], layer_dirs: list[list[str]]) -> None:
    from pyrkt.stage0.layers import find_executable

    for app, layers in zip(apps, layer_dirs, strict=True):
        argv0 = app.app.exec[0]
        path_env = dict(app.app.environment).get("PATH", abi.STANDARD_PATH)
        if find_executable(layers, argv0, path_env) is None:
            where = "" if "/" in argv0 else f" in PATH {path_env}"
            raise ImageError(f"app {app.name!r}: executable {argv0!r} not found{where} in image {app.image.name!r}")


USER_DB_MAX = 1 << 24  # bytes: a larger /etc/passwd or /etc/group is left for the app's start to read


def check_users(apps: list[RuntimeApp], layer_dirs: list[list[str]]) -> None:
    """A user or group an app names (its image's, or a --user/--group or CRI run_as_username)
    must be in its image's /etc/passwd or /etc/group, where the app's start looks it up
    (stage1.users): refused now, before the pod or app is made. Numbers and appc's file paths
    need no lookup; a file an app mounts over (at it or /etc) is only known when it starts."""
    from pyrkt.stage0.layers import regular_file
    from pyrkt.stage1 import users

    for app, layers in zip(apps, layer_dirs, strict=True):
        mounted = {os.path.normpath(m.path) for m in app.mounts}
        for what, db, name in (("user", "/etc/passwd", app.app.user), ("group", "/etc/group", app.app.group)):
            if not name or name.isdigit() or name.startswith("/") or {"/etc", db} & mounted:
                continue
            path = regular_file(layers, db)
            try:
                if path is not None and os.stat(path).st_size > USER_DB_MAX:
                    continue
            except OSError:
                continue
            rows = users.read_db(path) if path is not None else []
            if (users.user_entry(rows, name) if what == "user" else users.group_gid(rows, name)) is None:
                # FAILED_PRECONDITION to a CRI caller, not INVALID_ARGUMENT: the request is well
                # formed, the image the store holds under its name lacks the entry (the user may
                # be the image's own); another image, or another user, makes the same call work
                raise InvalidState(f"app {app.name!r}: {what} {name!r} not found in {db} of image {app.image.name!r}")


def check_runnable(image: Image) -> None:
    """As rkt's stage0: an app's ACI runs only when its labels say linux and a known arch (an
    ACI without them may still be fetched, and serve as a dependency: ``model.osarch``)."""
    if image.format != "appc":
        return
    from pyrkt.model.osarch import runnable_os_arch_problem

    problem = runnable_os_arch_problem(dict(image.labels))
    if problem is not None:
        raise ImageError(f"image {image.name!r}: {problem}")


def prepare(config: Config, req: PodRequest, *, ui: FetchUI | None = None) -> Pod:
    """Resolve, check and lay out a pod; returns it locked in ``prepare/``. ``ui``: how image
    fetches show progress and ask (default: headless)."""
    from pyrkt.stage0.images import resolve_image
    from pyrkt.stage1 import flavor
    from pyrkt.store import Store

    if not req.apps and not req.pod_manifest and not req.mutable:
        raise UsageError("pod must contain at least one application")
    pod_file = None
    if req.pod_manifest:  # a bad file fails before any work
        from pyrkt.stage0 import podmanifest

        pod_file = podmanifest.read(req.pod_manifest)
    devices = host_devices(req.devices)  # bad --device values fail before any work
    pod_volumes = tuple(parse_volume(v) for v in req.volumes)  # and bad --volume, --mount values
    for vol in pod_volumes:
        volumes.check_volume(vol)
    for text in [*req.mounts, *(m for a in req.apps for m in a.mounts)]:
        parse_mount(text)
    check_signatures(req.apps)
    sysctl_items = req.sysctl if pod_file is None else [f"{k}={v}" for k, v in pod_file.manifest.sysctls]
    sysctls = pod_sysctls(sysctl_items, flavor.canonical(req.stage1_name))
    if (req.stage1_name == "image") != (req.stage1_image is not None):
        raise UsageError("a stage1 image is run by the image flavor, and only it")
    if devices and req.stage1_image is not None:
        raise UsageError("--device cannot be used with a stage1 image: rkt's stage1 ABI has no way to pass it")
    ids = private_users(req, flavor.canonical(req.stage1_name))
    parent = cgroup_parent(req, flavor.canonical(req.stage1_name))
    if flavor.canonical(req.stage1_name) == "fly":
        if pod_file is None:
            fly_lines = fly_pod([(a.name or a.image, tuple(a.annotations)) for a in req.apps], bool(req.ports), devices)
        else:
            fly_lines = fly_pod([(ra.name, ra.annotations) for ra in pod_file.manifest.apps],
                                bool(pod_file.manifest.ports), devices)
        if ui is not None:  # the headless default drops notices anyway
            for line in fly_lines:
                ui.notice(f"warning: {line}")
    shared = [v for v in pod_volumes if v.propagation in ("rslave", "rshared")]
    if shared and flavor.canonical(req.stage1_name) != "default":
        raise UsageError(f"volume {shared[0].name}: propagation={shared[0].propagation} works with the default "
                         "flavor only")
    check_writable(config.data_dir)
    overlay = use_overlay(config, req, ui)
    store = Store.open(config.store_dir, config_dirs=tuple(config.dirs.names()))
    # Held until the pod dir lists its layer dirs: `image rm`/`image gc` (exclusive) then see
    # them in use, and no layer can vanish between resolving an image and recording its layers.
    with store.shared_lock():
        stage1 = None  # as rkt, the stage1 first: a bad stage1 flag fails before any app is fetched
        if req.stage1_image is not None:
            from pyrkt.stage0.stage1image import resolve_stage1

            stage1 = resolve_stage1(config, store, req.stage1_image, ui=ui)
        if pod_file is None:  # the apps and flags of the command line
            images = [resolve_image(config, store, a.image, pull_policy=req.pull_policy,
                                    signature=a.signature or None, platform=req.platform, ui=ui)
                      for a in req.apps]
            for image in images:
                check_runnable(image)
            apps = reify(req, images)
            if req.mutable:
                from pyrkt.stage0.sandbox import parse_sandbox_ports

                ports = parse_sandbox_ports(req.ports)
            else:
                ports = parse_ports(req.ports, apps)
            manifest = PodManifest(apps=tuple(apps), ports=ports, sysctls=tuple(sysctls.items()),
                                   volumes=pod_volumes, user_annotations=tuple(req.user_annotations),
                                   user_labels=tuple(req.user_labels), annotations=tuple(req.annotations))
        else:  # a pod manifest: its apps, images by id, and nothing else
            images = podmanifest.resolve_images(config, store, pod_file.manifest, pull_policy=req.pull_policy,
                                                platform=req.platform, ui=ui)
            for image in images:
                check_runnable(image)
            manifest = podmanifest.reify(pod_file, images)
        pod_limits(manifest.isolators)  # a bad pod-level resource isolator fails before anything is made
        # Both ways meet here: the pod's manifest, and the image of each of its apps.
        given = {v.name for v in manifest.volumes}
        manifest = volumes.satisfy(manifest, images)
        if ui is not None:  # the headless default drops notices anyway
            notes = pod_file.notes if pod_file is not None else ()
            for line in [*notes, *volumes.implicit_notes(manifest, given), *unhonoured(list(manifest.apps), images),
                         *unapplied_privileges(list(manifest.apps), flavor.canonical(req.stage1_name)),
                         *(f"pod isolator {name} is not honoured yet: ignored" for name, _ in manifest.isolators
                           if name not in POD_LIMITS)]:
                ui.notice(f"warning: {line}")
        layer_dirs = [store.lower_dirs(image) for image in images]
        check_executables(list(manifest.apps), layer_dirs)
        check_users(list(manifest.apps), layer_dirs)
        if ids is not None and overlay:
            overlay = layers_idmappable(layer_dirs, ui)
        pod = Pod.create(config.pods_dir)
        try:
            if req.uuid_file_save:
                save_uuid(req.uuid_file_save, pod.uuid)
            if stage1 is not None:
                from pyrkt.stage0.stage1image import lay_out_stage1

                lay_out_stage1(pod.path, store, stage1)
                store.touch(stage1.id)
            lay_out(pod.path, manifest, images, layer_dirs, overlay=overlay, ids=ids)
            fs.atomic_write(pod.file(abi.FLAVOR), flavor.canonical(req.stage1_name) + "\n", sync=False)
            if parent:  # before the pod can run: its runtime config and gc find it here
                fs.atomic_write(pod.file(abi.CGROUP_PARENT), parent + "\n", sync=False)
            if devices:
                fs.atomic_write(pod.file(abi.DEVICES), jsonio.dumps([d.flag() for d in devices]), sync=False)
            for image in images:
                store.touch(image.id)
        except BaseException:
            discard(pod)
            raise
    return pod


def fly_pod(apps: list[tuple[str, tuple[tuple[str, str], ...]]], ports: bool,
            devices: tuple[HostDevice, ...]) -> list[str]:
    """What the fly flavor (one app in the host's namespaces, with the host's whole /dev and no
    cgroup) cannot do with a pod of ``apps`` (name, annotations): refused before anything is
    fetched. Returns warning lines for what it does otherwise (a device's access)."""
    from pyrkt.model.stdio import Stdio

    if len(apps) != 1:
        raise UsageError(f"the fly flavor runs exactly one app, not {len(apps)}")
    if ports:
        raise UsageError("--port cannot be used with the fly flavor: its app shares the host's network, whose "
                         "ports are its own")
    for name, given in apps:
        if not Stdio.from_annotations(given, f"app {name}: ").is_default():
            raise UsageError(f"app {name}: the fly flavor does not support --stdin, --stdout or --stderr")
    lines = []
    for device in devices:
        if device.target:
            raise UsageError(f"--device={device.flag()}: the fly flavor binds the host's /dev as it is, so a "
                             "device cannot be given another path")
        if set(device.access) != set("rwm"):
            lines.append(f"--device={device.flag()}: the fly flavor has no device allow-list, its app may use "
                         f"every device of the host's /dev: access {device.access} ignored")
    return lines


def cgroup_parent(req: PodRequest, flavor_name: str) -> str:
    """``--cgroup-parent``, checked: the default flavor's pods only (fly puts none in a cgroup,
    and rkt's stage1 ABI has no way to pass one to a stage1 image)."""
    if not req.cgroup_parent:
        return ""
    from pyrkt.model.cgroup import check_parent

    parent = check_parent(req.cgroup_parent)
    if flavor_name != "default":
        raise UsageError(f"--cgroup-parent works with the default flavor only, not {flavor_name}: "
                         + ("the fly flavor puts its pod in no cgroup" if flavor_name == "fly"
                            else "rkt's stage1 ABI has no way to pass it to a stage1 image"))
    return parent


def pod_sysctls(items: list[str], flavor_name: str) -> dict[str, str]:
    """``--sysctl`` values, checked (key -> value; {} without a flag, with no import)."""
    if not items:
        return {}
    from pyrkt.model import sysctl

    if flavor_name == "fly":
        raise UsageError("--sysctl cannot be used with the fly flavor: its app shares the host's namespaces")
    if flavor_name == "image":
        raise UsageError("--sysctl cannot be used with a stage1 image: rkt's stage1 ABI has no way to pass it")
    return sysctl.parse_all(items)


SUBORDINATE_IDS = ("/etc/subuid", "/etc/subgid")  # ranges a random pod range must not overlap


def private_users(req: PodRequest, flavor_name: str) -> IdRange | None:
    """``--private-users``: the pod's id range, rkt's random one (None without the flag)."""
    if not req.private_users:
        return None
    if flavor_name == "fly":
        raise UsageError("--private-users cannot be used with the fly flavor: its app shares the host's namespaces")
    if flavor_name == "image":  # rkt passes --private-users=SHIFT:COUNT on; pyrkt's image flavor does not yet
        raise UsageError("--private-users cannot be used with a stage1 image yet")
    from pyrkt.model.idmap import IdRange, subordinate_ranges

    avoid: tuple[tuple[int, int], ...] = ()
    for path in SUBORDINATE_IDS:
        avoid += subordinate_ranges(fs.read_text(path) or "")
    return IdRange.random(avoid=avoid)


def check_signatures(apps: list[AppRequest]) -> None:
    """A ``--signature`` after an OCI or Docker image is refused before any image is fetched."""
    signed = [a for a in apps if a.signature]
    if not signed:
        return
    from pyrkt.fetch.sources import check_signature, parse_source

    for a in signed:
        check_signature(a.image, parse_source(a.image))


def use_overlay(config: Config, req: PodRequest, ui: FetchUI | None) -> bool:
    """Overlay roots unless ``--no-overlay``, or (with a notice, as rkt) overlayfs cannot work
    for the data dir."""
    if req.no_overlay:
        return False
    from pyrkt.kernel import mount

    why = mount.overlay_unsupported(str(config.data_dir))
    if why is None:
        return True
    if ui is not None:
        ui.notice(f"disabling overlay support: \"{why}\"")  # rkt's line
    return False


def layers_idmappable(layer_dirs: list[list[str]], ui: FetchUI | None) -> bool:
    """With --private-users, whether the kernel can idmap the layers (one filesystem: the
    store's); if not, the apps get a copy of their image owned by the pod's ids, with a
    notice."""
    from pyrkt.kernel import mount

    first = next((layers[0] for layers in layer_dirs if layers), None)
    why = mount.idmap_unsupported(first) if first else None
    if why is None:
        return True
    if ui is not None:
        ui.notice(f"warning: --private-users: the kernel cannot idmap the image layers ({why}): "
                  "each app gets a copy of its image owned by the pod's ids (--no-overlay)")
    return False


def lay_out(pod_dir: str, manifest: PodManifest, images: list[Image], layer_dirs: list[list[str]], *,
            overlay: bool = True, ids: IdRange | None = None) -> None:
    """The pod dir's files and each app's root: an overlay's upper and work dirs, or with
    ``overlay`` False a copy of its image (``--no-overlay``); with ``ids`` (--private-users)
    the range is recorded, and the upper dir (the root's own inode) or the copy is owned by it."""
    join = os.path.join
    volumes.lay_out(pod_dir, manifest, layer_dirs)
    for app, image, layers in zip(manifest.apps, images, layer_dirs, strict=True):
        lay_out_app(pod_dir, app.name, image, layers, overlay=overlay, ids=ids)
    if ids is not None:
        fs.atomic_write(join(pod_dir, abi.PRIVATE_USERS), str(ids), sync=False)
    status = join(pod_dir, abi.STATUS_DIR)
    os.makedirs(status)
    for app in manifest.apps:
        fs.touch(join(status, f"{app.name}-created"))
    os.mkdir(join(pod_dir, abi.LOGS))
    # renamed into place, not fsync'ed: a pod does not outlive a power loss anyway, and the
    # rename keeps a SIGKILL from ever leaving half a manifest
    fs.atomic_write(os.path.join(pod_dir, abi.POD_MANIFEST), jsonio.dumps(manifest.to_json()), mode=0o640, sync=False)
    fs.touch(os.path.join(pod_dir, abi.POD_CREATED))


def lay_out_app(pod_dir: str, name: str, image: Image, layers: list[str], *, overlay: bool,
                ids: IdRange | None) -> None:
    """One app's files and root in the pod dir (``lay_out``; `app add` for a mutable pod)."""
    join = os.path.join
    info = join(pod_dir, abi.APPSINFO, name)
    os.makedirs(info)
    # pyrkt's image JSON is a superset of an appc ImageManifest: with acKind and acVersion a
    # stage1 image (rkt's ABI) reads it as one
    doc = {"acKind": "ImageManifest", "acVersion": AC_VERSION, **image.to_json()}
    fs.atomic_write(join(info, "manifest"), jsonio.dumps(doc), sync=False)
    fs.atomic_write(join(pod_dir, abi.app_layers(name)), jsonio.dumps(layers), sync=False)
    rootfs = join(pod_dir, abi.app_rootfs(name))
    os.makedirs(rootfs)
    if overlay:
        for d in ("upper", "work"):
            os.makedirs(join(pod_dir, abi.OVERLAY, name, d))
        if ids is not None:
            os.chown(join(pod_dir, abi.OVERLAY, name, "upper"), ids.shift, ids.shift)
    else:
        from pathlib import Path

        from pyrkt.store.render import render_tree

        render_tree([Path(p) for p in layers], Path(rootfs), keep_special=True, ids=ids)


def discard(pod: Pod) -> None:
    """Remove a pod this command created and still holds (a failed prepare or start)."""
    from pyrkt.pods.gc import remove_tree
    from pyrkt.stage1 import flavor

    try:
        if pod.where in (Dir.PREPARE, Dir.PREPARED):
            pod.transition(Dir.GARBAGE)
        elif pod.where == Dir.RUN:
            pod.transition(Dir.EXITED_GARBAGE)
        flavor.of_pod(pod.path).gc(pod.path)
        remove_tree(pod.path)
    except (OSError, PyrktError):
        pass  # left for `pyrkt gc`, which can always finish the job
    finally:
        pod.unlock()

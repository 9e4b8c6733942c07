"""Prepare a pod: resolve the images, reify each app (image defaults + the user's per-app
flags), refuse bad input before anything is written, then lay out the pod dir.

The result is a pod in ``prepare/``, exclusively locked by the caller, which moves it on to
``prepared/`` (`pyrkt prepare`) or ``run/`` (`pyrkt run`). A failure after the pod dir was made
removes it again: bad input leaves nothing behind.
"""

from __future__ import annotations

import os

from pyrkt.config import Config, check_writable
from pyrkt.errors import ImageError, PyrktError, UsageError
from pyrkt.kernel import fs
from pyrkt.model import abi, jsonio
from pyrkt.model.devices import HostDevice, parse_device_flag
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.names import app_name_from_image, check_app_name
from pyrkt.model.pod import PodManifest, PodPort, RuntimeApp, RuntimeImage
from pyrkt.model.values import Value, field
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.fetch.ui import FetchUI
    from pyrkt.model.idmap import IdRange


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


class PodRequest(Value, frozen=False):
    apps: list[AppRequest]
    set_env: list[str] = field(default_factory=list)
    set_env_file: list[str] = field(default_factory=list)
    inherit_env: bool = False
    pull_policy: str = "new"
    uuid_file_save: str = ""
    stage1_name: str = "default"
    ports: list[str] = field(default_factory=list)
    platform: str = ""  # --platform: os/arch[/variant] to choose from a registry's index
    devices: list[str] = field(default_factory=list)  # --device=HOSTPATH[:ACCESS]
    sysctl: list[str] = field(default_factory=list)  # --sysctl KEY=VALUE, namespaced sysctls of the pod
    private_users: bool = False  # --private-users: the pod in its own user namespace (a random id range)
    no_overlay: bool = False  # --no-overlay: each app gets a copy of its image instead of an overlay


def parse_env(items: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid {what} {item!r}: want KEY=VALUE")
        out.append((key, value))
    return out


def read_env_file(path: str) -> list[tuple[str, str]]:
    """rkt's --set-env-file: KEY=VALUE lines; '#' and ';' start comments."""
    try:
        text = fs.read_file(path)
    except OSError as e:
        raise UsageError(f"cannot read --set-env-file {path}: {e.strerror}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return parse_env([ln for ln in lines if ln and not ln.startswith(("#", ";"))], f"line in {path}")


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
    apps: list[RuntimeApp] = []
    seen: set[str] = set()
    for ar, image in zip(req.apps, images, strict=True):
        name = check_app_name(ar.name) if ar.name else app_name_from_image(image.name)
        if name in seen:
            raise UsageError(f"multiple apps with name {name!r}: give each app its own --name")
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
        env = merge_env(inherited, list(base.environment), file_env, pod_env, parse_env(ar.environment, "--environment"))
        spec = base.replace(
            exec=tuple(command),
            user=ar.user or base.user or "0",
            # a user given without a group takes its primary group from the image's passwd
            group=ar.group or ("" if ar.user else base.group),
            working_directory=ar.working_dir or base.working_directory or "/",
            environment=env,
            supplementary_gids=gids,
        )
        apps.append(RuntimeApp(name=name, image=RuntimeImage(image.id, image.name, image.labels), app=spec,
                               read_only_rootfs=ar.readonly_rootfs))
    return apps


def unhonoured(apps: list[RuntimeApp], images: list[Image]) -> list[str]:
    """What the apps' images ask for that pyrkt does not honour yet, one warning each: appc
    wants an executor to tell the user rather than drop it. Image isolators (resource limits,
    capabilities, seccomp...) are not applied; an image's mount points (an appc ``mountPoints``
    entry, a Docker ``Volumes`` path) stay part of the app's own overlay, not a volume."""
    out = []
    for app, image in zip(apps, images, strict=True):
        spec = image.app
        if spec is None:
            continue
        where = f"app {app.name} (image {image.display_name})"
        out += [f"{where}: isolator {name} is not honoured yet: ignored" for name, _ in spec.isolators]
        out += [f"{where}: mount point {m.name} at {m.path} is not honoured yet: the path stays in the app's "
                f"own root, not a volume" for m in spec.mount_points]
    return out


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
        path, access = parse_device_flag(text)
        path = os.path.normpath(path)
        if not path.startswith("/dev/"):
            raise UsageError(f"--device={text}: want a device node under /dev")
        try:
            st = os.stat(path)
        except OSError as e:
            raise UsageError(f"--device={text}: {e.strerror}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise UsageError(f"--device={text}: not a character or block device")
        if path.split("/")[2] in DEV_ENTRIES_REFUSED:
            raise UsageError(f"--device={text}: every app's /dev has its own {path.split('/')[2]}")
        out.append(HostDevice(path, "c" if stat.S_ISCHR(st.st_mode) else "b", os.major(st.st_rdev),
                              os.minor(st.st_rdev), access, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
    return tuple(out)


def check_executables(apps: list[RuntimeApp], layer_dirs: list[list[str]]) -> None:
    from pyrkt.stage0.layers import find_executable

    for app, layers in zip(apps, layer_dirs, strict=True):
        argv0 = app.app.exec[0]
        path_env = dict(app.app.environment).get("PATH", abi.STANDARD_PATH)
        if find_executable(layers, argv0, path_env) is None:
            where = "" if "/" in argv0 else f" in PATH {path_env}"
            raise ImageError(f"app {app.name!r}: executable {argv0!r} not found{where} in image {app.image.name!r}")


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

    if not req.apps:
        raise UsageError("pod must contain at least one application")
    devices = host_devices(req.devices)  # bad --device values fail before any work
    sysctls = pod_sysctls(req.sysctl, flavor.canonical(req.stage1_name))
    ids = private_users(req, flavor.canonical(req.stage1_name))
    check_writable(config.data_dir)
    overlay = use_overlay(config, req, ui)
    store = Store.open(config.store_dir, config_dirs=tuple(config.dirs.names()))
    # Held until the pod dir lists its layer dirs: `image rm`/`image gc` (exclusive) then see
    # them in use, and no layer can vanish between resolving an image and recording its layers.
    with store.shared_lock():
        images = [resolve_image(config, store, a.image, pull_policy=req.pull_policy, signature=a.signature or None,
                                platform=req.platform, ui=ui)
                  for a in req.apps]
        for image in images:
            check_runnable(image)
        apps = reify(req, images)
        if ui is not None:  # the headless default drops notices anyway
            for line in unhonoured(apps, images):
                ui.notice(f"warning: {line}")
        layer_dirs = [store.lower_dirs(image) for image in images]
        check_executables(apps, layer_dirs)
        if ids is not None and overlay:
            overlay = layers_idmappable(layer_dirs, ui)
        manifest = PodManifest(apps=tuple(apps), ports=parse_ports(req.ports, apps), sysctls=tuple(sysctls.items()))
        pod = Pod.create(config.pods_dir)
        try:
            if req.uuid_file_save:
                fs.atomic_write(req.uuid_file_save, pod.uuid + "\n", sync=False)
            lay_out(pod.path, manifest, images, layer_dirs, overlay=overlay, ids=ids)
            fs.atomic_write(pod.file(abi.FLAVOR), flavor.canonical(req.stage1_name) + "\n", sync=False)
            if devices:
                fs.atomic_write(pod.file(abi.DEVICES), jsonio.dumps([f"{d.path}:{d.access}" for d in devices]), sync=False)
            for image in images:
                store.touch(image.id)
        except BaseException:
            discard(pod)
            raise
    return pod


def pod_sysctls(items: list[str], flavor_name: str) -> dict[str, str]:
    """``--sysctl`` values, checked (key -> value; {} without a flag, with no import)."""
    if not items:
        return {}
    from pyrkt.model import sysctl

    if flavor_name == "fly":
        raise UsageError("--sysctl cannot be used with the fly flavor: its app shares the host's namespaces")
    return sysctl.parse_all(items)


SUBORDINATE_IDS = ("/etc/subuid", "/etc/subgid")  # ranges a random pod range must not overlap


def private_users(req: PodRequest, flavor_name: str) -> IdRange | None:
    """``--private-users``: the pod's id range, rkt's random one (None without the flag)."""
    if not req.private_users:
        return None
    if flavor_name == "fly":
        raise UsageError("--private-users cannot be used with the fly flavor: its app shares the host's namespaces")
    from pyrkt.model.idmap import IdRange, subordinate_ranges

    avoid: tuple[tuple[int, int], ...] = ()
    for path in SUBORDINATE_IDS:
        avoid += subordinate_ranges(fs.read_text(path) or "")
    return IdRange.random(avoid=avoid)


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
    for app, image, layers in zip(manifest.apps, images, layer_dirs, strict=True):
        info = join(pod_dir, abi.APPSINFO, app.name)
        os.makedirs(info)
        fs.atomic_write(join(info, "manifest"), jsonio.dumps(image.to_json()), sync=False)
        fs.atomic_write(join(pod_dir, abi.app_layers(app.name)), jsonio.dumps(layers), sync=False)
        rootfs = join(pod_dir, abi.app_rootfs(app.name))
        os.makedirs(rootfs)
        if overlay:
            for d in ("upper", "work"):
                os.makedirs(join(pod_dir, abi.OVERLAY, app.name, d))
            if ids is not None:
                os.chown(join(pod_dir, abi.OVERLAY, app.name, "upper"), ids.shift, ids.shift)
        else:
            from pathlib import Path

            from pyrkt.store.render import render_tree

            render_tree([Path(p) for p in layers], Path(rootfs), keep_special=True, ids=ids)
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

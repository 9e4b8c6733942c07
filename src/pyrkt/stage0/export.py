"""`pyrkt export`: one app of an exited pod written out as an image (rkt's ``export``).

The image is the app's own (``appsinfo/<app>/manifest``: name, labels, annotations and app
section as stored, no dependencies: the tree is complete) over its layers (``appsinfo/<app>/
layers``) with the app's overlay upper dir merged on top, whiteouts and opaque dirs honoured;
a pod that ran without an overlay has its app's tree copied into its root dir, which is then
the whole tree. Written as an ACI or, a pyrkt addition, an OCI archive of one layer.

The pod dir is held with a shared flock while it is read: the lock of a running pod is taken
exclusively by its pod init, so getting it proves the pod has exited, and `gc`/`rm` (which
delete under the exclusive lock) leave the pod alone until the export is done. Files are read
through the lock's fd, so a `gc` that marks the pod meanwhile (a rename) changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyrkt.config import Config
from pyrkt.errors import InvalidState, NotFound, PyrktError, UsageError, quote
from pyrkt.kernel import fs
from pyrkt.kernel.lock import FileLock
from pyrkt.model import abi
from pyrkt.model.image import Image
from pyrkt.model.pod import PodManifest
from pyrkt.model.values import Value
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, state_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

EXPORTABLE = (Dir.RUN, Dir.EXITED_GARBAGE)  # exited and exited garbage, when not locked
# Where stage1 mounts over every app's root (stage1/plan.py: app_mounts, etc_mounts, fly_app_plan;
# tests/unit/stage0/test_export.py checks). While the app ran these paths were the mounts', so
# an empty file or dir the upper holds there, where the image has none, is the mount point
# stage1 made, not the app's: exported, an empty /etc/hosts would hide the one a run generates.
STAGE1_MOUNT_POINTS = frozenset({"proc", "dev", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf"})


class AppTree(Value):
    """Where an app's filesystem is: its image's layer dirs (bottom first) and the overlay
    upper dir on top, or (a pod without overlay) no layers and the copy in its root dir as the
    upper: the whole tree, whose empty mount points are then left out wherever they are."""

    layers: tuple[str, ...]
    upper: str = ""
    mount_points: frozenset[str] = frozenset()  # relative paths mounted over while the app ran


class Exported(Value):
    uuid: str
    app: str
    output: str
    image: str  # the name of the app's image


def export_pod(config: Config, uuid_prefix: str, output: str, *, app: str = "", fmt: str = "aci",
               overwrite: bool = False, note: Callable[[str], None] | None = None) -> Exported:
    """Write app ``app`` (may be left out when the pod has one) of the exited pod ``uuid_prefix``
    names to ``output``; ``note`` hears of special entries the app left (one line each)."""
    from pyrkt.stage0.images import OutputErrors, open_store
    from pyrkt.store.export import export_output, write_aci_tar, write_atomically, write_tree_oci_archive

    out = export_output(output, fmt, overwrite=overwrite)
    pod = Pod.find(config.pods_dir, uuid_prefix)
    lock = hold_exited(pod)
    try:
        pod_dir = f"/proc/self/fd/{lock.fd}"
        try:
            manifest = _pod_manifest(pod_dir, pod.uuid)
            name = choose_app([a.name for a in manifest.apps], app, pod.uuid)
            image = _read_image(pod_dir, name, pod.uuid)
            tree = app_tree(pod_dir, name, pod.uuid, real_dir=pod.path, mount_points=mount_points(manifest, name))
        except OSError as e:
            where = str(e.filename or "").replace(pod_dir, pod.path)
            raise PyrktError(f"pod {pod.uuid}: cannot read {where or 'its dir'}: {e.strerror or e}") from None
        layers = [Path(p) for p in tree.layers]
        upper = Path(tree.upper) if tree.upper else None
        store = open_store(config)
        try:
            with store.shared_lock(), OutputErrors(out):
                try:
                    if fmt == "aci":
                        write_atomically(out, lambda f: write_aci_tar(f, image, layers, upper=upper,
                                                                     mount_points=tree.mount_points, note=note))
                    else:
                        write_tree_oci_archive(out, layers, config=_oci_config(image, note), upper=upper,
                                               mount_points=tree.mount_points, note=note,
                                               version=image.label("version"))
                except OSError as e:  # name a file of the pod by its path, not by our fd's
                    if isinstance(e.filename, str):
                        e.filename = e.filename.replace(pod_dir, pod.path)
                    raise
        finally:
            store.close()
    finally:
        lock.close()
    return Exported(pod.uuid, name, str(out), image.display_name)


def hold_exited(pod: Pod) -> FileLock:
    """The pod dir's flock, held shared: only an exited pod (or exited garbage) gives it."""
    for _ in range(5):
        try:
            lock = FileLock.open(pod.path)
        except FileNotFoundError:
            if not pod.relocate():
                raise NotFound(f"pod {pod.uuid} no longer exists") from None
            continue
        held = lock.try_shared()
        try:
            same = os.path.samestat(os.fstat(lock.fd), os.stat(pod.path))
        except FileNotFoundError:
            same = False
        if not same:  # renamed between our open and our lock: look again
            lock.close()
            if not pod.relocate():
                raise NotFound(f"pod {pod.uuid} no longer exists")
            continue
        if held and pod.where in EXPORTABLE:
            return lock
        lock.close()
        state = state_of(pod.where, not held).value
        raise InvalidState(f"pod {pod.uuid} is {state}: only exited pods can be exported")
    raise NotFound(f"pod {pod.uuid} keeps moving; try again")


def choose_app(names: list[str], app: str, uuid: str) -> str:
    """rkt's rule: ``--app`` names one of the pod's apps; without it the pod must have one."""
    if app:
        if app not in names:
            raise NotFound(f"app {quote(app)} is not present in pod {uuid} (its apps: {', '.join(names) or 'none'})")
        return app
    if not names:
        raise InvalidState(f"pod {uuid} contains zero apps")
    if len(names) > 1:
        raise UsageError(f"pod {uuid} contains multiple apps ({', '.join(names)}): specify one with --app=NAME")
    return names[0]


def mount_points(manifest: PodManifest, app: str) -> frozenset[str]:
    """The paths (relative) something was mounted on in the app's root: stage1's own and the
    app's volumes (its ``mounts`` and ``mountPoints``)."""
    ra = manifest.app(app)
    paths = [m.path for m in ra.mounts] + [m.path for m in ra.app.mount_points] if ra is not None else []
    return STAGE1_MOUNT_POINTS | {p.strip("/") for p in paths if p.strip("/")}


def app_tree(pod_dir: str, app: str, uuid: str, *, real_dir: str = "",
             mount_points: frozenset[str] = frozenset()) -> AppTree:
    """The app's layers and upper dir; for a pod run without overlay (its root dir holds a
    copy of the tree), that copy alone. A copy with something still mounted below it is
    refused, as rkt: the mounts are not the app's. ``real_dir``: the pod dir's path for the
    mount table (``pod_dir`` may be a ``/proc/self/fd`` path)."""
    from pyrkt.kernel.mount import mounts_under

    rootfs = os.path.join(pod_dir, abi.app_rootfs(app))
    upper = os.path.join(pod_dir, abi.OVERLAY, app, "upper")
    if _has_entries(rootfs):
        mounted = mounts_under(os.path.join(real_dir or pod_dir, abi.app_rootfs(app)))
        if mounted:
            raise InvalidState(f"pod {uuid} has mounts left at {mounted[-1]}: only a pod with none can be "
                               f"exported (`pyrkt gc` removes them)")
        return AppTree((), rootfs, mount_points)
    if not os.path.isdir(upper):
        raise PyrktError(f"app {app} of pod {uuid} has no overlay upper dir and no copy of its tree "
                         f"({abi.OVERLAY}/{app}/upper, {abi.app_rootfs(app)}): nothing to export")
    try:
        layers = fs.read_json(os.path.join(pod_dir, abi.app_layers(app)))
    except FileNotFoundError:
        raise PyrktError(f"app {app} of pod {uuid} has no layer list ({abi.app_layers(app)})") from None
    if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
        raise PyrktError(f"app {app} of pod {uuid}: {abi.app_layers(app)} is not a list of dirs")
    for p in layers:
        if not os.path.isdir(p):
            raise PyrktError(f"layer dir {p} of app {app} of pod {uuid} is missing (see `pyrkt image verify`)")
    return AppTree(tuple(layers), upper, mount_points)


def _has_entries(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return any(True for _ in it)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _pod_manifest(pod_dir: str, uuid: str) -> PodManifest:
    try:
        return PodManifest.from_json(fs.read_json(os.path.join(pod_dir, abi.POD_MANIFEST)))
    except FileNotFoundError:
        raise PyrktError(f"pod {uuid} has no pod manifest") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PyrktError(f"pod {uuid}: unreadable pod manifest: {e}") from None


def _read_image(pod_dir: str, app: str, uuid: str) -> Image:
    try:
        return Image.from_json(fs.read_json(os.path.join(pod_dir, abi.app_manifest(app))))
    except FileNotFoundError:
        raise PyrktError(f"app {app} of pod {uuid} has no image manifest ({abi.app_manifest(app)})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise PyrktError(f"app {app} of pod {uuid}: unreadable image manifest {abi.app_manifest(app)}: {e}") from None


def _oci_config(image: Image, note: Callable[[str], None] | None) -> Callable[[str], dict[str, Any]]:
    from pyrkt.fetch.convert import oci_config

    def make(diff_id: str) -> dict[str, Any]:
        config, lost = oci_config(image, [diff_id])
        if lost and note is not None:
            note(f"an OCI image config has no place for the image's {', '.join(lost)}: left out")
        return config

    return make

"""A pod's volumes checked and completed before anything is written (``satisfy``), and its
empty volumes made in the pod dir (``lay_out``).

As rkt (rkt-behaviour §3.7): every mount names a volume of the pod (or brings its own); an
image's mount point is satisfied by the app's mount at its path, else by the pod's volume of
its name, else by an implicit empty volume ``<app>-<mount point>`` that goes with the pod. An
implicit volume of a Docker or OCI image is filled with what the image has at that path
(Docker's semantics); the manifest keeps their names in the pod annotation ``PREPOPULATE``.
"""

from __future__ import annotations

import os
import posixpath

from pyrkt.errors import UsageError, quote
from pyrkt.model.volumes import EMPTY_VOLUMES_DIR, AppMount, Volume, check_target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.model.image import Image
    from pyrkt.model.pod import PodManifest

PREPOPULATE = "pyrkt.io/prepopulated-volumes"  # comma list of implicit volumes filled from the image
PREPOPULATED_FORMATS = ("oci", "docker")  # rkt: images converted from Docker


def satisfy(manifest: PodManifest, images: list[Image]) -> PodManifest:
    """``manifest`` with every app's mount points satisfied, or a ``UsageError`` (exit 254) for
    a volume named twice, a host volume whose source does not exist, a mount of a volume the
    pod does not have. ``images``: the apps' images, in the apps' order. Pure but for the
    check that host sources exist."""
    volumes = list(manifest.volumes)
    names: set[str] = set()
    for vol in volumes:
        if vol.name in names:
            raise UsageError(f"volume {vol.name!r} is defined more than once")
        names.add(vol.name)
        check_volume(vol)
    prepopulate = [n for k, v in manifest.annotations if k == PREPOPULATE for n in v.split(",") if n]
    apps = []
    for ra, image in zip(manifest.apps, images, strict=True):
        mounts = list(ra.mounts)
        for m in mounts:
            if not m.path.startswith("/"):
                raise UsageError(f"app {ra.name}: mount target {m.path!r} must be an absolute path")
            _check_target(m.path, f"app {ra.name}: ")
            if m.app_volume is not None:
                check_volume(m.app_volume)
            elif m.volume not in names:
                raise UsageError(f"app {ra.name}: no volume named {m.volume!r} for its mount at {m.path}")
        taken = {posixpath.normpath(m.path) for m in mounts}
        for mp in ra.app.mount_points:
            if posixpath.normpath(mp.path) in taken:
                continue
            _check_target(mp.path, f"app {ra.name}: its image's mount point {mp.name}: ")
            taken.add(posixpath.normpath(mp.path))
            name = mp.name
            if name not in names:  # rkt's implicit empty volume, removed with the pod
                name = f"{ra.name}-{mp.name}"
                if name not in names:
                    names.add(name)
                    ro = True if mp.read_only else None
                    if image.format in PREPOPULATED_FORMATS:  # mode and owner: the image's directory's
                        volumes.append(Volume(name, "empty", read_only=ro))
                        prepopulate.append(name)
                    else:
                        volumes.append(Volume(name, "empty", read_only=ro, mode="0755", uid=0, gid=0))
            mounts.append(AppMount(name, mp.path))
        apps.append(ra.replace(mounts=tuple(mounts)))
    annotations = tuple((k, v) for k, v in manifest.annotations if k != PREPOPULATE)
    if prepopulate:
        annotations += ((PREPOPULATE, ",".join(dict.fromkeys(prepopulate))),)
    return manifest.replace(apps=tuple(apps), volumes=tuple(volumes), annotations=annotations)


def _check_target(target: str, where: str) -> None:
    try:
        check_target(target)
    except UsageError as e:
        raise UsageError(where + str(e)) from None


def implicit_notes(manifest: PodManifest, given: set[str]) -> list[str]:
    """rkt's warning for each mount point that got an implicit empty volume (``given``: the
    volumes the user named, before ``satisfy``)."""
    made = {v.name for v in manifest.volumes} - given
    return [f"no volume specified for mount point {quote(m.volume.removeprefix(ra.name + '-'))}, implicitly "
            'creating an "empty" volume. This volume will be removed when the pod is garbage-collected. '
            f"(app {ra.name}, at {m.path})"
            for ra in manifest.apps for m in ra.mounts if m.volume in made]


def check_volume(vol: Volume) -> None:
    vol.check()
    if vol.kind == "host" and not os.path.exists(vol.source):
        raise UsageError(f"volume {vol.name}: source {vol.source} does not exist")
    if vol.propagation in ("rslave", "rshared"):
        check_propagation(vol)


def check_propagation(vol: Volume) -> None:
    """As containerd's CRI plugin: a host volume's mounts can only reach the app (rslave) from
    a source on a shared or slave mount, and the app's the host (rshared) from a shared one."""
    from pyrkt.kernel.mount import propagation

    point, kind = propagation(vol.source)
    want = ("shared",) if vol.propagation == "rshared" else ("shared", "slave")
    if kind not in want:
        raise UsageError(f"volume {vol.name}: propagation={vol.propagation} needs a source on a "
                         f"{' or '.join(want)} mount: {vol.source} is on {point}, which is {kind} "
                         f"(`mount --make-rshared {point}` makes it shared)")


def merge_mounts(app_mounts: list[AppMount], pod_mounts: list[AppMount]) -> tuple[AppMount, ...]:
    """An app's mounts: its own, then the pod-level ones (``--mount`` before any image) on
    paths it does not mount itself (rkt's MergeMounts: the first on a path wins)."""
    out: dict[str, AppMount] = {}
    for m in [*app_mounts, *pod_mounts]:
        out.setdefault(posixpath.normpath(m.path), m)
    return tuple(out.values())


def lay_out(pod_dir: str, manifest: PodManifest, layer_dirs: list[list[str]]) -> None:
    """Make the pod's empty volumes in ``$P/sharedVolumes`` (mode, owner as they say); fill
    the ``PREPOPULATE`` ones from the image of the app that mounts them (``layer_dirs``: each
    app's layers, bottom first, in the apps' order)."""
    empty = [v for v in manifest.volumes if v.kind == "empty"]
    empty += [m.app_volume for ra in manifest.apps for m in ra.mounts
              if m.app_volume is not None and m.app_volume.kind == "empty"]
    if not empty:
        return
    empty = list({v.name: v for v in reversed(empty)}.values())  # one dir a name, as rkt: the first says how
    shared = os.path.join(pod_dir, EMPTY_VOLUMES_DIR)
    os.makedirs(shared, 0o755, exist_ok=True)
    prepopulate = {n for k, v in manifest.annotations if k == PREPOPULATE for n in v.split(",")}
    for vol in empty:
        path = os.path.join(shared, vol.name)
        os.mkdir(path, 0o700)
        if vol.name in prepopulate and populate(path, *_mounted_by(manifest, layer_dirs, vol.name)):
            continue
        owner = (vol.uid or 0, vol.gid or 0)
        st = os.stat(path)
        if (st.st_uid, st.st_gid) != owner:
            os.chown(path, *owner)
        os.chmod(path, vol.file_mode)


def _mounted_by(manifest: PodManifest, layer_dirs: list[list[str]], volume: str) -> tuple[list[str], str]:
    for ra, layers in zip(manifest.apps, layer_dirs, strict=True):
        for m in ra.mounts:
            if m.volume == volume:
                return layers, m.path
    return [], ""


def populate(dest: str, layers: list[str], path: str) -> bool:
    """Copy what the image (``layers``, bottom first) has at ``path`` into ``dest``, an empty
    directory that takes the mode and owner of the image's; False when the image has no
    directory there."""
    if not path:
        return False
    from pathlib import Path

    from pyrkt.stage0.layers import dir_layers, resolve_path
    from pyrkt.store.render import render_tree

    top_first = list(reversed(layers))
    found = resolve_path(top_first, path)
    if found is None:
        return False
    sources = dir_layers(top_first, found[0])
    if not sources or not found[0]:
        return False
    render_tree([Path(p) for p in reversed(sources)], Path(dest))
    return True

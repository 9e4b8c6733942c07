"""Stage1 images: the stage1 ACI a pod runs with instead of a built-in flavor (rkt's
``--stage1-{url,path,name,hash,from-dir}`` flags, or a ``stage1.d`` naming an image), fetched
into the store like any image and laid out in the pod dir as rkt's stage0 does: its manifest at
``stage1/manifest``, its rootfs rendered at ``stage1/rootfs``, its id in ``stage1ImageID``.

Signatures as rkt: a stage1 fetched from a URL, a file or by name is verified like any image
(``--insecure-options=image`` skips it) unless the file is in pyrkt's own stage1 images dir
(``DEFAULT_STAGE1_IMAGES_DIR``); one already in the store is not checked again.
"""

from __future__ import annotations

import os

from pyrkt.errors import ImageError, NotFound, UsageError
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrkt.config import Config
    from pyrkt.fetch.ui import FetchUI
    from pyrkt.model.image import Image
    from pyrkt.store import Store

KINDS = ("name", "url", "path", "hash", "from-dir")  # the flags, --stage1-<kind>
URL_SCHEMES = ("file", "http", "https", "docker")
DEFAULT_STAGE1_IMAGES_DIR = "/usr/lib/pyrkt/stage1-images"  # rkt's is /usr/lib/rkt/stage1-images
ENTRYPOINT_PREFIX = "coreos.com/rkt/stage1/"
ENTRYPOINTS = ("run", "enter", "stop", "gc")  # the ones pyrkt calls
RUN_ANNOTATION = ENTRYPOINT_PREFIX + "run"
RESERVED = ("opt/stage2", "rkt/status", "rkt/env")  # paths stage0 and stage1 fill in at run time


class Stage1Image(Value):
    """Where a pod's stage1 image comes from: ``kind`` is a flag's (``name``, ``url``, ``path``,
    ``hash``, ``from-dir``) with its value in ``location``, or ``config`` (``stage1.d``:
    ``location`` is its name:version, looked up in the store only, and ``fallback`` where to
    fetch it from when the store does not have it)."""

    kind: str
    location: str
    fallback: str = ""

    @property
    def what(self) -> str:
        return "stage1.d" if self.kind == "config" else f"--stage1-{self.kind}"


def resolve_stage1(config: Config, store: Store, ref: Stage1Image, *, ui: FetchUI | None = None) -> Image:
    """The stored stage1 image ``ref`` names, fetched first when it is not stored; checked to
    be a stage1 (an ACI with a ``run`` entrypoint) for this host. The caller holds the
    store's shared lock."""
    if ref.kind == "config":
        try:
            image = store.resolve(ref.location) if ref.location else None
        except NotFound:
            image = None
        if image is None:
            if not ref.fallback:
                raise NotFound(f"stage1.d names the stage1 image {ref.location}, which is not in the store, and "
                               "gives no location to fetch it from")
            kind = "path" if os.path.isabs(ref.fallback) else "url"
            image = _fetch(config, store, Stage1Image(kind, ref.fallback), ui)
    else:
        image = _fetch(config, store, ref, ui)
    check_stage1(image)
    return image


def _fetch(config: Config, store: Store, ref: Stage1Image, ui: FetchUI | None) -> Image:
    from pyrkt.stage0.images import resolve_image

    location = ref.location
    if not location:
        raise UsageError(f"{ref.what} needs a value")
    if ref.kind == "hash":
        from pyrkt.store.lookup import parse_lookup

        if parse_lookup(location).id_prefix is None:
            raise UsageError(f"--stage1-hash={location}: not an image ID (sha512-… or sha256:…)")
        return store.resolve(location)
    if ref.kind == "url":
        scheme, sep, _ = location.partition("://")
        if not sep or scheme.lower() not in URL_SCHEMES:
            raise UsageError(f"--stage1-url={location}: not a URL of {', '.join(s + '://' for s in URL_SCHEMES)}")
    if ref.kind in ("path", "from-dir"):
        if ref.kind == "from-dir":
            location = os.path.join(stage1_images_dir(config), location)
        location = os.path.abspath(location)
        if not os.path.isfile(location):
            raise NotFound(f"{ref.what}: no stage1 image file {location}")
    if _trusted(location):
        config = config.replace(insecure=config.insecure | {"image"})
    return resolve_image(config, store, location, pull_policy="new", ui=ui)


def stage1_images_dir(config: Config) -> str:
    """``paths.d``'s ``stage1-images``, else pyrkt's own dir: where ``--stage1-from-dir`` looks."""
    from pyrkt.config import read_paths

    return read_paths(config.dirs).stage1_images or DEFAULT_STAGE1_IMAGES_DIR


def _trusted(location: str) -> bool:
    """As rkt: only the built-in stage1 images dir is trusted without a signature."""
    if "://" in location and not location.startswith("file://"):
        return False
    path = os.path.abspath(location.removeprefix("file://"))
    return path.startswith(DEFAULT_STAGE1_IMAGES_DIR.rstrip("/") + "/")


def check_stage1(image: Image) -> None:
    """An appc image whose manifest names a ``run`` entrypoint, for this host's os and arch."""
    if image.format != "appc" or not dict(image.annotations).get(RUN_ANNOTATION):
        raise ImageError(f"image {image.display_name!r} is not a stage1 image: its manifest has no "
                         f"{RUN_ANNOTATION} annotation")
    from pyrkt.stage0.prepare import check_runnable

    check_runnable(image)


def lay_out_stage1(pod_dir: str, store: Store, image: Image) -> None:
    """``stage1/rootfs`` rendered from the image (a copy, as rkt's ``--no-overlay``: a stage1
    is small, and the pod then needs nothing of the store), ``stage1/manifest`` and
    ``stage1ImageID``. Before the pod's own dirs are made under ``stage1/rootfs``."""
    from pathlib import Path

    from pyrkt.fetch.aci import image_rootfs
    from pyrkt.kernel import fs
    from pyrkt.model import abi
    from pyrkt.store.render import render_tree

    rootfs = os.path.join(pod_dir, abi.STAGE1_ROOTFS)
    os.makedirs(rootfs)
    with image_rootfs(store, image) as layer_dirs:
        render_tree(layer_dirs, Path(rootfs))
    for name, value in image.annotations:
        if name.startswith(ENTRYPOINT_PREFIX) and name[len(ENTRYPOINT_PREFIX):] in ENTRYPOINTS:
            path = os.path.join(rootfs, value.lstrip("/"))
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise ImageError(f"stage1 image {image.display_name!r}: its {name[len(ENTRYPOINT_PREFIX):]} entrypoint "
                                 f"{value} is not an executable file in its rootfs")
    for rel in RESERVED:
        if os.path.lexists(os.path.join(rootfs, rel)):
            raise ImageError(f"stage1 image {image.display_name!r} has {rel} in its rootfs: that path is "
                             "reserved for what the pod fills in at run time")
    fs.atomic_write(os.path.join(pod_dir, abi.STAGE1_MANIFEST), store.manifest(image.id), sync=False)
    fs.atomic_write(os.path.join(pod_dir, abi.STAGE1_IMAGE_ID), image.id, sync=False)

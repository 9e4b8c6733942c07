"""Image use cases: resolve an image argument for run/prepare/fetch, list, remove, cat-manifest,
gc (keeping what pods use), export, extract/render and verify.

Pull policies (rkt's, decided in ``fetch.policy``): ``never`` looks only in the store; ``new``
(run/prepare) uses the store and fetches what is missing; ``update`` (fetch) always asks the
source (for ``docker://``: the registry's manifest; layers the store holds are not downloaded again). Local sources (``oci:``,
``oci-archive:``, ``docker-archive:``) are always imported, whatever the policy, as rkt did for
files: importing an image the store holds already is cheap (no blob is read twice).
Any other argument is an id prefix or a store name; an appc name (``example.com/app:1.0,os=linux``:
a host first, unlike ``busybox``) that is not stored, or that ``update`` asks for again, goes
to appc discovery (``fetch.discovery``), which applies the policy by name and labels.
"""

from __future__ import annotations

import os

from pyrkt.config import Config
from pyrkt.errors import NotFound, PyrktError, UsageError, quote
from pyrkt.model.image import Image
from pyrkt.model.values import Value
from pyrkt.store import Collected, ImageRecord, InUse, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pyrkt.fetch.sources import Source
    from pyrkt.fetch.ui import FetchUI
    from pyrkt.store.verify import Verified

SORT_KEYS = {"id": "id", "name": "name", "importtime": "import_time", "lastused": "last_used", "size": "size"}


def open_store(config: Config, *, write: bool = False) -> Store:
    """The store; ``write``: one that will be written (a read-only data dir is refused first)."""
    if write:
        from pyrkt.config import check_writable

        check_writable(config.data_dir)
    return Store.open(config.store_dir, config_dirs=tuple(config.dirs.names()))


def resolve_image(config: Config, store: Store, arg: str, *, pull_policy: str, signature: str | None = None,
                  platform: str = "", ui: FetchUI | None = None) -> Image:
    """The stored image ``arg`` names, fetched or imported first as the policy says.

    Local files (ACIs too) are always imported, whatever the policy, as rkt; ``signature`` is
    an ACI's detached signature file (``--signature``); ``platform`` (``--platform``) chooses
    from a registry's index; ``ui``: the caller's progress display and questions (default:
    headless, nothing shown or asked)."""
    from pyrkt.fetch import parse_source
    from pyrkt.fetch.policy import check_pull_policy

    check_pull_policy(pull_policy)
    source = parse_source(arg)
    if signature:
        return _resolve_signed(config, store, arg, source, signature, pull_policy=pull_policy, platform=platform,
                               ui=ui)
    return _resolve(config, store, arg, source, None, pull_policy=pull_policy, platform=platform, ui=ui)


def _resolve_signed(config: Config, store: Store, arg: str, source: Source, signature: str, *, pull_policy: str,
                    platform: str, ui: FetchUI | None) -> Image:
    """``resolve_image`` with ``--signature``: refused for an OCI or Docker image; a warning
    when it is not checked (the image taken from the store, or ``--insecure-options=image``)."""
    from pyrkt.fetch.sources import check_signature

    check_signature(arg, source)
    fetched: list[bool] = []
    image = _resolve(config, store, arg, source, signature, pull_policy=pull_policy, platform=platform, ui=ui,
                     fetched=fetched)
    why = ("--insecure-options=image skips signature checks" if "image" in config.insecure
           else "" if fetched else f"the image {image.id} was taken from the store, not fetched")
    if why and ui is not None:
        ui.notice(f"warning: --signature {signature} for {arg} was not checked: {why}")
    return image


def _resolve(config: Config, store: Store, arg: str, source: Source, signature: str | None, *, pull_policy: str,
             platform: str, ui: FetchUI | None, fetched: list[bool] | None = None) -> Image:
    """``resolve_image``'s work; ``fetched`` gets an item when the image was fetched or imported."""
    from pyrkt.fetch import fetch
    from pyrkt.fetch.policy import use_stored

    debug = ui.debug if ui is not None else _no_debug

    def from_source(source: Source) -> Image:
        import gc
        from pathlib import Path  # only when fetching: pathlib is off the run path

        gc.freeze()  # off for `run` and `prepare` (cli.main.GC_OFF_COMMANDS); a fetch may run long:
        gc.enable()  # on for what it allocates, the start-up's objects frozen (a first pass would walk them all)
        sig = Path(signature) if signature else None
        image = fetch(store, arg, source=source, insecure=config.insecure, dirs=config.dirs, signature=sig,
                      platform=platform, ui=ui, pull_policy=pull_policy,
                      trust_keys_from_https=config.trust_keys_from_https)
        if fetched is not None:  # an https URL or discovery reusing its stored image says so itself
            fetched.append(True)
        return image

    if source.is_local or source.kind in ("aci-file", "https"):
        if source.kind != "https":
            debug(f"using image from {'OCI layout' if source.kind == 'oci' else 'file'} {os.path.abspath(source.location)}")
        return from_source(source)  # files are always imported; https applies the policy to its cache record
    if source.kind == "store":
        return _stored_or_discovered(store, arg, pull_policy, from_source, debug)
    try:
        stored: Image | None = store.resolve(_stored_name(source))
    except NotFound:
        stored = None
    missing = ""
    if stored is not None and platform and not _for_platform(stored, platform):
        missing = f"image {quote(arg)} is stored for {_platform_of(stored)}, not {platform} (pull policy never)"
        stored = None  # the name was stored for another platform
    image = use_stored(pull_policy, stored, what=arg, missing=missing)
    if image is not None:
        debug(f"using image from local store for url docker://{source.location}")
        return image
    debug(f"remote fetching from URL {quote('docker://' + source.location)}")
    return from_source(source)


def _no_debug(message: str) -> None:
    pass


def _from_store(arg: str, image: Image) -> str:
    """rkt's debug line for an image found in the store: by (a prefix of) its id, or by name."""
    from pyrkt.store.lookup import parse_lookup

    prefix = parse_lookup(arg).id_prefix
    if prefix is not None and image.id.startswith(prefix):
        return f"using image from the store with hash {image.id}"
    return f"using image from local store for image name {arg}"


def _platform_of(image: Image) -> str:
    return f"{image.label('os') or '?'}/{image.label('arch') or '?'}"


def _for_platform(image: Image, platform: str) -> bool:
    """Whether a stored image is for ``--platform`` (os/arch[/variant], as appc labels name them)."""
    from pyrkt.fetch import parse_platform
    from pyrkt.fetch.convert import appc_arch

    want = parse_platform(platform)
    return (image.label("os"), image.label("arch")) == (want.os, appc_arch(want.architecture, want.variant))


def _stored_or_discovered(store: Store, arg: str, pull_policy: str, from_source: Callable[[Source], Image],
                          debug: Callable[[str], None]) -> Image:
    """An id prefix or a store name wins; an appc name (``example.com/app:1.0,os=linux``) the
    store lookup does not find, or that ``update`` asks again for, goes to appc discovery,
    which looks in the store by name and labels first unless the policy is ``update``."""
    from pyrkt.fetch.sources import Source

    try:
        image = store.resolve(arg)
    except NotFound:
        from pyrkt.fetch.discovery import discoverable

        if not discoverable(arg):
            raise
        return from_source(Source("appc", arg))
    if image.format == "appc":
        from pyrkt.fetch.discovery import discoverable
        from pyrkt.fetch.policy import use_stored

        if discoverable(arg) and use_stored(pull_policy, image, what=arg) is None:
            return from_source(Source("appc", arg))  # discovery looks in the store by labels first
    debug(_from_store(arg, image))
    return image


def _stored_name(source: Source) -> str:
    """The store name of a remote source: ``docker://nginx`` is ``registry-1.docker.io/library/nginx:latest``."""
    if source.kind != "docker":
        return source.location
    from pyrkt.fetch.reference import parse_reference

    ref = parse_reference(source.location)
    return f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}"


def list_images(store: Store, *, sort: list[str] | None = None, order: str = "asc") -> list[ImageRecord]:
    """Records sorted by the given keys (rkt's ``--sort``; default import time)."""
    keys = [k.strip() for k in (sort or ["importtime"]) if k.strip()] or ["importtime"]
    for k in keys:
        if k not in SORT_KEYS:
            raise UsageError(f"invalid sort field {k!r}: want one of {', '.join(SORT_KEYS)}")
    if order not in ("asc", "desc"):
        raise UsageError(f"invalid order {order!r}: want asc or desc")
    records = store.list()
    for k in reversed(keys):
        attr = SORT_KEYS[k]
        if attr == "name":
            records.sort(key=lambda r: r.display_name)
        else:
            records.sort(key=lambda r, a=attr: getattr(r, a))  # type: ignore[misc]
    if order == "desc":
        records.reverse()
    return records


class Removal(Value):
    """The outcome of removing one argument: the record removed, or the error for it."""

    arg: str
    record: ImageRecord | None = None
    error: PyrktError | None = None


def remove_images(store: Store, args: list[str], config: Config | None = None) -> list[Removal]:
    """Remove each image (id prefix or name); an error for one argument does not stop the rest.

    As in rkt, an image a prepared or running pod uses may go: the layer dirs the pod lists
    (``config`` says where pods are) stay until ``image gc`` finds no pod using them.
    """
    out = []
    for arg in args:
        try:
            rec = store.find(arg)
            in_use = (lambda: pods_in_use(config, store)) if config is not None else (lambda: InUse())
            out.append(Removal(arg, store.remove(rec.id, in_use=in_use)))
        except PyrktError as e:
            out.append(Removal(arg, error=e))
    return out


def image_manifest(store: Store, arg: str) -> bytes:
    """The stored manifest of the image ``arg`` names, byte for byte."""
    return store.manifest(store.find(arg).id)


# -- what pods use, image gc ----------------------------------------------------------------

def pods_in_use(config: Config, store: Store) -> InUse:
    """Images and layer dirs pods hold. An image (an app's, or the stage1 image a pod runs
    with) counts while its pod may still run or be looked at (prepare, prepared, run,
    exited-garbage); a layer dir counts while any pod dir that lists it exists (a garbage pod
    may still have its overlay mounted)."""
    from pyrkt.kernel import fs
    from pyrkt.model import abi, jsonio
    from pyrkt.pods.pod import Pod
    from pyrkt.pods.state import LOOKUP_ORDER, Dir

    using_images = (Dir.PREPARE, Dir.PREPARED, Dir.RUN, Dir.EXITED_GARBAGE)
    layers_root = os.path.join(store.dir, "layers", "sha256")
    images: set[str] = set()
    layers: set[str] = set()
    for pod in Pod.walk(config.pods_dir, LOOKUP_ORDER):
        if pod.where in using_images:
            try:
                with open(pod.file(abi.POD_MANIFEST)) as f:
                    images.update(str(a["image"]["id"]) for a in jsonio.loads(f.read())["apps"])
            except (OSError, ValueError, KeyError, TypeError):
                pass  # not written yet (the apps' manifests below are written first) or gone
            stage1 = fs.read_text(pod.file(abi.STAGE1_IMAGE_ID))  # a stage1 image the pod runs with
            if stage1:
                images.add(stage1.strip())
        try:
            apps = os.listdir(pod.file(abi.APPSINFO))
        except OSError:
            continue  # an embryo, or a pod deleted meanwhile
        for app in apps:
            if pod.where in using_images:
                try:
                    with open(pod.file(abi.app_manifest(app))) as f:
                        images.add(str(jsonio.loads(f.read())["id"]))
                except (OSError, ValueError, KeyError, TypeError):
                    pass  # half-written by a prepare that died: its layers below still count
            try:
                with open(pod.file(abi.app_layers(app))) as f:
                    paths = jsonio.loads(f.read())
            except (OSError, ValueError):
                continue
            for p in paths if isinstance(paths, list) else ():
                parent, name = os.path.split(os.path.normpath(str(p)))
                if parent == layers_root:
                    layers.add("sha256:" + name)
    return InUse(frozenset(images), frozenset(layers))


def gc_images(config: Config, store: Store, *, grace: float) -> Collected:
    """rkt's ``image gc``: images unused for ``grace`` seconds that no pod uses go, and so do
    layer dirs and blobs nothing refers to and what killed imports left behind."""
    import time

    cutoff = time.time_ns() - int(grace * 1e9)
    return store.collect(unused_since_ns=cutoff, in_use=lambda: pods_in_use(config, store))


# -- export, extract, verify ----------------------------------------------------------------

def export_image(store: Store, arg: str, output: str, *, fmt: str = "aci", overwrite: bool = False) -> ImageRecord:
    """Write the image ``arg`` names to the file ``output`` as an ACI or an OCI archive."""
    from pyrkt.store.export import export_output, write_aci_tar, write_atomically, write_oci_archive

    out = export_output(output, fmt, overwrite=overwrite)
    rec = store.find(arg)
    with store.shared_lock(), OutputErrors(out):
        if fmt == "aci":
            image = store.resolve(arg)
            layer_dirs = store.layer_dirs(image)
            write_atomically(out, lambda f: write_aci_tar(f, image, layer_dirs))
        else:
            blobs = store.blobs_of(rec.id)
            write_atomically(out, lambda f: write_oci_archive(
                f, manifest_digest=rec.manifest_digest, manifest_media_type=rec.manifest_media_type,
                version=rec.version, blobs=blobs, open_blob=store.blobs.open))
    return rec


def extract_image(store: Store, arg: str, dest: str, *, rootfs_only: bool = False,
                  overwrite: bool = False, dependencies: bool = True, keep_special: bool = False) -> ImageRecord:
    """Write the image's filesystem into the new dir ``dest``: ``rootfs/`` and the appc
    ``manifest``, or (``rootfs_only``) the filesystem itself. ``dependencies`` (``image render``):
    the tree the image runs with, its appc dependencies and pathWhitelist applied; without
    (``image extract``): only an ACI's own rootfs, as rkt. OCI and Docker images have no
    dependencies, so both are the same for them.

    ``dest`` is made 0700: what is in it belongs to the image, not to every local user. Device
    nodes, setuid/setgid bits and file capabilities are left out unless ``keep_special``."""
    from pathlib import Path

    from pyrkt.fetch.aci import image_rootfs
    from pyrkt.store.aci import manifest_bytes
    from pyrkt.store.render import render_tree
    from pyrkt.store.staging import remove_tree

    if not dest:
        raise UsageError("the output directory name is empty")
    out = Path(os.path.abspath(dest))
    rec = store.find(arg)
    real, data = out.resolve(), store.root.parent.resolve()
    if data.is_relative_to(real) or real.is_relative_to(data):
        raise PyrktError(f"refusing to write {out}: it is in or holds pyrkt's data dir {data}")
    if os.path.lexists(out):
        if not overwrite:
            raise PyrktError(f"output directory {out} exists (try --overwrite)")
        if not out.is_dir():  # --overwrite replaces an earlier output dir, never a file or a device node
            raise PyrktError(f"refusing to overwrite {out}: it is not a directory")
        if Path.cwd().resolve().is_relative_to(real):
            raise PyrktError(f"refusing to overwrite {out}: it holds the current directory")
        _check_no_mounts(real)
        remove_tree(out)
    image = store.resolve(arg)
    with store.shared_lock(), OutputErrors(out), image_rootfs(store, image, dependencies=dependencies) as layer_dirs:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.mkdir(mode=0o700)
        try:
            if rootfs_only:
                render_tree(layer_dirs, out, keep_special=keep_special, root_mode=0o700)
            else:
                (out / "rootfs").mkdir()
                render_tree(layer_dirs, out / "rootfs", keep_special=keep_special)
                (out / "manifest").write_bytes(manifest_bytes(image))
        except BaseException:
            remove_tree(out)
            raise
    return rec


def _check_no_mounts(real: Path) -> None:
    """``--overwrite`` deletes ``real``: never across a mount."""
    from pathlib import Path

    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
    except OSError:
        mounts = []
    for mnt in mounts:
        mnt = mnt.replace("\\040", " ")
        if Path(mnt).is_relative_to(real):
            raise PyrktError(f"refusing to overwrite {real}: {mnt} is mounted there")


class OutputErrors:
    """Turns an OSError while writing ``path`` into the user's one line naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, OSError):
            what = exc.strerror or str(exc)
            source = str(exc.filename or "")
            if source and not source.startswith(str(self.path.parent)):  # e.g. a layer file read
                what = f"{source}: {what}"
            raise PyrktError(f"cannot write {self.path}: {what}") from None


class Verification(Value):
    """One ``image verify`` argument: the image's outcome, or the error that stopped it."""

    arg: str
    result: Verified | None = None
    error: PyrktError | None = None


def verify_images(config: Config, store: Store, args: list[str]) -> list[Verification]:
    """Check each image's blobs and layer dirs, repairing damaged layer dirs from their blobs."""
    from pyrkt.store.verify import verify_image

    out = []
    for arg in args:
        try:
            image_id = store.find(arg).id
            with store.exclusive_lock():
                in_use = pods_in_use(config, store)
                out.append(Verification(arg, verify_image(store, image_id, in_use_layers=in_use.layers)))
        except PyrktError as e:
            out.append(Verification(arg, error=e))
    return out

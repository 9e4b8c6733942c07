"""Importing appc ACI files (``./app.aci``, ``file:///…/app.aci``), natively.

An ACI is a tar (plain, gzip, bzip2 or xz) of exactly ``manifest`` (an appc ImageManifest)
and ``rootfs/``. The uncompressed tar is kept as one blob and is also the image's only layer
(unpacked with ``rootfs/`` stripped, see ``store.layers.unpack(aci=True)``). The image id is
rkt's store key: ``sha512-`` + the first 64 hex of the sha512 of the uncompressed tar. The
detached signature (``X.aci.asc`` or ``--signature``) is checked against the trusted keys
(``trust.py``) unless ``--insecure-options=image``. Any failure leaves the store as it was.

Dependencies (appc ``dependencies``) must be stored images (``resolve_dependency`` may fetch
them): the image's layers are each dependency's own layers, depth-first in manifest order, then
the ACI's own rootfs, so A->[B, C], C->[D] renders B, D, C, A with later layers winning. With a
``pathWhitelist`` (which filters the image and all its dependencies), that merged tree, filtered,
is written once as a plain layer tar and is the image's only layer (overlayfs cannot filter); the
ACI tar is then kept as the image's config blob. The manifest is stored as it came.

``parse_manifest`` is the pure mapping of an ImageManifest onto ``pyrkt.model.image.Image`` and
its dependencies and whitelist (the reverse of ``pyrkt.store.aci.image_manifest``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, cast

from pyrkt.config import ConfigDirs
from pyrkt.errors import ImageError, NotFound
from pyrkt.model import jsonio
from pyrkt.model.image import AciOrigin, AppSpec, Image
from pyrkt.model.names import is_ac_identifier
from pyrkt.model.osarch import manifest_os_arch_problem
from pyrkt.model.values import Value
from pyrkt.store import Store
from pyrkt.store.aci import ACI_MEDIA_TYPE
from pyrkt.store.digests import short_id

MANIFEST_LIMIT = 1 << 20
MT_APPC_MANIFEST = "application/vnd.appc.image-manifest+json"
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
ID_HEX = 64  # rkt's store key: half of the sha512
_IMAGE_ID = re.compile(r"^sha512-[0-9a-f]{2,128}$")
MAX_DEPENDENCY_DEPTH = 16  # images below an image, counted along its longest dependency chain
MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

# Images whose dependencies are being resolved, outermost first: (id, name). A resolver that
# fetches a missing dependency imports it with ``import_aci`` again, so a cycle shows here.
_RESOLVING: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("pyrkt_aci_resolving", default=())


class Dependency(Value):
    """One entry of an ImageManifest's ``dependencies``: which image to put below this one."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    image_id: str = ""  # "": any image matching name and labels
    size: int | None = None

    def label(self, name: str) -> str | None:
        return next((v for k, v in self.labels if k == name), None)

    @property
    def display(self) -> str:
        """``example.com/base:1.0.0,env=canary`` (rkt's image string form)."""
        version = self.label("version")
        rest = "".join(f",{k}={v}" for k, v in self.labels if k != "version")
        return f"{self.name}:{version}{rest}" if version else f"{self.name}{rest}"


class AciManifest(Value):
    """A parsed ImageManifest: the image (one layer, the ACI's rootfs) and what it needs."""

    image: Image
    dependencies: tuple[Dependency, ...] = ()
    path_whitelist: tuple[str, ...] = ()  # absolute, normalised; () = everything


def import_aci(store: Store, path: Path, *, source: str, signature: Path | None = None,
               verify: bool = True, dirs: ConfigDirs | None = None,
               check: Callable[[Image], None] | None = None,
               resolve_dependency: Callable[[Dependency], Image] | None = None) -> Image:
    """Import the ACI file at ``path``; with ``verify``, its signature must check against the
    keys trusted in the system and local config ``dirs`` (default: pyrkt's default dirs;
    ``signature`` defaults to ``<path>.asc``).

    ``check(image)`` runs after the signature check and before anything is committed (an
    exception from it leaves the store unchanged). ``resolve_dependency(dep)`` returns the
    stored image for one dependency; by default it is looked up in the store
    (``find_dependency``).
    """
    if not path.exists():
        raise NotFound(f"ACI file {str(path)!r} not found")
    with store.begin_import(source) as imp:
        # A signed ACI is copied once into the import's own dir, and the signature is checked
        # on exactly the bytes that are then imported: the file at ``path`` may change meanwhile.
        read = _private_copy(imp, path, source) if verify else path
        blob, sha512 = _stage_tar(imp, read, source)
        raw_manifest = _read_manifest(imp.blob_path(blob), source)
        parsed = parse_manifest(raw_manifest, image_id=f"sha512-{sha512[:ID_HEX]}", diff_id=blob, where=source)
        image = parsed.image
        if verify:
            from pyrkt.fetch.trust import verify_signature

            sig = signature or path.with_name(path.name + ".asc")
            keys = dirs or ConfigDirs()
            verify_signature(read, sig, image.name, system_dir=Path(keys.system), local_dir=Path(keys.local),
                             shown=str(path), tmp_dir=imp.dir)
        if check is not None:
            check(image)
        needed_by = image.name
        resolve = resolve_dependency or (lambda dep: find_dependency(store, dep, needed_by=needed_by))
        deps = resolve_dependencies(image, parsed.dependencies, resolve, where=source)
        config_digest = None
        if parsed.path_whitelist:
            layers = [_stage_whitelisted(imp, store, blob, deps, parsed.path_whitelist, source)]
            config_digest = blob  # the ACI is no layer now, but `image extract` and verify need it
        else:
            layers = _stage_layers(imp, store, blob, deps)
        origin = AciOrigin(sha512, blob, tuple(parsed.path_whitelist), tuple(d.id for d in deps),
                           1 + max(_depth(d) for d in deps) if deps else 0)
        manifest_digest = imp.add_bytes(raw_manifest, what=f"{source}: manifest")
        image = image.replace(layers=tuple(layers), manifest_digest=manifest_digest, aci=origin)
        imp.commit(image, manifest_digest=manifest_digest, manifest_media_type=MT_APPC_MANIFEST,
                   config_digest=config_digest or manifest_digest, name=image.name,
                   version=image.label("version") or "latest")
    return image


# -- dependencies ----------------------------------------------------------------------------


def _depth(image: Image) -> int:
    return image.aci.dependency_depth if image.aci is not None else 0


def id_matches(wanted: str, image_id: str) -> bool:
    """rkt's key match: a ``sha512-`` id matches the store key (its first 64 hex) it starts with,
    and a shorter id the keys it is a prefix of."""
    if not (wanted.startswith("sha512-") and image_id.startswith("sha512-")):
        return wanted == image_id
    a, b = wanted[7:], image_id[7:]
    return a.startswith(b) or b.startswith(a)


def resolve_dependencies(image: Image, deps: tuple[Dependency, ...], resolve: Callable[[Dependency], Image],
                         *, where: str) -> list[Image]:
    """The stored image of each dependency, in manifest order; refuses cycles, chains deeper than
    ``MAX_DEPENDENCY_DEPTH`` and images whose id is not the ``imageID`` asked for."""
    if not deps:
        return []
    chain = _RESOLVING.get()
    names = [n for _, n in chain] + [image.name]
    if any(image_id == image.id for image_id, _ in chain):
        cycle = names[[i for i, _ in chain].index(image.id):]
        raise ImageError(f"{where}: dependency cycle: {' -> '.join(cycle)}")
    if len(chain) >= MAX_DEPENDENCY_DEPTH:
        raise ImageError(f"{where}: dependencies of {image.name!r} nest deeper than {MAX_DEPENDENCY_DEPTH} images")
    token = _RESOLVING.set((*chain, (image.id, image.name)))
    try:
        out = []
        for dep in deps:
            found = resolve(dep)
            if dep.image_id and not id_matches(dep.image_id, found.id):
                raise ImageError(f"{where}: dependency {dep.display} of {image.name!r} wants imageID "
                                 f"{dep.image_id[:7 + 32]}, but the image found is {found.id[:7 + 32]}")
            if found.id == image.id or any(found.id == i for i, _ in chain):
                raise ImageError(f"{where}: dependency cycle: {' -> '.join([*names, dep.name])}")
            if _depth(found) + 1 > MAX_DEPENDENCY_DEPTH:
                raise ImageError(f"{where}: dependencies of {image.name!r} nest deeper than "
                                 f"{MAX_DEPENDENCY_DEPTH} images (through {dep.display})")
            out.append(found)
        return out
    finally:
        _RESOLVING.reset(token)


def dependency_matches(dep: Dependency, name: str, version: str, labels: tuple[tuple[str, str], ...]) -> bool:
    """appc's dependency matching: same name; every label the dependency asks for is carried with
    the same value (``version``: the stored version or tag, or the version label)."""
    if name != dep.name:
        return False
    have = dict(labels)
    for key, value in dep.labels:
        if key == "version":
            if value not in (version, have.get("version")):
                return False
        elif have.get(key) != value:
            return False
    return True


def find_dependency(store: Store, dep: Dependency, *, needed_by: str) -> Image:
    """The stored image ``dep`` asks for: with an ``imageID``, the match with that id; else, when
    no version is asked, one stored as ``latest``, else the newest import of the matches."""
    found = [r for r in store.list() if dependency_matches(dep, r.name, r.version, r.labels)]
    if not found:
        raise NotFound(f"dependency {dep.display} of image {needed_by!r} not found in the store; fetch it first")
    if dep.image_id:
        pinned = [r for r in found if id_matches(dep.image_id, r.id)]
        found = pinned or found  # no match: resolve_dependencies reports the mismatch
    elif dep.label("version") is None:
        found = [r for r in found if r.version == "latest"] or found
    best = max(found, key=lambda r: r.import_time)
    return store.get(best.id)


def _stage_layers(imp: Any, store: Store, blob: str, deps: list[Image]) -> list[str]:
    """Each dependency's layers (already in the store), then the ACI's rootfs unpacked over them."""
    layers: list[str] = []
    for dep in deps:
        for row in _layer_rows(store, dep):
            imp.add_layer(row.blob_digest, row.diff_id, row.media_type)
            layers.append(row.diff_id)
    imp.add_layer(blob, blob, ACI_MEDIA_TYPE)
    layers.append(blob)
    return layers


def _layer_rows(store: Store, image: Image) -> list[Any]:
    rows = {row.diff_id: row for row in store.index.layers(image.id)}
    missing = [d for d in image.layers if d not in rows]
    if missing:
        raise ImageError(f"dependency {image.display_name} ({short_id(image.id)}): layer {missing[0]} "
                         "is not recorded in the store; fetch it again")
    return [rows[d] for d in image.layers]


def _stage_whitelisted(imp: Any, store: Store, blob: str, deps: list[Image], whitelist: tuple[str, ...],
                       where: str) -> str:
    """Merge the dependencies' layers and the ACI's rootfs, keep what ``whitelist`` allows, and
    stage the result as one plain layer tar (blob and unpacked layer); returns its diff id."""
    from pyrkt.store.layers import unpack
    from pyrkt.store.limits import ChargedStream
    from pyrkt.store.render import render_tar
    from pyrkt.store.squash import Whitelist

    diff_ids = [row.diff_id for dep in deps for row in _layer_rows(store, dep)]
    below: list[Path] = []
    for i, diff_id in enumerate(diff_ids):
        if diff_id in diff_ids[i + 1:]:
            continue  # a diamond: the topmost copy shows the same tree
        path = store.layer_path(diff_id)
        if not path.is_dir():
            raise ImageError(f"{where}: layer {diff_id} of a dependency is missing from the store; fetch it again")
        below.append(path)
    own = imp.dir / "aci-rootfs"
    own.mkdir(mode=0o700)
    unpack(imp.blob_path(blob), own, diff_id=blob, layer=blob, lowers=list(reversed(below)), aci=True,
           budget=imp.budget)
    tar = imp.dir / "whitelisted.tar"
    with open(tar, "wb") as f:
        out = ChargedStream(f, imp.budget, f"{where}: rootfs filtered by its pathWhitelist")
        render_tar([*below, own], cast(IO[bytes], out), keep=Whitelist.of(whitelist))
    with open(tar, "rb") as f:
        digest: str = imp.add_blob(f, expected=None, what=f"{where}: rootfs filtered by its pathWhitelist")
    tar.unlink()
    imp.add_layer(digest, digest, MT_LAYER_TAR)
    return digest


@contextmanager
def image_rootfs(store: Store, image: Image, *, dependencies: bool = True) -> Iterator[list[Path]]:
    """The layer dirs to render for an image (bottom first). With ``dependencies`` (``image
    render``), its layers: what its pods run. Without (``image extract``), for an ACI only its
    own ``rootfs/`` as it came (unpacked to a temp dir when it is no layer, as with a
    pathWhitelist). The caller holds the store's shared lock."""
    blob = image.aci.blob if image.aci is not None else ""
    if dependencies or image.format != "appc" or not blob:
        yield store.layer_dirs(image)
        return
    if blob in image.layers and store.layer_path(blob).is_dir():
        yield [store.layer_path(blob)]
        return
    from pyrkt.store.layers import unpack
    from pyrkt.store.staging import new_session_dir, remove_tree

    scratch = new_session_dir(store.tmp)
    try:
        dest = scratch / "rootfs"
        dest.mkdir(mode=0o700)
        try:
            unpack(store.blobs.path(blob), dest, diff_id=blob, layer=blob, aci=True)
        except FileNotFoundError:
            raise ImageError(f"the ACI blob {blob} of image {short_id(image.id)} is missing from the store; "
                             "fetch the image again") from None
        yield [dest]
    finally:
        remove_tree(scratch)


def _private_copy(imp: Any, path: Path, where: str) -> Path:
    """``path``'s bytes as they are now, in the import's dir (gone with it)."""
    import shutil

    from pyrkt.fetch.local import open_regular_file

    copy = Path(imp.dir) / "signed.aci"
    with open_regular_file(str(path), where, what="the ACI file") as src, open(copy, "xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return copy


def _stage_tar(imp: Any, path: Path, where: str) -> tuple[str, str]:
    """Stage the uncompressed tar as a blob; (its sha256 digest, its sha512 hex)."""
    import zlib

    from pyrkt.fetch.local import open_regular_file
    from pyrkt.store.decompress import open_decompressed
    from pyrkt.store.digests import HashingReader

    with open_regular_file(str(path), where, what="the ACI file") as raw:
        reader = HashingReader(open_decompressed(raw, where), "sha512")
        try:
            digest: str = imp.add_blob(reader, expected=None, what=f"{where}: ACI")
            reader.drain()
        except (EOFError, zlib.error) as e:
            raise ImageError(f"{where}: corrupt ACI file: {e}") from None
        except OSError as e:
            if e.errno is not None:
                raise
            raise ImageError(f"{where}: corrupt ACI file: {e}") from None
        except Exception as e:
            if type(e).__name__ == "LZMAError":
                raise ImageError(f"{where}: corrupt ACI file: {e}") from None
            raise
    return digest, reader.hasher.hexdigest()


def _read_manifest(tar_path: Path, where: str) -> bytes:
    """The ``manifest`` member's bytes; the tar must hold only ``manifest`` and ``rootfs/``."""
    import tarfile

    from pyrkt.store.members import aci_member_path

    manifest: bytes | None = None
    try:
        with tarfile.open(tar_path, "r:") as tf:
            for info in tf:
                if aci_member_path(info.name, layer=where, member=info.name) is not None:
                    continue
                if info.name.strip("./") != "manifest":
                    continue
                if not info.isfile():
                    raise ImageError(f"{where}: the ACI's manifest is not a regular file")
                if manifest is not None:
                    raise ImageError(f"{where}: the ACI holds two manifests")
                if info.size > MANIFEST_LIMIT:
                    raise ImageError(f"{where}: the ACI's manifest is too large ({info.size} bytes)")
                f = tf.extractfile(info)
                manifest = f.read() if f is not None else b""
    except tarfile.TarError as e:
        raise ImageError(f"{where}: not an ACI: not a readable tar: {e}") from None
    if manifest is None:
        raise ImageError(f"{where}: not an ACI: it has no manifest")
    return manifest


# -- the manifest ----------------------------------------------------------------------------


def _name_values(value: Any, what: str, where: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImageError(f"{where}: manifest {what} must be a list")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("value"), str):
            raise ImageError(f"{where}: manifest {what} entries need a string name and value")
        name = item["name"]
        if not is_ac_identifier(name):  # appc: label and annotation names are AC Identifiers
            raise ImageError(f"{where}: manifest {what[:-1]} name {name!r} is not a valid AC Identifier")
        if name in seen:
            raise ImageError(f"{where}: manifest has duplicate {what[:-1]} {name!r}")
        seen.add(name)
        out.append((name, item["value"]))
    return out


def check_os_arch(labels: list[tuple[str, str]], where: str) -> None:
    """As appc and rkt's fetch: ``os`` and ``arch`` may be absent (the image runs anywhere; run
    and prepare check the app's image, ``model.osarch``), but an os must be one appc knows and
    an arch one of that os."""
    problem = manifest_os_arch_problem(dict(labels))
    if problem is not None:
        raise ImageError(f"{where}: {problem}")


EVENT_HANDLERS = ("pre-start", "post-stop")


def _check_event_handlers(value: Any, where: str) -> None:
    """appc's eventHandlers: at most one ``pre-start`` and one ``post-stop``, each with an exec."""
    if value is None:
        return
    if not isinstance(value, list):
        raise ImageError(f"{where}: manifest app eventHandlers must be a list")
    seen: set[str] = set()
    for h in value:
        name = h.get("name") if isinstance(h, dict) else None
        if name not in EVENT_HANDLERS:
            raise ImageError(f"{where}: manifest app event handler {name!r}: want pre-start or post-stop")
        if name in seen:
            raise ImageError(f"{where}: manifest app has two {name} event handlers")
        seen.add(name)
        exec_ = h.get("exec")
        if not isinstance(exec_, list) or not exec_ or not all(isinstance(a, str) and a for a in exec_):
            raise ImageError(f"{where}: manifest app {name} event handler needs an exec: a list of strings")


def _app(d: Any, where: str) -> AppSpec | None:
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ImageError(f"{where}: manifest app must be an object")
    for key in ("user", "group"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise ImageError(f"{where}: manifest app needs a {key}")
    exec_ = d.get("exec")
    if exec_ is not None and (not isinstance(exec_, list) or not all(isinstance(a, str) for a in exec_)):
        raise ImageError(f"{where}: manifest app exec must be a list of strings")
    wd = d.get("workingDirectory")
    if wd and (not isinstance(wd, str) or not wd.startswith("/")):
        raise ImageError(f"{where}: manifest app workingDirectory {wd!r} must be absolute")
    _check_event_handlers(d.get("eventHandlers"), where)
    try:
        return AppSpec.from_appc(d)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ImageError(f"{where}: invalid manifest app section: {type(e).__name__} {e}") from None


def _dependencies(value: Any, where: str) -> tuple[Dependency, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ImageError(f"{where}: manifest dependencies must be a list")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise ImageError(f"{where}: manifest dependencies must be objects")
        name = item.get("imageName")
        if not isinstance(name, str) or not is_ac_identifier(name):
            raise ImageError(f"{where}: manifest dependency imageName {name!r} is not a valid AC Identifier")
        image_id = item.get("imageID")
        if image_id is not None and (not isinstance(image_id, str) or not _IMAGE_ID.match(image_id)):
            raise ImageError(f"{where}: manifest dependency {name!r} has an invalid imageID {image_id!r} "
                             "(want sha512- and hex)")
        size = item.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ImageError(f"{where}: manifest dependency {name!r} has an invalid size {size!r}")
        labels = _name_values(item.get("labels"), "labels", f"{where}: dependency {name!r}")
        out.append(Dependency(name, tuple(labels), image_id or "", size))
    return tuple(out)


def _path_whitelist(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ImageError(f"{where}: manifest pathWhitelist must be a list of strings")
    out: dict[str, None] = {}
    for path in value:
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            raise ImageError(f"{where}: manifest pathWhitelist entry {path!r} is not a clean absolute path")
        out[posixpath.normpath(path)] = None
    return tuple(out)


def image_from_manifest(data: bytes, *, image_id: str, diff_id: str, where: str) -> Image:
    """The ``Image`` an ImageManifest describes (one layer, ``diff_id``); ImageError when invalid."""
    return parse_manifest(data, image_id=image_id, diff_id=diff_id, where=where).image


def parse_manifest(data: bytes, *, image_id: str, diff_id: str, where: str) -> AciManifest:
    """The ImageManifest's image (one layer, ``diff_id``), dependencies and pathWhitelist;
    ImageError when anything is invalid."""
    try:
        m = jsonio.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ImageError(f"{where}: the ACI manifest is not valid JSON: {e}") from None
    if not isinstance(m, dict):
        raise ImageError(f"{where}: the ACI manifest is not a JSON object")
    if m.get("acKind") != "ImageManifest":
        raise ImageError(f"{where}: manifest acKind is {m.get('acKind')!r}, want 'ImageManifest'")
    version = m.get("acVersion")
    if not isinstance(version, str) or not _SEMVER.match(version):
        raise ImageError(f"{where}: manifest acVersion {version!r} is missing or not a semantic version")
    name = m.get("name")
    if not isinstance(name, str) or not name:
        raise ImageError(f"{where}: manifest has no name")
    if not is_ac_identifier(name):
        raise ImageError(f"{where}: manifest name {name!r} is not a valid AC Identifier")
    labels = _name_values(m.get("labels"), "labels", where)
    if any(k == "name" for k, _ in labels):
        raise ImageError(f"{where}: manifest has a label called 'name', which appc forbids")
    check_os_arch(labels, where)
    image = Image(
        id=image_id, name=name, labels=tuple(labels), layers=(diff_id,), app=_app(m.get("app"), where),
        annotations=tuple(_name_values(m.get("annotations"), "annotations", where)), format="appc",
    )
    return AciManifest(image, _dependencies(m.get("dependencies"), where),
                       _path_whitelist(m.get("pathWhitelist"), where))

"""The CRI ImageService over pyrkt's store: image references as a kubelet sends them, the
``Image`` messages it reads, pulls from a registry with the request's credentials, removal and
the store's disk usage.

A kubelet names an image by a Docker reference (``busybox``, ``docker.io/library/busybox:latest``,
``localhost:5000/x@sha256:…``) or by the id an earlier call returned (``sha256:<hex>``). Docker
Hub's API host, under which the store keeps Hub images, is shown as ``docker.io`` in repo tags
and digests, as containerd shows them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Callable, Iterable

from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.config import Config
from pyrkt.errors import NotFound, PyrktError, UsageError, quote
from pyrkt.fetch.auth import Credentials
from pyrkt.fetch.reference import DOCKER_HUB, Reference, parse_reference
from pyrkt.model.image import Image
from pyrkt.store import ImageRecord, Store

_IMAGE_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
SHOWN_HUB = "docker.io"
REQUEST_ORIGIN = "the PullImage request's auth"


class ImageRef:
    """What one ImageSpec names: a stored image id, or a registry reference."""

    def __init__(self, text: str) -> None:
        text = text.strip()
        if not text:
            raise UsageError("no image given (ImageSpec.image is empty)")
        self.text = text
        m = _IMAGE_ID.fullmatch(text)
        self.image_id = f"sha256:{m.group(1)}" if m else ""
        self.reference: Reference | None = None if m else parse_reference(text.removeprefix("docker://"))

    @property
    def stored_name(self) -> str:
        """The name the store looks this reference up by (``name:tag`` or ``name@digest``)."""
        ref = self.reference
        assert ref is not None
        return f"{ref.name}@{ref.digest}" if ref.digest else f"{ref.name}:{ref.tag}"


def shown_name(name: str) -> str:
    """A store name as the CRI shows it: Docker Hub as ``docker.io``."""
    host, sep, rest = name.partition("/")
    return f"{SHOWN_HUB}/{rest}" if sep and host == DOCKER_HUB else name


def find(store: Store, spec: str) -> ImageRecord | None:
    """The stored image ``spec`` names, or None when the store does not hold it."""
    ref = ImageRef(spec)
    try:
        if ref.image_id:
            return store.record(ref.image_id)
        return store.find(ref.stored_name)
    except NotFound:
        return None


def image_message(store: Store, rec: ImageRecord) -> pb.Image:
    """The CRI ``Image`` of one stored image: its id, every tag and digest pointing at it, its
    size and the user its app runs as (uid when numeric, else the user name)."""
    refs = store.index.refs_of(rec.id)
    names = sorted({name for name, _ in refs} | {rec.name})
    tags = [f"{shown_name(name)}:{version}" for name, version in refs if version]
    msg = pb.Image(id=rec.id, repo_tags=tags, size=rec.size, spec=pb.ImageSpec(image=rec.id))
    if rec.manifest_digest:
        msg.repo_digests.extend(f"{shown_name(name)}@{rec.manifest_digest}" for name in names)
    try:
        image: Image | None = store.get(rec.id)
    except (NotFound, ValueError, KeyError, TypeError):
        image = None  # removed meanwhile, or unreadable: the record still says much
    if image is not None and image.app is not None:
        user = image.app.user.partition(":")[0]
        if user.isdigit():
            msg.uid.value = int(user)
        elif user:
            msg.username = user
    return msg


def list_images(store: Store, filter_spec: str = "") -> list[pb.Image]:
    """Every stored image, in import order; with ``filter_spec``, only the image it names."""
    if filter_spec:
        rec = find(store, filter_spec)
        return [image_message(store, rec)] if rec is not None else []
    return [image_message(store, rec) for rec in store.list()]


def status_info(store: Store, rec: ImageRecord) -> dict[str, str]:
    """ImageStatus's verbose ``info``: where the image came from and its manifest."""
    return {"source": rec.source, "manifestDigest": rec.manifest_digest,
            "manifestMediaType": rec.manifest_media_type, "importTime": str(rec.import_time),
            "name": rec.display_name}


def entrypoint(store: Store, image_id: str) -> tuple[str, ...] | None:
    """The OCI/Docker config's Entrypoint of a stored image, which a container's ``args``
    without a ``command`` follow (the store's app exec is Entrypoint + Cmd in one); None for
    an image without such a config (an ACI) or one that cannot be read."""
    from pyrkt.model import jsonio

    config = [digest for digest, role in store.index.blobs(image_id) if role == "config"]
    if not config:
        return None
    try:
        data = jsonio.loads(store.blobs.read(config[0]))
        words = (data.get("config") or {}).get("Entrypoint") or []
    except (PyrktError, ValueError, AttributeError):
        return None
    return tuple(str(w) for w in words) if isinstance(words, list) else None


# -- pulls ------------------------------------------------------------------------------------

def request_credentials(auth: pb.AuthConfig) -> tuple[Credentials | None, str]:
    """The request's AuthConfig as (Credentials or None, a registry token or ""): user name and
    password, or ``auth`` (base64 ``user:password``), or an identity token; a registry token is
    sent as it is (``Authorization: Bearer``). None and "" when the request carries none: the
    node's own credentials (``~/.docker/config.json``, auth.d) are used then."""
    user, password = auth.username, auth.password
    if auth.auth:
        try:
            user, sep, password = base64.b64decode(auth.auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise UsageError("AuthConfig.auth is not base64 of user:password") from None
        if not sep:
            raise UsageError("AuthConfig.auth is not base64 of user:password (no ':')")
    if auth.identity_token:
        return Credentials(user, "", REQUEST_ORIGIN, identity_token=auth.identity_token), auth.registry_token
    if user or password:
        return Credentials(user, password, REQUEST_ORIGIN), auth.registry_token
    return None, auth.registry_token


def pull(config: Config, store: Store, spec: str, auth: pb.AuthConfig, *,
         on_end: Callable[[Callable[[], None]], bool] | None = None) -> Image:
    """Fetch the image ``spec`` names from its registry, always asking the registry (the
    kubelet decides when to pull); layers the store holds are not downloaded again. Headless:
    nothing is shown or asked. ``on_end`` registers what stops the pull when the call ends
    first (the kubelet gave up, or the server is stopping): gRPC's ``context.add_callback``."""
    from pyrkt.fetch.auth import credentials_for
    from pyrkt.fetch.registry import RegistryClient, import_registry

    ref = ImageRef(spec)
    if ref.reference is None:
        raise UsageError(f"cannot pull {quote(spec)}: an image id names no registry (pull it by its name)")
    creds, token = request_credentials(auth)
    registry = ref.reference.registry
    if creds is None and not token:
        creds = credentials_for(registry, config.dirs.names())
    client = RegistryClient(ref.reference, insecure=config.insecure, credentials=creds)
    if token:
        client.web.authorize(registry, f"Bearer {token}")
    if on_end is not None and not on_end(client.cancel.set):
        client.cancel.set()  # the call has ended already
    return import_registry(store, ref.reference, source=f"docker://{ref.text}", insecure=config.insecure,
                           client=client)


# -- disk usage -------------------------------------------------------------------------------

def usage(root: str) -> tuple[int, int]:
    """(bytes, inodes) the files under ``root`` take (each inode counted once)."""
    seen: set[tuple[int, int]] = set()
    used = 0
    for st in _stats(root):
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            used += st.st_blocks * 512
    return used, len(seen)


def _stats(root: str) -> Iterable[os.stat_result]:
    try:
        yield os.lstat(root)
    except OSError:
        return
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        for name in (*dirnames, *filenames):
            try:
                yield os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue  # removed while walked


def fs_usage(store_dir: str) -> pb.FilesystemUsage:
    used, inodes = usage(store_dir)
    return pb.FilesystemUsage(timestamp=time.time_ns(), fs_id=pb.FilesystemIdentifier(mountpoint=store_dir),
                              used_bytes=pb.UInt64Value(value=used), inodes_used=pb.UInt64Value(value=inodes))

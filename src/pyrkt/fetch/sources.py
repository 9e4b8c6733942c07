"""What kind of source an image argument names (rkt's distribution points, plus OCI ones).

    oci:DIR[:TAG]                    an OCI image layout directory
    oci-archive:FILE[:TAG]           the same, as a tar
    docker-archive:FILE[:NAME:TAG]   `docker save` output
    docker://REF, docker:REF         a registry (Docker/OCI distribution API)
    https://…, http://…              an ACI over HTTP(S), or appc discovery
    file://PATH, PATH.aci, ./PATH    a local ACI file
    anything else                    an image already in the store: id prefix or name[:tag]

Pure, except that a local path is split from its ``:TAG`` suffix by asking which part exists.
"""

from __future__ import annotations

import os

from pyrkt.errors import UsageError
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LOCAL_KINDS = ("oci", "oci-archive", "docker-archive")


class Source(Value):
    """``kind``: oci, oci-archive, docker-archive, docker, https, aci-file or store."""

    kind: str
    location: str
    ref: str | None = None

    @property
    def is_local(self) -> bool:
        return self.kind in LOCAL_KINDS


def parse_source(arg: str, *, exists: Callable[[str], bool] = os.path.exists) -> Source:
    if arg.startswith("docker-archive:"):
        path, ref = split_path_ref(arg[len("docker-archive:"):], exists, ref_colons=True)
        return Source("docker-archive", path, ref)
    for kind in ("oci-archive", "oci"):
        if arg.startswith(kind + ":"):
            path, ref = split_path_ref(arg[len(kind) + 1:], exists, digests=arg)
            return Source(kind, path, ref)
    if arg.startswith("docker://"):
        return Source("docker", arg[len("docker://"):])
    if arg.startswith("docker:"):
        return Source("docker", arg[len("docker:"):])
    if arg.startswith(("https://", "http://")):
        return Source("https", arg)
    if arg.startswith("file://"):
        return Source("aci-file", arg[len("file://"):])
    if arg.endswith(".aci") or arg.startswith(("/", "./", "../")):
        return Source("aci-file", arg)
    return Source("store", arg)


SIGNED_KINDS = ("aci-file", "https", "store")  # an ACI's file or URL, or a name appc discovery may fetch


def check_signature(arg: str, source: Source) -> None:
    """Refuse ``--signature`` for an image that is not an ACI: it is appc's detached gpg
    signature of an ACI; OCI and Docker images have none of that kind, so it could not be checked."""
    if source.kind not in SIGNED_KINDS:
        raise UsageError(f"--signature cannot be used with {arg}: an OCI or Docker image has no appc detached "
                         "signature to check (--signature is an ACI's .asc file)")


def split_path_ref(text: str, exists: Callable[[str], bool], *, ref_colons: bool = False,
                   digests: str = "") -> tuple[str, str | None]:
    """``"/dir:1.0"`` -> ("/dir", "1.0") unless ``/dir:1.0`` itself exists.

    With ``ref_colons`` (docker-archive) the ref may hold colons itself (``NAME:TAG``), so the
    path is the shortest prefix before a colon that exists. With ``digests`` (the argument as
    given, oci and oci-archive) ``"/dir@sha256:<hex>"`` -> ("/dir", "sha256:<hex>") when neither
    the whole nor its path before ":TAG" exists: an ``@`` in the last name starts a digest,
    which must be one (a UsageError naming the argument otherwise).
    """
    if exists(text):
        return text, None
    if digests and "@" in text.rpartition("/")[2] and not exists(text.rpartition(":")[0]):
        from pyrkt.fetch.reference import check_digest

        path, _, digest = text.rpartition("@")
        check_digest(digest, f"image reference {digests!r}")
        return path, digest
    if ":" not in text:
        return text, None
    if ref_colons:
        i = text.find(":")
        while i != -1:
            if exists(text[:i]):
                return text[:i], text[i + 1:] or None
            i = text.find(":", i + 1)
        path, _, ref = text.partition(":")
        return path, ref or None
    path, _, ref = text.rpartition(":")
    if "/" in ref:
        return text, None
    return path, ref or None

"""Docker image references as Docker users write them, parsed into registry, repository, tag, digest.

    nginx                          registry-1.docker.io  library/nginx   tag latest
    user/app:1.0                   registry-1.docker.io  user/app        tag 1.0
    host:5000/ns/name:tag          host:5000             ns/name         tag tag
    localhost/name@sha256:<hex>    localhost             name            digest sha256:<hex>

The first path component is a registry when it has a ``.`` or a ``:`` or is ``localhost``
(Docker's rule); ``docker.io`` and ``index.docker.io`` mean Docker Hub's API host. Pure.
"""

from __future__ import annotations

import re

from pyrkt.errors import ImageError, UsageError
from pyrkt.model.values import Value
from pyrkt.store.digests import parse_digest

DOCKER_HUB = "registry-1.docker.io"
HUB_ALIASES = ("docker.io", "index.docker.io", DOCKER_HUB)
DEFAULT_TAG = "latest"

# The distribution spec's grammar: lower-case path components joined by separators.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\]")


class Reference(Value):
    """One image in a registry: ``digest`` (when given) wins over ``tag`` for what is fetched."""

    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def name(self) -> str:
        """The name the image is stored under: ``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    @property
    def ref(self) -> str:
        """What the registry is asked for: the digest, or else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


DIGEST_FORMS = "sha256:<64 hex digits> or sha512:<128 hex digits>"


def check_digest(digest: str, what: str) -> None:
    """UsageError naming ``what`` (the reference as given) for a digest after ``@`` that is not
    ``algorithm:hex`` as the OCI image spec has it: lower-case hex, 64 digits for sha256, 128 for
    sha512."""
    try:
        parse_digest(digest)
    except ImageError:
        raise UsageError(f"invalid {what}: bad digest {digest!r}: want {DIGEST_FORMS}") from None


def parse_reference(text: str) -> Reference:
    """``text`` without its ``docker://`` or ``docker:`` prefix -> Reference; UsageError if malformed."""
    original = text
    if not text:
        raise UsageError("empty docker image reference")
    digest = None
    if "@" in text:
        text, _, digest = text.partition("@")
        check_digest(digest, f"docker image reference {original!r}")
    tag: str | None = None
    slash, colon = text.rfind("/"), text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise UsageError(f"invalid docker image reference {original!r}: bad tag {tag!r}")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
        host, port = _split_host_port(registry)
        if not _HOST.fullmatch(host) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise UsageError(f"invalid docker image reference {original!r}: bad registry {registry!r}")
        if registry in HUB_ALIASES:
            registry = DOCKER_HUB
    else:
        registry, repository = DOCKER_HUB, text
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not repository or not all(_COMPONENT.fullmatch(c) for c in repository.split("/")):
        raise UsageError(f"invalid docker image reference {original!r}: repository names are lower-case "
                         "letters, digits and separators (. _ __ -) joined by /")
    if digest is None and tag is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _split_host_port(registry: str) -> tuple[str, str]:
    """``host:5000`` -> ("host", "5000"); ``[::1]:5000`` -> ("[::1]", "5000")."""
    if registry.startswith("["):
        end = registry.find("]") + 1
        host, rest = registry[:end], registry[end:]
        return host, rest[1:] if rest.startswith(":") else rest
    host, _, port = registry.partition(":")
    return host, port

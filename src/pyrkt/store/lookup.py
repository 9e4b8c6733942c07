"""How an image argument names a stored image: an id prefix, ``name[:tag]`` or ``name@digest``.

Pure parsing; ``Store.resolve`` does the lookups. Ids are ``sha256:<hex prefix>`` (``sha512-``
for ACI ids as rkt printed them); a bare hex string is tried as an id prefix first and as a
name after. Tags default to ``latest``; Docker Hub short names also match their long forms.
"""

from __future__ import annotations

from pyrkt.errors import UsageError
from pyrkt.model.values import Value

MIN_ID_HEX = 2  # rkt: "image ID too short" below two hex digits
_ID_PREFIXES = ("sha256:", "sha512-")
_HEX_DIGITS = frozenset("0123456789abcdef")
DEFAULT_TAG = "latest"
DOCKER_HUB_NAMES = ("docker.io", "registry-1.docker.io", "index.docker.io")


class Lookup(Value):
    """``id_prefix`` set: look up by id; ``name`` set: by ref. A bare hex arg sets both."""

    id_prefix: str | None = None
    name: str | None = None
    version: str = DEFAULT_TAG
    digest: str | None = None


def split_name(ref: str) -> tuple[str, str | None, str | None]:
    """``"host:5000/a/b:1.0"`` -> ("host:5000/a/b", "1.0", None); ``"a@sha256:.."`` -> (a, None, digest)."""
    digest = None
    if "@" in ref:
        ref, _, digest = ref.partition("@")
    tag = None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1:]
    return ref, tag, digest


def parse_lookup(arg: str) -> Lookup:
    text = arg.strip()
    if not text:
        raise UsageError("empty image argument")
    for prefix in _ID_PREFIXES:
        if text.startswith(prefix):
            hexpart = text[len(prefix):].lower()
            if not _HEX_DIGITS.issuperset(hexpart):
                raise UsageError(f"invalid image ID {arg!r}: not hexadecimal")
            return Lookup(id_prefix=prefix + hexpart)
    name, tag, digest = split_name(text)
    if not name:
        raise UsageError(f"invalid image name {arg!r}")
    as_id = "sha256:" + text if _HEX_DIGITS.issuperset(text) and len(text) >= MIN_ID_HEX and tag is None and digest is None else None
    return Lookup(id_prefix=as_id, name=name, version=tag or DEFAULT_TAG, digest=digest)


def check_id_prefix(prefix: str) -> None:
    for p in _ID_PREFIXES:
        if prefix.startswith(p) and len(prefix) - len(p) < MIN_ID_HEX:
            raise UsageError(f"image ID too short: {prefix!r} (give at least {MIN_ID_HEX} hex digits)")


def name_candidates(name: str) -> list[str]:
    """``busybox`` also matches ``docker.io/library/busybox`` and the other Docker Hub spellings."""
    out = [name]
    first = name.split("/", 1)[0]
    if "/" not in name:
        out += [f"{hub}/library/{name}" for hub in DOCKER_HUB_NAMES]
    elif "." not in first and ":" not in first and first != "localhost":
        out += [f"{hub}/{name}" for hub in DOCKER_HUB_NAMES]
    return out

"""How an image argument names a stored image: an id prefix, or a name as rkt reads one.

Pure parsing and choosing; ``Store.find``/``resolve`` do the lookups. Ids are ``sha256:<hex
prefix>`` (``sha512-`` for ACI ids as rkt printed them); a bare hex string is tried as an id
prefix first and as a name after. A name is rkt's ``name[:version][,label=value...]`` (appc
``discovery.NewAppFromString``) or a Docker reference ``host:port/repo:tag`` / ``name@digest``.
As rkt's store (``GetACI``): a version asked for must match; with none, any version of the
name matches, ``latest`` preferred, then the newest import. Docker Hub short names also match
their long forms.
"""

from __future__ import annotations

from pyrkt.errors import UsageError
from pyrkt.model.names import is_ac_identifier
from pyrkt.model.values import Value

MIN_ID_HEX = 2  # rkt: "image ID too short" below two hex digits
_ID_PREFIXES = ("sha256:", "sha512-")
_HEX_DIGITS = frozenset("0123456789abcdef")
DEFAULT_TAG = "latest"
DOCKER_HUB_NAMES = ("docker.io", "registry-1.docker.io", "index.docker.io")


class Lookup(Value):
    """``id_prefix`` set: look up by id; ``name`` set: by name. A bare hex arg sets both.
    ``version`` None: any version (``latest`` preferred); ``labels``: each must be on the image."""

    id_prefix: str | None = None
    name: str | None = None
    version: str | None = None
    digest: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        """The name as rkt shows it: ``coreos.com/etcd:v3,os=linux``."""
        head = str(self.name)
        if self.digest:
            head += "@" + self.digest
        elif self.version is not None:
            head += ":" + self.version
        return ",".join([head, *(f"{k}={v}" for k, v in self.labels)])


class Candidate(Value):
    """One stored ref a name may mean: the image, its ref's version, labels and import time."""

    image_id: str
    version: str
    labels: tuple[tuple[str, str], ...]
    import_time: int


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


def parse_labels(arg: str, parts: list[str]) -> tuple[tuple[str, str], ...]:
    """rkt's ``,label=value`` parts: AC Identifier names, each once, never ``name``."""
    labels: dict[str, str] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq:
            raise UsageError(f"invalid image name {arg!r}: label {key!r} has no value (want label=value)")
        if key == "name":
            raise UsageError(f"invalid image name {arg!r}: 'name' is not a label")
        if not is_ac_identifier(key):
            raise UsageError(f"invalid image name {arg!r}: label name {key!r} is not a valid AC Identifier")
        if key in labels:
            raise UsageError(f"invalid image name {arg!r}: label {key!r} given twice")
        labels[key] = value
    return tuple(labels.items())


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
    head, *rest = text.split(",")
    labels = parse_labels(arg, rest)
    name, tag, digest = split_name(head)
    if not name:
        raise UsageError(f"invalid image name {arg!r}")
    version = dict(labels).get("version", tag)
    if tag is not None and "version" in dict(labels) and tag != version:
        raise UsageError(f"invalid image name {arg!r}: two versions, {tag!r} and {version!r}")
    if version == "":
        raise UsageError(f"invalid image name {arg!r}: empty version")
    labels = tuple((k, v) for k, v in labels if k != "version")
    plain = tag is None and digest is None and not rest
    as_id = "sha256:" + text if plain and _HEX_DIGITS.issuperset(text) and len(text) >= MIN_ID_HEX else None
    return Lookup(id_prefix=as_id, name=name, version=version, digest=digest, labels=labels)


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


def choose(candidates: list[Candidate], version: str | None,
           labels: tuple[tuple[str, str], ...]) -> Candidate | None:
    """rkt's ``GetACI`` among the refs of one name: every label asked for must be on the image
    and a version asked for must be the ref's; with no version asked, a ``latest`` ref wins,
    then the newest import."""
    fits = [c for c in candidates
            if (version is None or c.version == version) and all(kv in c.labels for kv in labels)]
    if not fits:
        return None
    return max(fits, key=lambda c: (version is None and c.version == DEFAULT_TAG, c.import_time))

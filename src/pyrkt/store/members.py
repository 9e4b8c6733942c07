"""What one layer tar member becomes, decided before anything touches the disk.

``plan_member`` normalises the member's path into components inside the layer, refuses absolute
paths and ``..`` (a layer never needs them), and recognises OCI whiteouts: ``dir/.wh.NAME``
hides ``dir/NAME`` of lower layers and ``dir/.wh..wh..opq`` makes ``dir`` opaque. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyrkt.errors import ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# aufs bookkeeping that some old Docker layers carry (hard-link dirs, metadata): never content.
AUFS_META_PREFIX = ".wh..wh."

# tar type flags (POSIX ustar + GNU), by what pyrkt makes of them.
_KINDS = {
    b"0": "file", b"\0": "file", b"7": "file", b"S": "file",
    b"1": "hardlink", b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo",
}


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """``kind``: file, dir, symlink, hardlink, char, block, fifo, whiteout, opaque or skip.

    ``parts`` is the path inside the layer (for ``whiteout`` the hidden entry's path, for
    ``opaque`` the directory's); ``link_parts`` is a hardlink's target inside the layer.
    """

    kind: str
    parts: tuple[str, ...]
    link_parts: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return "/".join(self.parts) or "."


def split_path(name: str, *, layer: str, member: str) -> tuple[str, ...]:
    """``"./usr//bin/"`` -> ("usr", "bin"); absolute paths and ``..`` are refused."""
    if name.startswith("/"):
        raise ImageError(f"layer {layer}: member {member!r} has an absolute path")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ImageError(f"layer {layer}: member {member!r} has a '..' path component")
        parts.append(part)
    return tuple(parts)


def plan_member(name: str, type_flag: bytes, linkname: str, *, layer: str) -> MemberPlan:
    """Classify one member; raise ImageError naming the layer and the member when it is unsafe."""
    parts = split_path(name, layer=layer, member=name)
    if any(p.startswith(AUFS_META_PREFIX) and p != OPAQUE_MARKER for p in parts):
        return MemberPlan("skip", parts)
    base = parts[-1] if parts else ""
    if base.startswith(WHITEOUT_PREFIX):
        if base == OPAQUE_MARKER:
            return MemberPlan("opaque", parts[:-1])
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise ImageError(f"layer {layer}: member {name!r} is a whiteout of nothing")
        return MemberPlan("whiteout", parts[:-1] + (hidden,))
    kind = _KINDS.get(type_flag)
    if kind is None:
        raise ImageError(f"layer {layer}: member {name!r} has unsupported tar type {type_flag!r}")
    if not parts and kind != "dir":
        raise ImageError(f"layer {layer}: member {name!r} would replace the layer's root directory")
    if kind == "hardlink":
        if linkname.startswith("/") or ".." in linkname.split("/"):
            raise ImageError(f"layer {layer}: member {name!r} is a hardlink to {linkname!r}, outside the layer")
        link = split_path(linkname, layer=layer, member=name)
        if not link:
            raise ImageError(f"layer {layer}: member {name!r} is a hardlink to the layer's root")
        return MemberPlan("hardlink", parts, link)
    return MemberPlan(kind, parts)


ACI_ROOTFS = "rootfs"
ACI_MANIFEST = "manifest"


def aci_member_path(name: str, *, layer: str, member: str) -> str | None:
    """An ACI member's path inside ``rootfs/`` ("." for rootfs itself), None for the manifest (or
    the tar's own "./"); anything else at the top of an ACI is refused."""
    parts = split_path(name, layer=layer, member=member)
    if not parts or parts == (ACI_MANIFEST,):
        return None
    if parts[0] != ACI_ROOTFS:
        raise ImageError(f"layer {layer}: member {member!r} is outside rootfs/ (an ACI holds only manifest and rootfs/)")
    return "/".join(parts[1:]) or "."

"""An image's filesystem as one tree: its unpacked layers merged as overlayfs would show them.

``plan_squash`` is pure: given what each layer holds (bottom first), it says which layer each
path of the merged tree comes from. A whiteout (char 0:0) hides the path and everything under
it in the layers below; an opaque dir (``trusted.overlay.opaque=y``) hides everything below it
in lower layers; a non-dir over a dir replaces the whole subtree; the topmost copy of a dir gives
its owner, mode and times. ``list_layer`` reads one layer dir into the planner's input, and
``entries`` walks the plan in tar order (parents first) yielding the real path of each entry.
``image export`` (ACI) and ``image extract``/``render`` follow the plan. A ``Whitelist`` (an
appc ``pathWhitelist``) filters each layer before the merge: ``entries(dirs, keep=…)``. A pod's
overlay upper dir is one more layer on top (``entries(dirs, upper=…)``, read by ``list_upper``):
``pyrkt export`` writes an app's image with the app's changes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pyrkt.errors import PyrktError
from pyrkt.kernel.trees import walk
from pyrkt.store.overlay import OPAQUE_XATTR, is_opaque, is_whiteout

# What overlayfs may leave in an upper dir besides whiteouts and opaque marks. A redirect (a
# renamed dir whose content stays in a lower layer) or a metacopy (a file whose data does) is
# not the whole entry: pyrkt mounts without redirect_dir and metacopy, so meeting one means
# the dir was written by something else, and it is refused rather than exported half. An
# "xwhiteout" (a regular file carrying the whiteout xattr, kernels 6.7+) hides like a whiteout.
UPPER_REDIRECT = "trusted.overlay.redirect"
UPPER_METACOPY = "trusted.overlay.metacopy"
UPPER_XWHITEOUT = "trusted.overlay.whiteout"


@dataclass(frozen=True, slots=True)
class LayerListing:
    """One layer's entries (relative paths, no leading slash) sorted parents first.

    ``kinds[path]`` is ``"dir"``, ``"whiteout"`` or ``"other"``; ``opaque`` holds the dirs
    marked opaque in this layer.
    """

    kinds: dict[str, str]
    opaque: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Whitelist:
    """appc's ``pathWhitelist``: the complete set of paths the rendered tree may hold.

    ``paths`` are relative (no leading slash); a dir that is a parent of a listed path stays
    too (the listed path needs it), and whiteouts always apply (they only hide what is below).
    """

    paths: frozenset[str]
    parents: frozenset[str]

    @classmethod
    def of(cls, paths: Iterable[str]) -> Whitelist:
        """From absolute paths as a manifest lists them (``/etc/app.conf``, ``/etc/ssl/``)."""
        rel = {p.strip("/") for p in paths}
        parents = {q.rsplit("/", 1)[0] for q in rel if "/" in q}
        out = set(parents)
        for q in parents:
            while "/" in q:
                q = q.rsplit("/", 1)[0]
                out.add(q)
        return cls(frozenset(rel), frozenset(out))

    def allows(self, path: str, kind: str) -> bool:
        if not path or kind == "whiteout" or path in self.paths:
            return True
        return kind == "dir" and path in self.parents


def filter_listing(layer: LayerListing, keep: Whitelist) -> LayerListing:
    """The entries of ``layer`` that ``keep`` allows (filtered before merging, as appc renders:
    a path the whitelist drops from an upper layer does not hide a lower layer's copy)."""
    kinds = {p: k for p, k in layer.kinds.items() if keep.allows(p, k)}
    return LayerListing(kinds, frozenset(d for d in layer.opaque if d in kinds))


def _drop_subtree(merged: dict[str, int], kinds: dict[str, str], path: str, *, keep_self: bool) -> None:
    """Forget what lies below ``path`` (and ``path`` itself unless ``keep_self``). Only a
    directory has anything below it: a whited-out file costs no scan of the merged tree."""
    if kinds.get(path) == "dir":
        prefix = path + "/" if path else ""
        for p in [p for p in merged if p.startswith(prefix) and p != path]:
            del merged[p]
            kinds.pop(p, None)
    if not keep_self:
        merged.pop(path, None)
        kinds.pop(path, None)


def plan_squash(layers: list[LayerListing]) -> dict[str, int]:
    """Path -> index (into ``layers``) of the layer whose entry the merged tree shows."""
    merged: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for i, layer in enumerate(layers):
        for d in sorted(layer.opaque, key=_depth):
            _drop_subtree(merged, kinds, d, keep_self=True)
        for path in sorted(layer.kinds, key=_depth):
            kind = layer.kinds[path]
            below = kinds.get(path)
            if kind == "whiteout":
                if below is not None:
                    _drop_subtree(merged, kinds, path, keep_self=False)
                continue
            if kind != "dir" and below == "dir":  # only a dir has a subtree to drop
                _drop_subtree(merged, kinds, path, keep_self=True)
            merged[path] = i
            kinds[path] = kind
    return merged


def _depth(path: str) -> tuple[int, str]:
    return (path.count("/") if path else -1, path)


def tar_order(paths: list[str]) -> list[str]:
    """Parents before children, siblings by name: the order a tar (and a copy) needs."""
    return sorted(paths, key=lambda p: p.split("/"))


def list_layer(root: Path) -> LayerListing:
    """What an unpacked layer dir holds, as ``plan_squash`` wants it (the root itself is ``""``)."""
    kinds: dict[str, str] = {"": "dir"}
    opaque: set[str] = set()
    for entry in walk(root):
        if stat.S_ISDIR(entry.st.st_mode):
            kinds[entry.rel] = "dir"
            if is_opaque(entry.short_path):
                opaque.add(entry.rel)
        elif is_whiteout(entry.st):
            kinds[entry.rel] = "whiteout"
        else:
            kinds[entry.rel] = "other"
    return LayerListing(kinds, frozenset(opaque))


def list_upper(root: Path, *, mount_points: frozenset[str] = frozenset()) -> tuple[LayerListing, frozenset[str]]:
    """What an overlay upper dir holds (the changes an app made to its root), as a layer, and
    which of ``mount_points`` (relative paths) it holds as an empty file or an empty dir.

    Whiteouts and opaque dirs are overlayfs' own forms, the same as in an unpacked layer; an
    xwhiteout counts as a whiteout; a redirected dir or a metacopy file is refused, naming it.
    """
    kinds: dict[str, str] = {"": "dir"}
    opaque: set[str] = set()
    empty: set[str] = set()
    for entry in walk(root):
        mode = entry.st.st_mode
        if is_whiteout(entry.st):
            kinds[entry.rel] = "whiteout"
            continue
        names = _overlay_xattrs(entry.short_path) if stat.S_ISDIR(mode) or stat.S_ISREG(mode) else set()
        for bad, what in ((UPPER_REDIRECT, "a renamed directory whose content it keeps elsewhere"),
                          (UPPER_METACOPY, "a file whose data it keeps in a lower layer")):
            if bad in names:
                raise PyrktError(f"cannot export /{entry.rel}: overlayfs left it as {what} ({bad})")
        if stat.S_ISDIR(mode):
            kinds[entry.rel] = "dir"
            if OPAQUE_XATTR in names and is_opaque(entry.short_path):
                opaque.add(entry.rel)
        elif UPPER_XWHITEOUT in names:
            kinds[entry.rel] = "whiteout"
        else:
            kinds[entry.rel] = "other"
        if entry.rel in mount_points and (stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and entry.st.st_size == 0)):
            empty.add(entry.rel)
    empty = {p for p in empty if kinds[p] != "dir" or not any(q.startswith(p + "/") for q in kinds)}
    return LayerListing(kinds, frozenset(opaque)), frozenset(empty)


def without(layer: LayerListing, paths: Iterable[str]) -> LayerListing:
    """``layer`` without the entries ``paths`` (files, or dirs with nothing below them)."""
    drop = set(paths)
    return LayerListing({p: k for p, k in layer.kinds.items() if p not in drop}, layer.opaque - drop)


def _overlay_xattrs(path: str) -> set[str]:
    try:
        return {n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("trusted.overlay.")}
    except OSError:
        return set()  # a file system without xattrs has no overlay marks either


def entries(layer_dirs: list[Path], *, keep: Whitelist | None = None, upper: Path | None = None,
            mount_points: frozenset[str] = frozenset()) -> Iterator[tuple[str, Path, int]]:
    """(relative path, real path, layer index) of each entry of the merged tree, parents first.

    The root (``""``) comes first; hardlinks show as several paths of one inode of one layer.
    ``keep``: only what the whitelist allows, from every layer. ``upper``: an overlay upper dir
    merged on top (its index is ``len(layer_dirs)``); ``mount_points``: paths where something
    was mounted over the merged tree: an empty file or dir the upper holds there, where no
    layer has one, is the mount point made for the mount, not a change, and is left out.
    """
    dirs = list(layer_dirs)
    listings = [list_layer(d) for d in dirs]
    if keep is not None:
        listings = [filter_listing(x, keep) for x in listings]
    if upper is not None:
        listing, made = list_upper(upper, mount_points=mount_points)
        dirs.append(upper)
        listings.append(without(listing, (p for p in made if not any(p in x.kinds for x in listings))))
    plan = plan_squash(listings)
    for rel in tar_order(list(plan)):
        i = plan[rel]
        yield rel, (dirs[i] / rel if rel else dirs[i]), i

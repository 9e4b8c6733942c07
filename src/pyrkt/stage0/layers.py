"""Looking a path up in an image's layers as overlayfs would show it, without mounting:
whiteouts (char 0:0) hide lower entries, opaque directories hide everything below them,
symlinks are followed inside the image. Used to refuse a missing executable at prepare time.
"""

from __future__ import annotations

import os
import stat

from pyrkt.store.overlay import is_opaque, is_whiteout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

MAX_LINKS = 40


def entry(layers_top_first: Sequence[str | Path], rel: str) -> tuple[str | Path, os.stat_result] | None:
    """The topmost layer's entry for ``rel`` (no symlink resolution), or None when absent."""
    parts = [p for p in rel.split("/") if p]
    for layer in layers_top_first:
        path = os.path.join(layer, *parts)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None:
            return None if is_whiteout(st) else (layer, st)
        # an opaque or whited-out ancestor in this layer hides the layers below it
        for i in range(len(parts) - 1, 0, -1):
            anc = os.path.join(layer, *parts[:i])
            try:
                ast = os.lstat(anc)
            except OSError:
                continue
            if is_whiteout(ast) or not stat.S_ISDIR(ast.st_mode) or is_opaque(anc):
                return None
    return None


def resolve(layers_top_first: Sequence[str | Path], path: str) -> os.stat_result | None:
    """stat() of ``path`` in the union, following symlinks within the image; None if absent."""
    found = resolve_path(layers_top_first, path)
    return found[1] if found is not None else None


def resolve_path(layers_top_first: Sequence[str | Path], path: str) -> tuple[str, os.stat_result] | None:
    """Where ``path`` is in the union once its symlinks are followed within the image (relative,
    no link left on it; ``""`` for the root), and its stat; None if absent."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        found = entry(layers_top_first, "/".join(done + [part]))
        if found is None:
            return None
        layer, st = found
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_LINKS:
                return None
            target = os.readlink(os.path.join(layer, *done, part))
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
        if todo and not stat.S_ISDIR(st.st_mode):
            return None
        if not todo:
            return "/".join(done), st
    return ("", entry(layers_top_first, "")[1]) if layers_top_first else None  # type: ignore[index]


def dir_layers(layers_top_first: Sequence[str | Path], rel: str) -> list[str]:
    """The layers whose directory ``rel`` (a resolved path, ``resolve_path``) overlayfs merges
    into what the image shows there, top first: down to the first layer that hides the rest
    (a whiteout or non-directory on the way, an opaque directory). [] when it is no directory."""
    parts = [p for p in rel.split("/") if p]
    out: list[str] = []
    for layer in layers_top_first:
        opaque_above = False
        for i in range(1, len(parts)):
            anc = os.path.join(layer, *parts[:i])
            try:
                ast = os.lstat(anc)
            except OSError:
                break
            if is_whiteout(ast) or not stat.S_ISDIR(ast.st_mode):
                return out
            opaque_above = opaque_above or is_opaque(anc)
        here = os.path.join(layer, *parts)
        try:
            st = os.lstat(here)
        except OSError:
            st = None
        if st is None:
            if opaque_above:
                return out
            continue
        if not stat.S_ISDIR(st.st_mode):
            return out
        out.append(str(here))
        if opaque_above or is_opaque(here):
            return out
    return out


def regular_file(layers_bottom_first: Sequence[str | Path], path: str) -> str | None:
    """The host path of the regular file the image shows at ``path`` (symlinks followed within
    the image), to read without mounting; None when it is absent or no regular file."""
    top_first = list(reversed(layers_bottom_first))
    found = resolve_path(top_first, path)
    if found is None or not stat.S_ISREG(found[1].st_mode):
        return None
    layer = entry(top_first, found[0])
    return os.path.join(layer[0], found[0]) if layer is not None else None


def find_executable(layers_bottom_first: Sequence[str | Path], name: str, path_env: str) -> str | None:
    """Where ``name`` would be found in the image (PATH search when it has no slash)."""
    layers = list(reversed(layers_bottom_first))
    if "/" in name:
        st = resolve(layers, name if name.startswith("/") else "/" + name)
        return name if st is not None and stat.S_ISREG(st.st_mode) else None
    for d in path_env.split(":"):
        if not d:
            continue
        candidate = f"{d.rstrip('/')}/{name}"
        st = resolve(layers, candidate)
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    return None

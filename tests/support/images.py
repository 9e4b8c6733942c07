"""Build real, tiny test images from the host's static busybox (Debian ``busybox-static``).

Three output formats, all deterministic (fixed mtimes, gzip without a timestamp, sorted JSON),
so the same call always gives the same image id::

    build_oci_layout(dir, tag="latest", cmd=("sh", "-c", "echo hi"))   # OCI image layout dir
    build_oci_archive(tar, ...)                                          # the same, as one tar
    build_docker_archive(tar, repo_tag="example/busybox:latest", ...)    # `docker save` format

The base layer holds ``/bin/busybox`` with a symlink per applet, ``/etc/passwd`` (root, ``app``
1000:1000, nobody 65534), ``/etc/group`` and ``/tmp`` (1777). ``extra_layers`` adds layers on
top, each a mapping ``{path: content}``:

- ``bytes``: a regular file (0644; give an ``Entry`` for anything else),
- ``None``: a whiteout of ``path`` (``dir/.wh.name``),
- a key ending in ``/.wh..wh..opq``: an opaque-dir marker (value ignored),
- a key ending in ``/``: a directory,
- an ``Entry``: any member kind (symlink, hardlink, device, xattrs, owner, mode).

Parent dirs are not written into extra layers (``layer_entries(parents_too=True)`` adds them),
so e.g. ``{"tmp/x": b""}`` leaves the base layer's 1777 ``/tmp`` as it is.

A layer may also be given as raw ``bytes`` of an uncompressed tar (see ``layer_tar``), written
as-is: that is how tests make hostile layers (``../x``, links out of the layer); or as a ready
``Layer`` (blob, diff id, media type), e.g. a decompression bomb from ``tests.support.bombs``.

Also a script (used by ``make demo`` and the benchmarks); it prints the image id::

    python tests/support/images.py oci|oci-archive|docker-archive DEST [--tag T] [--platform OS/ARCH]... [--cmd ARG...]
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUSYBOX = Path("/usr/bin/busybox")
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z: every member, so image ids are reproducible
CREATED = "2000-01-01T00:00:00Z"
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class Entry:
    """One tar member. ``kind``: file, dir, symlink, hardlink, char, block, fifo."""

    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    target: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Mapping[str, str] = field(default_factory=dict)
    mtime: int = FIXED_MTIME

    @staticmethod
    def file(data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, **kw: Any) -> Entry:
        return Entry("file", data=data, mode=mode, uid=uid, gid=gid, **kw)

    @staticmethod
    def dir(mode: int = 0o755, uid: int = 0, gid: int = 0, **kw: Any) -> Entry:
        return Entry("dir", mode=mode, uid=uid, gid=gid, **kw)

    @staticmethod
    def symlink(target: str) -> Entry:
        return Entry("symlink", target=target, mode=0o777)

    @staticmethod
    def hardlink(target: str) -> Entry:
        return Entry("hardlink", target=target)

    @staticmethod
    def char(major: int, minor: int, mode: int = 0o666) -> Entry:
        return Entry("char", devmajor=major, devminor=minor, mode=mode)


_TAR_TYPES = {
    "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def layer_tar(entries: Iterable[tuple[str, Entry]]) -> bytes:
    """An uncompressed tar of ``entries`` in the order given, names written exactly as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for name, e in entries:
            info = tarfile.TarInfo(name)
            info.type = _TAR_TYPES[e.kind]
            info.mode = e.mode if e.mode is not None else (0o755 if e.kind == "dir" else 0o644)
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            info.mtime = e.mtime
            info.linkname = e.target
            info.devmajor, info.devminor = e.devmajor, e.devminor
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.kind == "file":
                info.size = len(e.data)
                tf.addfile(info, io.BytesIO(e.data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def layer_entries(spec: Mapping[str, bytes | Entry | None], *, parents_too: bool = False) -> list[tuple[str, Entry]]:
    """Turn the ``extra_layers`` mapping form into ordered tar members.

    Parent dirs are not listed (a layer tar need not, and the unpacker then keeps the lower
    layers' attributes, e.g. /tmp stays 1777); ``parents_too`` adds them as 0755 root dirs.
    """
    out: list[tuple[str, Entry]] = []
    seen: set[str] = set()

    def parents(path: str) -> None:
        if not parents_too:
            return
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in seen:
                seen.add(d)
                out.append((d, Entry.dir()))

    for key, value in spec.items():
        path = key.lstrip("/")
        if path.endswith("/.wh..wh..opq"):
            parents(path)
            out.append((path, Entry.file(b"")))
            continue
        if path.endswith("/"):
            path = path.rstrip("/")
            parents(path)
            if path not in seen:
                seen.add(path)
                out.append((path, value if isinstance(value, Entry) else Entry.dir()))
            continue
        parents(path)
        if value is None:
            head, _, base = path.rpartition("/")
            out.append((f"{head}/.wh.{base}" if head else f".wh.{base}", Entry.file(b"")))
        elif isinstance(value, Entry):
            seen.add(path)
            out.append((path, value))
        else:
            out.append((path, Entry.file(value)))
    return out


@functools.lru_cache(maxsize=1)
def busybox_applets() -> tuple[str, ...]:
    out = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout
    return tuple(sorted(a for a in out.split() if a and "/" not in a and a != "busybox"))


@functools.lru_cache(maxsize=1)
def base_layer_tar() -> bytes:
    entries: list[tuple[str, Entry]] = [
        ("bin", Entry.dir()),
        ("bin/busybox", Entry.file(BUSYBOX.read_bytes(), 0o755)),
    ]
    entries += [(f"bin/{a}", Entry.symlink("busybox")) for a in busybox_applets()]
    entries += [
        ("dev", Entry.dir()),
        ("etc", Entry.dir()),
        ("etc/passwd", Entry.file(PASSWD.encode())),
        ("etc/group", Entry.file(GROUP.encode())),
        ("home", Entry.dir()),
        ("home/app", Entry.dir(0o755, 1000, 1000)),
        ("proc", Entry.dir()),
        ("root", Entry.dir(0o700)),
        ("sbin", Entry.dir()),
        ("sys", Entry.dir()),
        ("tmp", Entry.dir(0o1777)),
        ("usr", Entry.dir()),
        ("usr/bin", Entry.dir()),
        ("usr/bin/env", Entry.symlink("/bin/busybox")),
        ("usr/sbin", Entry.dir()),
        ("var", Entry.dir()),
    ]
    return layer_tar(entries)


@functools.lru_cache(maxsize=64)
def compress(data: bytes, compression: str) -> bytes:
    if compression == "none":
        return data
    if compression == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
            gz.write(data)
        return buf.getvalue()
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(f"unknown compression {compression!r} (gzip, zstd, none)")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def host_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}.get(m, m)


@dataclass(frozen=True)
class Layer:
    diff_id: str
    blob: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.blob)


@dataclass(frozen=True)
class Built:
    """One image's bytes: config JSON and layers (bottom first)."""

    config: bytes
    layers: tuple[Layer, ...]
    arch: str
    variant: str = ""

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    def manifest(self, *, docker: bool = False, annotations: Mapping[str, str] | None = None) -> bytes:
        m: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json" if docker else MT_OCI_CONFIG,
                "digest": self.config_digest, "size": len(self.config),
            },
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else ly.media_type,
                 "digest": ly.digest, "size": len(ly.blob)}
                for ly in self.layers
            ],
        }
        if annotations:
            m["annotations"] = dict(annotations)
        return canonical_json(m)


def build_image(
    *,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = ("sh",),
    env: Sequence[str] = DEFAULT_ENV,
    user: str = "",
    workdir: str = "",
    exposed_ports: Sequence[str] = (),
    volumes: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    extra_layers: Sequence[Mapping[str, bytes | Entry | None] | bytes | Layer] = (),
    compression: str = "gzip",
    arch: str | None = None,
    variant: str = "",
    os_name: str = "linux",
) -> Built:
    """The config and layer blobs of one image (what every output format is made of)."""
    made: list[bytes | Layer] = [base_layer_tar()]
    for spec in extra_layers:  # a Layer (e.g. tests.support.bombs) is taken as it is
        made.append(spec if isinstance(spec, bytes | Layer) else layer_tar(layer_entries(spec)))
    layers = tuple(t if isinstance(t, Layer) else Layer(sha256(t), compress(t, compression), LAYER_MEDIA_TYPES[compression])
                   for t in made)
    arch = arch or host_arch()
    cfg: dict[str, Any] = {"Env": list(env)}
    if entrypoint:
        cfg["Entrypoint"] = list(entrypoint)
    if cmd:
        cfg["Cmd"] = list(cmd)
    if user:
        cfg["User"] = user
    if workdir:
        cfg["WorkingDir"] = workdir
    if exposed_ports:
        cfg["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in exposed_ports}
    if volumes:
        cfg["Volumes"] = {v: {} for v in volumes}
    if labels:
        cfg["Labels"] = dict(labels)
    config: dict[str, Any] = {
        "created": CREATED,
        "architecture": arch,
        "os": os_name,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [ly.diff_id for ly in layers]},
        "history": [{"created": CREATED, "created_by": f"pyrkt test layer {i}"} for i in range(len(layers))],
    }
    if variant:
        config["variant"] = variant
    return Built(canonical_json(config), layers, arch, variant)


# -- OCI image layout --------------------------------------------------------------------------


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return {"digest": digest, "size": len(data)}


def build_oci_layout(
    dest: Path,
    *,
    tag: str = "latest",
    name: str | None = None,
    platforms: Sequence[str] = (),
    **image: Any,
) -> Path:
    """Write (or add to) an OCI image layout at ``dest``; returns ``dest``.

    ``name`` records ``io.containerd.image.name=<name>:<tag>``; ``ref.name`` is always the tag.
    ``platforms`` (e.g. ``("linux/amd64", "linux/arm64/v8")``) writes a nested image index with
    one manifest per platform instead of a single manifest. Calling again with another tag adds
    that image to the same layout, replacing an entry with the same tag.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    annotations = {"org.opencontainers.image.ref.name": tag}
    if name:
        annotations["io.containerd.image.name"] = f"{name}:{tag}"
    if platforms:
        entries = []
        for plat in platforms:
            os_name, arch, *rest = plat.split("/")
            built = build_image(arch=arch, variant=rest[0] if rest else "", os_name=os_name, **image)
            desc = _write_image_blobs(dest, built)
            pl: dict[str, Any] = {"architecture": arch, "os": os_name}
            if rest:
                pl["variant"] = rest[0]
            entries.append({"mediaType": MT_OCI_MANIFEST, **desc, "platform": pl})
        nested = canonical_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries})
        top = {"mediaType": MT_OCI_INDEX, **_write_blob(dest, nested), "annotations": annotations}
    else:
        built = build_image(**image)
        top = {"mediaType": MT_OCI_MANIFEST, **_write_image_blobs(dest, built), "annotations": annotations}
    index_path = dest / "index.json"
    manifests: list[dict[str, Any]] = []
    if index_path.exists():
        old = json.loads(index_path.read_bytes())
        manifests = [m for m in old.get("manifests", [])
                     if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag]
    manifests.append(top)
    index_path.write_bytes(canonical_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests}))
    for p in (dest / "oci-layout", index_path):
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))
    return dest


def _write_image_blobs(layout: Path, built: Built) -> dict[str, Any]:
    _write_blob(layout, built.config)
    for ly in built.layers:
        _write_blob(layout, ly.blob)
    return _write_blob(layout, built.manifest())


def _tar_tree(dest_tar: Path, files: Iterable[tuple[str, bytes]]) -> Path:
    """A deterministic tar of (name, bytes) pairs, with the directories they need."""
    entries: list[tuple[str, Entry]] = []
    seen: set[str] = set()
    for name, data in sorted(files):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in seen:
                seen.add(d)
                entries.append((d, Entry.dir()))
        entries.append((name, Entry.file(data)))
    dest_tar = Path(dest_tar)
    dest_tar.parent.mkdir(parents=True, exist_ok=True)
    dest_tar.write_bytes(layer_tar(entries))
    return dest_tar


def build_oci_archive(dest_tar: Path, **kwargs: Any) -> Path:
    """The OCI layout of ``build_oci_layout(**kwargs)`` as one uncompressed tar (``oci-archive:``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        layout = build_oci_layout(Path(tmp) / "layout", **kwargs)
        files = [(str(p.relative_to(layout)), p.read_bytes()) for p in sorted(layout.rglob("*")) if p.is_file()]
    return _tar_tree(Path(dest_tar), files)


# -- docker save -------------------------------------------------------------------------------


def build_docker_archive(
    dest_tar: Path,
    *,
    repo_tag: str | None = "example/busybox:latest",
    more_images: Sequence[tuple[str | None, Mapping[str, Any]]] = (),
    compression: str = "none",
    **image: Any,
) -> Path:
    """A ``docker save`` tar: ``manifest.json``, ``<hex>.json`` configs, ``<hex>/layer.tar``.

    ``repo_tag=None`` leaves ``RepoTags`` empty (``docker save IMAGE-ID``). ``more_images`` adds
    further images as ``(repo_tag, kwargs)`` pairs. Layers are uncompressed unless asked.
    """
    files: dict[str, bytes] = {}
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for tag, kwargs in [(repo_tag, {**image, "compression": compression}), *more_images]:
        kwargs = dict(kwargs)
        kwargs.setdefault("compression", compression)
        built = build_image(**kwargs)
        config_name = built.config_digest.split(":", 1)[1] + ".json"
        files[config_name] = built.config
        layer_names = []
        for ly in built.layers:
            lname = ly.diff_id.split(":", 1)[1] + "/layer.tar"
            files[lname] = ly.blob
            layer_names.append(lname)
        manifest.append({"Config": config_name, "RepoTags": [tag] if tag else None, "Layers": layer_names})
        if tag:
            repo, _, t = tag.rpartition(":")
            repositories.setdefault(repo, {})[t] = built.layers[-1].diff_id.split(":", 1)[1]
    files["manifest.json"] = json.dumps(manifest, separators=(",", ":")).encode()
    if repositories:
        files["repositories"] = canonical_json(repositories)
    return _tar_tree(Path(dest_tar), files.items())


# -- reading back ------------------------------------------------------------------------------


def image_id_of(path: Path, tag: str | None = None) -> str:
    """The image id (config digest) of the image a built layout or archive holds."""
    path = Path(path)
    if path.is_dir():
        def read(name: str) -> bytes:
            return (path / name).read_bytes()
    else:
        tf = tarfile.open(path)

        def read(name: str) -> bytes:
            f = tf.extractfile(name)
            assert f is not None
            return f.read()
    try:
        docker = json.loads(read("manifest.json"))
    except (FileNotFoundError, KeyError):
        docker = None
    if docker is not None:
        pick = [m for m in docker if tag is None or tag in (m.get("RepoTags") or [])]
        return "sha256:" + pick[0]["Config"].split(".", 1)[0]
    index = json.loads(read("index.json"))
    descs = index["manifests"]
    if tag is not None:
        descs = [d for d in descs if (d.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag]
    desc = descs[0]
    while desc["mediaType"] == MT_OCI_INDEX:
        nested = json.loads(read("blobs/sha256/" + desc["digest"].split(":", 1)[1]))
        want = [d for d in nested["manifests"] if d.get("platform", {}).get("architecture") == host_arch()]
        desc = (want or nested["manifests"])[0]
    manifest = json.loads(read("blobs/sha256/" + desc["digest"].split(":", 1)[1]))
    return str(manifest["config"]["digest"])


# -- script ------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description="build a busybox test image")
    p.add_argument("kind", choices=["oci", "oci-archive", "docker-archive"])
    p.add_argument("dest", type=Path)
    p.add_argument("--tag", default="latest")
    p.add_argument("--name", default=None, help="image name (oci: io.containerd.image.name)")
    p.add_argument("--repo-tag", default="example/busybox:latest", help="docker-archive RepoTags entry")
    p.add_argument("--entrypoint", action="append", default=None, help="repeat for each word")
    p.add_argument("--env", action="append", default=None)
    p.add_argument("--user", default="")
    p.add_argument("--workdir", default="")
    p.add_argument("--port", action="append", default=[], help="exposed port, e.g. 80/tcp")
    p.add_argument("--compression", default=None, choices=["gzip", "zstd", "none"])
    p.add_argument("--platform", action="append", default=[],
                   help="os/arch[/variant] to build for (default: the host's); oci and oci-archive: repeat "
                        "for an image index of several platforms")
    p.add_argument("--cmd", nargs=argparse.REMAINDER, default=None, help="the image Cmd: all remaining args")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {"user": a.user, "workdir": a.workdir, "exposed_ports": a.port}
    if a.entrypoint:
        kw["entrypoint"] = a.entrypoint
    if a.env is not None:
        kw["env"] = a.env
    if a.cmd is not None:
        kw["cmd"] = a.cmd
    if a.compression:
        kw["compression"] = a.compression
    if len(a.platform) == 1:  # one platform: a single image built for it
        os_name, arch, *variant = a.platform[0].split("/")
        kw.update(os_name=os_name, arch=arch, variant=variant[0] if variant else "")
    elif a.platform and a.kind == "docker-archive":
        p.error("a docker archive holds no index: give one --platform at most")
    elif a.platform:
        kw["platforms"] = a.platform
    if a.kind == "oci":
        out = build_oci_layout(a.dest, tag=a.tag, name=a.name, **kw)
    elif a.kind == "oci-archive":
        out = build_oci_archive(a.dest, tag=a.tag, name=a.name, **kw)
    else:
        out = build_docker_archive(a.dest, repo_tag=a.repo_tag, **kw)
    print(image_id_of(out, None if a.kind == "docker-archive" else a.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

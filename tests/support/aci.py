"""Build real appc ACI files for tests: the busybox rootfs of ``images.py`` under ``rootfs/``.

    build_aci(path, name="example.com/app", exec_=("/bin/echo", "hi"))         # plain tar
    build_aci(path, compression="xz")                                          # gzip, bzip2, xz
    build_aci(path, manifest={...})                                            # any manifest dict
    build_aci(path, raw_manifest=b"not json")                                  # any manifest bytes
    build_aci(path, extra_members=[("etc/x", Entry.file(b""))])                # names as written
    build_files_aci(path, "example.com/app", {"/etc/x": b"1"},                  # files only, with
                    dependencies=[dependency("example.com/base", "1.0.0")],     # dependencies and
                    path_whitelist=["/etc/x"])                                  # a pathWhitelist

Deterministic (fixed mtimes, no gzip timestamp): the same call gives the same image id.
Also ``new_key(gnupghome)``, ``sign(path, gnupghome, fingerprint)`` (the ``.aci.asc`` beside
it) and ``stop_agent(gnupghome)``: gpg starts an agent per home to make and use keys; a test
that made keys stops it when done.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import platform
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.images import Entry, base_layer_tar, layer_entries, layer_tar


def appc_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "i686": "i386"}.get(m, m)


def aci_manifest(name: str = "example.com/app", *, version: str | None = "1.0.0",
                 exec_: Sequence[str] = ("/bin/echo", "hello from aci"), **app: Any) -> dict[str, Any]:
    labels = [{"name": "os", "value": "linux"}, {"name": "arch", "value": appc_arch()}]
    if version:
        labels.insert(0, {"name": "version", "value": version})
    return {
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": name, "labels": labels,
        "app": {"exec": list(exec_), "user": "0", "group": "0", **app},
    }


def _rootfs_members() -> bytes:
    """The busybox base layer with every name under ``rootfs/``, as tar bytes (no end marker)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(base_layer_tar())) as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        root = tarfile.TarInfo("rootfs")
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, 946684800
        dst.addfile(root)
        for info in src:
            f = src.extractfile(info) if info.isfile() else None
            info.name = "rootfs/" + info.name
            dst.addfile(info, f)
    return out.getvalue()


def aci_tar(manifest: Mapping[str, Any] | None = None, *, raw_manifest: bytes | None = None,
            extra_members: Iterable[tuple[str, Entry]] = (), with_rootfs: bool = True) -> bytes:
    """The uncompressed ACI tar."""
    data = raw_manifest if raw_manifest is not None else json.dumps(manifest or aci_manifest()).encode()
    head = layer_tar([("manifest", Entry.file(data))])
    parts = [head[:_end(head)]]
    if with_rootfs:
        body = _rootfs_members()
        parts.append(body[:_end(body)])
    extra = list(extra_members)
    if extra:
        tail = layer_tar(extra)
        parts.append(tail[:_end(tail)])
    blob = b"".join(parts) + b"\0" * 1024
    return blob + b"\0" * (-len(blob) % 10240)


def _end(tar: bytes) -> int:
    """Offset of the end-of-archive marker (members are concatenable up to there)."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.getmembers()
        return tf.offset


def compress(data: bytes, compression: str) -> bytes:
    if compression == "none":
        return data
    if compression == "gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(data)
        return buf.getvalue()
    if compression == "bzip2":
        return bz2.compress(data)
    if compression == "xz":
        return lzma.compress(data)
    raise ValueError(f"unknown compression {compression!r}")


def build_aci(dest: Path, manifest: Mapping[str, Any] | None = None, *, compression: str = "none",
              **kw: Any) -> str:
    """Write the ACI to ``dest``; returns its rkt image id (``sha512-`` + 64 hex)."""
    tar = aci_tar(manifest, **kw)
    dest.write_bytes(compress(tar, compression))
    return "sha512-" + hashlib.sha512(tar).hexdigest()[:64]


def dependency(name: str, version: str | None = None, *, image_id: str | None = None,
               **labels: str) -> dict[str, Any]:
    """One ``dependencies`` entry of an ImageManifest."""
    pairs = ([("version", version)] if version else []) + list(labels.items())
    out: dict[str, Any] = {"imageName": name}
    if pairs:
        out["labels"] = [{"name": k, "value": v} for k, v in pairs]
    if image_id:
        out["imageID"] = image_id
    return out


def build_files_aci(dest: Path, name: str, files: Mapping[str, bytes | Entry], *, version: str | None = "1.0.0",
                    busybox: bool = False, dependencies: Sequence[Mapping[str, Any]] = (),
                    path_whitelist: Sequence[str] | None = None, exec_: Sequence[str] = ("/bin/sh",)) -> str:
    """An ACI whose rootfs is ``files`` (path -> content; parents made 0755 unless ``busybox``),
    after the busybox rootfs when ``busybox``; returns its rkt image id."""
    manifest = aci_manifest(name, version=version, exec_=exec_)
    if dependencies:
        manifest["dependencies"] = [dict(d) for d in dependencies]
    if path_whitelist is not None:
        manifest["pathWhitelist"] = list(path_whitelist)
    members = [(f"rootfs/{n}", e) for n, e in layer_entries(dict(files), parents_too=not busybox)]
    if not busybox:
        members.insert(0, ("rootfs", Entry.dir()))
    return build_aci(dest, manifest, with_rootfs=busybox, extra_members=members)


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
                          check=True, capture_output=True, text=True, timeout=60)


def new_key(home: Path, email: str = "t@example.com") -> tuple[str, Path]:
    """A fresh ed25519 signing key in ``home``; (fingerprint, armored public key file)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _gpg(home, "--passphrase", "", "--quick-gen-key", f"pyrkt test <{email}>", "ed25519", "sign", "never")
    out = _gpg(home, "--with-colons", "--list-keys", email).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")).lower()
    pub = home / f"{fpr}.asc"
    pub.write_text(_gpg(home, "--armor", "--export", fpr).stdout)
    return fpr, pub


def sign(aci: Path, home: Path, fingerprint: str, dest: Path | None = None) -> Path:
    """A detached armored signature of ``aci`` (default ``<aci>.asc``)."""
    dest = dest or aci.with_name(aci.name + ".asc")
    dest.unlink(missing_ok=True)
    _gpg(home, "--local-user", fingerprint, "--armor", "--output", str(dest), "--detach-sign", str(aci))
    return dest


def stop_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, timeout=30,
                   check=False)

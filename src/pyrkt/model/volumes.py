"""Volumes and mounts: appc's pod-level ``volumes`` and per-app ``mounts``, and rkt's flags
that make them (``--volume``, ``--mount``).

A volume is ``host`` (a host path bound in, ``recursive`` and ``readOnly`` as asked) or
``empty`` (a directory made in the pod dir, ``$P/sharedVolumes/NAME``, with ``mode``/``uid``/
``gid``, removed with the pod). A host volume's ``propagation`` (a pyrkt addition, the CRI's
mount propagation) is ``private`` (the default), ``rslave`` (mounts the host makes below the
source later appear in the app) or ``rshared`` (and mounts the app makes there appear on the host). An app mount names a volume and the path in the app where it
goes; ``app_volume`` is appc's per-app inline volume (rkt's ``app add --mnt-volume``).

Unset options stay ``None``: the executor applies appc's and rkt's defaults (a host volume is
recursive unless the fly flavor runs it, and read-write unless the volume or the image's mount
point says read-only), and the manifest keeps what the user wrote.
"""

from __future__ import annotations

import posixpath

from pyrkt.errors import UsageError
from pyrkt.model.names import is_ac_name
from pyrkt.model.values import Value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("host", "empty")
PROPAGATIONS = (None, "private", "rslave", "rshared")
EMPTY_VOLUMES_DIR = "sharedVolumes"  # below the pod dir, as rkt's
TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# The kernel filesystems pyrkt mounts in every app's root itself (stage1.plan.app_mounts: /proc
# and a read-only /sys, with masks below them): a volume there would hide them or fail at start.
KERNEL_FS = ("/proc", "/sys")


class Volume(Value):
    name: str
    kind: str
    source: str = ""  # host only: an absolute host path
    read_only: bool | None = None
    recursive: bool | None = None  # host only
    mode: str | None = None  # empty only: octal text, appc's default "0755"
    uid: int | None = None  # empty only, default 0
    gid: int | None = None
    propagation: str | None = None  # host only: "private", "rslave" or "rshared"

    def check(self) -> Volume:
        """The volume if it is one appc allows, else a ``UsageError`` naming what is wrong."""
        if not is_ac_name(self.name):
            raise UsageError(f"volume name {self.name!r} is not a valid AC name")
        if self.kind == "host":
            if not self.source.startswith("/"):
                raise UsageError(f"volume {self.name}: source for host volume must be an absolute path")
            if self.mode is not None or self.uid is not None or self.gid is not None:
                raise UsageError(f"volume {self.name}: mode, uid and gid are for empty volumes only")
            if self.propagation not in PROPAGATIONS:
                raise UsageError(f"volume {self.name}: invalid propagation {self.propagation!r}: want "
                                 + ", ".join(p for p in PROPAGATIONS if p))
        elif self.kind == "empty":
            if self.propagation is not None:
                raise UsageError(f"volume {self.name}: propagation is for host volumes only")
            if self.source:
                raise UsageError(f"volume {self.name}: source for empty volume must be empty")
            if self.recursive is not None:
                raise UsageError(f"volume {self.name}: recursive is for host volumes only")
            if self.mode is not None:
                try:
                    mode = int(self.mode, 8)
                except ValueError:
                    mode = -1
                if not 0 <= mode <= 0o7777:
                    raise UsageError(f"volume {self.name}: invalid mode {self.mode!r}: want an octal mode like 0755")
            for what, n in (("uid", self.uid), ("gid", self.gid)):
                if n is not None and not 0 <= n < 1 << 32:
                    raise UsageError(f"volume {self.name}: invalid {what} {n}")
        else:
            raise UsageError(f'volume {self.name}: unrecognized volume kind {self.kind!r}: should be one of "empty", "host"')
        return self

    @property
    def file_mode(self) -> int:
        return int(self.mode, 8) if self.mode is not None else 0o755

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.source:
            out["source"] = self.source
        for key, v in (("readOnly", self.read_only), ("recursive", self.recursive), ("mode", self.mode),
                       ("uid", self.uid), ("gid", self.gid), ("propagation", self.propagation)):
            if v is not None:
                out[key] = v
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Volume:
        """A volume of a pod manifest (keys as appc spells them); checked."""
        if not isinstance(d, dict):
            raise UsageError("volume: want an object")

        def opt(key: str, typ: type) -> Any:
            v = d.get(key)
            if v is not None and (not isinstance(v, typ) or (typ is int and isinstance(v, bool))):
                raise UsageError(f"volume {d.get('name')!r}: {key} must be a {typ.__name__}")
            return v

        return cls(str(d.get("name") or ""), str(d.get("kind") or ""), str(d.get("source") or ""),
                   opt("readOnly", bool), opt("recursive", bool), opt("mode", str), opt("uid", int),
                   opt("gid", int), opt("propagation", str)).check()


class AppMount(Value):
    """appc's app ``mounts`` entry: volume ``volume`` at ``path`` in the app."""

    volume: str
    path: str
    app_volume: Volume | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"volume": self.volume, "path": self.path}
        if self.app_volume is not None:
            out["appVolume"] = self.app_volume.to_json()
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AppMount:
        if not isinstance(d, dict) or not isinstance(d.get("volume"), str) or not isinstance(d.get("path"), str):
            raise UsageError("mount: want an object with a volume and a path")
        av = d.get("appVolume")
        return cls(d["volume"], d["path"], Volume.from_json(av) if av is not None else None)


def _options(text: str, flag: str, first: str) -> dict[str, str]:
    """``first``=the text before the first comma, then ``key=value`` pairs (rkt parses these as
    a URL query: ``%XX`` escapes are decoded); a key given twice is an error."""
    out: dict[str, str] = {}
    for i, part in enumerate(text.split(",")):
        key, eq, value = part.partition("=")
        if i == 0 and first:
            key, eq, value = first, "=", part
        if not eq:
            raise UsageError(f"invalid {flag}={text}: {part!r} is not KEY=VALUE")
        if "%" in part:  # urllib only then: it stays off the run path
            from urllib.parse import unquote

            key, value = unquote(key), unquote(value)
        if key in out:
            raise UsageError(f"invalid {flag}={text}: {key} given more than once")
        out[key] = value
    return out


def _bool(value: str, key: str, flag: str, text: str) -> bool:
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise UsageError(f"invalid {flag}={text}: {key}={value!r} is not a boolean")


def parse_volume(text: str) -> Volume:
    """rkt's ``--volume=NAME,kind=host,source=PATH[,readOnly=BOOL][,recursive=BOOL]`` (with
    pyrkt's ``[,propagation=private|rslave|rshared]``) or
    ``--volume=NAME,kind=empty[,mode=0755][,uid=N][,gid=N]`` (keys as rkt spells them)."""
    opts = _options(text, "--volume", "name")
    vol = Volume(opts.pop("name"), opts.pop("kind", ""))
    for key, value in opts.items():
        if key == "source":
            vol = vol.replace(source=value)
        elif key in ("readOnly", "recursive"):
            vol = vol.replace(**{"read_only" if key == "readOnly" else key: _bool(value, key, "--volume", text)})
        elif key in ("mode", "propagation"):
            vol = vol.replace(**{key: value})
        elif key in ("uid", "gid"):
            if not value.isdigit():
                raise UsageError(f"invalid --volume={text}: {key}={value!r} is not a number")
            vol = vol.replace(**{key: int(value)})
        else:
            raise UsageError(f"invalid --volume={text}: unknown volume parameter {key!r}")
    if not vol.kind:
        raise UsageError(f"invalid --volume={text}: no kind (want kind=host or kind=empty)")
    try:
        return vol.check()
    except UsageError as e:
        raise UsageError(f"invalid --volume={text}: {e}") from None


def kernel_fs(target: str) -> str:
    """The kernel filesystem of ``KERNEL_FS`` that the absolute path ``target`` is or is below
    (as the kernel resolves it: "//sys", "/sys/.", "/x/../proc/y" count), else ""."""
    path = posixpath.normpath("/" + target.lstrip("/"))
    return next((fs for fs in KERNEL_FS if path == fs or path.startswith(fs + "/")), "")


def check_target(target: str) -> None:
    """UsageError for a mount target pyrkt cannot honour, named as written (the caller adds
    where it comes from): one at or below /proc or /sys, which pyrkt mounts itself."""
    fs = kernel_fs(target)
    if fs:
        where = "is" if posixpath.normpath("/" + target.lstrip("/")) == fs else "is below"
        raise UsageError(f"mount target {target} {where} {fs}, which pyrkt mounts in the app itself: "
                         "mount the volume elsewhere")


def parse_mount(text: str) -> AppMount:
    """rkt's ``--mount=volume=NAME,target=PATH``."""
    opts = _options(text, "--mount", "")
    unknown = sorted(set(opts) - {"volume", "target"})
    if unknown:
        raise UsageError(f"invalid --mount={text}: unknown mount parameter {unknown[0]!r}")
    if not opts.get("volume") or not opts.get("target"):
        raise UsageError(f"invalid --mount={text}: want volume=NAME,target=PATH")
    if not is_ac_name(opts["volume"]):
        raise UsageError(f"invalid --mount={text}: volume name {opts['volume']!r} is not a valid AC name")
    if not opts["target"].startswith("/"):
        raise UsageError(f"invalid --mount={text}: target must be an absolute path")
    try:
        check_target(opts["target"])
    except UsageError as e:
        raise UsageError(f"invalid --mount={text}: {e}") from None
    return AppMount(opts["volume"], opts["target"])

"""What a pod dir says about its pod, read for display: apps, images, app states, networks,
times and pid, as ``PodInfo`` values (and rkt's v1 JSON model of them).

Reading never takes the pod lock and never fails on a pod that moves or vanishes meanwhile:
files are read relative to one open fd of the pod dir, so a rename by a concurrent `gc` does
not change what is read, and a file that is missing is simply absent from the result.
"""

from __future__ import annotations

import os

from pyrkt.model import abi, jsonio
from pyrkt.model.image import Image
from pyrkt.model.pod import PodManifest
from pyrkt.model.values import Value
from pyrkt.model.volumes import EMPTY_VOLUMES_DIR
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# pod states in which apps have stopped for good (rkt's pod.IsAfterRun)
AFTER_RUN = frozenset({State.EXITED, State.EXITED_GARBAGE, State.EXITED_DELETING, State.DELETING,
                       State.GARBAGE})
# states a pod can never leave except by being deleted (rkt's pod.IsFinished)
FINISHED = frozenset({State.EXITED, State.EXITED_GARBAGE, State.ABORTED_PREPARE, State.GARBAGE,
                      State.GONE})


class NetInfo(Value):
    """One network the pod joined, as written to ``net-info.json``."""

    net_name: str
    if_name: str = ""
    ip: str = ""
    net_conf: str = ""
    plugin_path: str = ""
    args: str = ""
    mask: str = ""

    def to_v1(self) -> dict[str, Any]:
        return {"netName": self.net_name, "netConf": self.net_conf, "pluginPath": self.plugin_path,
                "ifName": self.if_name, "ip": self.ip, "args": self.args, "mask": self.mask}


class MountInfo(Value):
    name: str
    container_path: str
    host_path: str = ""
    read_only: bool = False


class AppInfo(Value):
    """One app of a pod. Times are nanoseconds since the epoch."""

    name: str
    image_name: str  # name:version of the app's image; "--" when the pod's copy is unreadable
    image_id: str
    state: str  # "unknown" | "created" | "running" | "exited"
    created_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    exit_code: int | None = None
    mounts: tuple[MountInfo, ...] = ()
    user_annotations: tuple[tuple[str, str], ...] = ()
    user_labels: tuple[tuple[str, str], ...] = ()
    oom_killed: bool = False  # its main process was killed by the kernel's OOM killer
    # 128 + the signal that ended an app the pod stopped, which rkt's rule records as 0
    # (``exit_code``); what the CRI reports, as containerd does
    signaled_code: int | None = None
    limits: tuple[tuple[str, int], ...] = ()  # what its cgroup was given (model.isolators.describe)
    annotations: tuple[tuple[str, str], ...] = ()  # the pod manifest's, for this app
    image: Image | None = None  # the pod's own copy of the app's image; None when unreadable

    def to_v1(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state}
        for key, value in (("created_at", self.created_at), ("started_at", self.started_at),
                           ("finished_at", self.finished_at), ("exit_code", self.exit_code)):
            if value is not None:
                out[key] = value
        if self.oom_killed:
            out["oom_killed"] = True
        if self.limits:
            out["limits"] = dict(self.limits)
        out["image_id"] = self.image_id
        if self.mounts:
            out["mounts"] = [{"name": m.name, "container_path": m.container_path, "host_path": m.host_path,
                              "read_only": m.read_only} for m in self.mounts]
        if self.user_annotations:
            out["user_annotations"] = dict(self.user_annotations)
        if self.user_labels:
            out["user_labels"] = dict(self.user_labels)
        return out


class PodInfo(Value):
    """A sample of one pod's state. Times are nanoseconds since the epoch."""

    uuid: str
    state: State
    where: Dir
    created_at: int | None = None
    started_at: int | None = None
    gc_marked_at: int | None = None
    pid: int | None = None
    ready: bool = False
    networks: tuple[NetInfo, ...] = ()
    apps: tuple[AppInfo, ...] = ()
    user_annotations: tuple[tuple[str, str], ...] = ()
    user_labels: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()  # what could not be read, one line each
    annotations: tuple[tuple[str, str], ...] = ()  # the pod manifest's
    cgroup: str = ""  # of a running pod: its cgroup below each hierarchy root ("/pyrkt/<uuid>")

    @property
    def exited(self) -> bool:
        return self.state in (State.EXITED, State.EXITED_GARBAGE)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def exit_codes(self) -> list[tuple[str, int]]:
        """(app, exit code) for every app that recorded one, in manifest order."""
        return [(a.name, a.exit_code) for a in self.apps if a.exit_code is not None]

    def to_v1(self) -> dict[str, Any]:
        """rkt's ``v1.Pod`` JSON (api/v1/json.go): ``name`` is the UUID; empty fields are left out."""
        out: dict[str, Any] = {"name": self.uuid, "state": self.state.value}
        if self.networks:
            out["networks"] = [n.to_v1() for n in self.networks]
        if self.apps:
            out["app_names"] = [a.name for a in self.apps]
            out["apps"] = [a.to_v1() for a in self.apps]
        if self.created_at is not None:
            out["created_at"] = self.created_at
        if self.started_at is not None:
            out["started_at"] = self.started_at
        if self.user_annotations:
            out["user_annotations"] = dict(self.user_annotations)
        if self.user_labels:
            out["user_labels"] = dict(self.user_labels)
        return out


def read_pod(pod: Pod) -> PodInfo | None:
    """Everything `list` and `status` show about ``pod``; None when it is gone."""
    state = pod.state
    if state == State.GONE:
        return None
    try:
        fd = os.open(pod.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        # moved on since the state was sampled: sample again from its new place
        if not pod.relocate():
            return None
        return read_pod(pod)
    try:
        return _read(pod, state, PodDirReader(fd))
    finally:
        os.close(fd)


class PodDirReader:
    """Reads files of one pod dir through an fd on it, treating a missing file as None."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def text(self, name: str) -> str | None:
        try:
            f = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with open(f, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def mtime_ns(self, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=self.fd).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return None

    def ctime_ns(self) -> int:
        return os.fstat(self.fd).st_ctime_ns

    def link(self, name: str) -> str | None:
        try:
            return os.readlink(name, dir_fd=self.fd)
        except OSError:  # missing, or not a symlink
            return None


def _read(pod: Pod, state: State, r: PodDirReader) -> PodInfo:
    problems: list[str] = []
    created = r.mtime_ns(abi.POD_CREATED) or r.mtime_ns(abi.POD_MANIFEST)
    gc_marked = r.ctime_ns() if pod.where in (Dir.EXITED_GARBAGE, Dir.GARBAGE) else None
    raw: dict[str, Any] = {}
    manifest: PodManifest | None = None
    text = r.text(abi.POD_MANIFEST)
    if text is not None:
        try:
            raw = jsonio.loads(text)
            manifest = PodManifest.from_json(raw)
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"pod {pod.uuid}: unreadable pod manifest {abi.POD_MANIFEST!r}: {e}")
    apps: list[AppInfo] = []
    if manifest is not None:
        volumes = {v.get("name"): _with_source(v, pod.path) for v in raw.get("volumes") or () if isinstance(v, dict)}
        limited = (r.text(abi.FLAVOR) or "default").strip() != "fly"  # fly: no cgroups, no limits
        for ra, raw_app in zip(manifest.apps, raw.get("apps") or (), strict=False):
            app = _read_app(r, ra.name, ra.image.id, ra.image.name, state, gc_marked, raw_app, volumes,
                            problems, pod.uuid)
            if limited:
                app = app.replace(limits=_limits(ra.app.isolators, problems, pod.uuid, ra.name))
            apps.append(app.replace(annotations=ra.annotations) if ra.annotations else app)
    networks = read_networks(r, problems, pod.uuid)
    return PodInfo(
        uuid=pod.uuid,
        state=state,
        where=pod.where,
        created_at=created,
        started_at=r.mtime_ns(abi.PID),
        gc_marked_at=gc_marked,
        pid=parse_int(r.text(abi.PID)),
        ready=r.link(abi.SUPERVISOR_STATUS) == "ready",
        networks=networks,
        apps=tuple(apps),
        user_annotations=manifest.user_annotations if manifest else (),
        user_labels=manifest.user_labels if manifest else (),
        problems=tuple(problems),
        annotations=manifest.annotations if manifest else (),
        cgroup=_cgroup(r) if state == State.RUNNING else "",
    )


def _cgroup(r: PodDirReader) -> str:
    """``subcgroup`` as a path from the hierarchy's root (rkt adds the leading slash too)."""
    sub = (r.text(abi.SUBCGROUP) or "").strip()
    return "/" + sub.lstrip("/") if sub else ""


def app_created_stamp(app: str) -> str:
    return abi.app_status(app) + "-created"


def app_started_stamp(app: str) -> str:
    return abi.app_status(app) + "-started"


def _read_app(r: PodDirReader, name: str, image_id: str, image_name: str, pod_state: State,
              gc_marked: int | None, raw_app: dict[str, Any], volumes: dict[Any, dict[str, Any]],
              problems: list[str], uuid: str) -> AppInfo:
    """rkt's app state rules: -created, -started and status stamps, in that order."""
    image = _app_image(r, name, problems, uuid)
    display = (image.display_name if image is not None else "") or image_name or "--"
    created = r.mtime_ns(app_created_stamp(name))
    started = r.mtime_ns(app_started_stamp(name)) if created is not None else None
    finished = r.mtime_ns(abi.app_status(name)) if started is not None else None
    code = parse_int(r.text(abi.app_status(name))) if finished is not None else None
    if finished is not None:
        state = "exited"
    elif started is not None:
        state = "running"
    elif created is not None or pod_state == State.PREPARED:
        state = "created"
    else:
        state = "unknown"
    if pod_state in AFTER_RUN and state != "exited":
        # pod init was killed before it could record this app: it is gone all the same
        state = "exited"
        finished = gc_marked
    app_section = _object(raw_app.get("app"))
    oom = code is not None and r.mtime_ns(abi.app_status(name) + "-oom-killed") is not None
    signaled = parse_int(r.text(abi.app_status(name) + "-signaled")) if code == 0 else None
    return AppInfo(
        name=name,
        image_name=display,
        image_id=image_id,
        state=state,
        created_at=created,
        started_at=started,
        finished_at=finished,
        exit_code=code,
        mounts=_mounts(raw_app, volumes),
        user_annotations=_pairs(app_section.get("userAnnotations")),
        user_labels=_pairs(app_section.get("userLabels")),
        oom_killed=oom,
        signaled_code=signaled,
        image=image,
    )


def _limits(isolators: tuple[tuple[str, Any], ...], problems: list[str], uuid: str,
            app: str) -> tuple[tuple[str, int], ...]:
    from pyrkt.errors import UsageError
    from pyrkt.model import isolators as iso

    try:
        return tuple(iso.describe(*iso.limits(isolators)).items())
    except UsageError as e:
        problems.append(f"pod {uuid}: app {app}: {e}")
        return ()


def _app_image(r: PodDirReader, app: str, problems: list[str], uuid: str) -> Image | None:
    """The pod's own copy of the app's image (its ``name:version`` survives `image rm`)."""
    text = r.text(abi.app_manifest(app))
    if text is None:
        return None
    try:
        return Image.from_json(jsonio.loads(text))
    except (ValueError, KeyError, TypeError) as e:
        problems.append(f"pod {uuid}: unreadable image manifest {abi.app_manifest(app)!r}: {e}")
        return None


def _with_source(volume: dict[str, Any], pod_path: Any) -> dict[str, Any]:
    """An empty volume with the directory it is in the pod dir as its ``source``."""
    if volume.get("kind") != "empty":
        return volume
    return {**volume, "source": os.path.join(pod_path, EMPTY_VOLUMES_DIR, str(volume.get("name", "")))}


def _mounts(raw_app: dict[str, Any], volumes: dict[Any, dict[str, Any]]) -> tuple[MountInfo, ...]:
    """The app's mounts, read-only as stage1 mounts them: as the volume says, else as the
    app's mount point of the volume's name."""
    points = {p.get("name"): bool(p.get("readOnly", False)) for p in _object(raw_app.get("app")).get("mountPoints") or ()
              if isinstance(p, dict)}
    out = []
    for m in raw_app.get("mounts") or ():
        if not isinstance(m, dict):
            continue
        vol = _object(m.get("appVolume")) or volumes.get(m.get("volume"), {})
        ro = vol.get("readOnly")
        out.append(MountInfo(name=str(m.get("volume", "")), container_path=str(m.get("path", "")),
                             host_path=str(vol.get("source", "")),
                             read_only=bool(ro) if ro is not None else points.get(m.get("volume"), False)))
    return tuple(out)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):
        return tuple((str(k), str(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple((str(x["name"]), str(x["value"])) for x in value if isinstance(x, dict) and "name" in x)
    return ()


def read_networks(r: PodDirReader, problems: list[str], uuid: str) -> tuple[NetInfo, ...]:
    """``net-info.json``: a list of networks; no file means no networks (host or none)."""
    text = r.text(abi.NET_INFO)
    if text is None:
        return ()
    try:
        entries = jsonio.loads(text)
        return tuple(
            NetInfo(net_name=str(e.get("netName", "")), if_name=str(e.get("ifName", "")),
                    ip=str(e.get("ip") or ""), net_conf=str(e.get("netConf", "")),
                    plugin_path=str(e.get("pluginPath", "")), args=str(e.get("args", "")),
                    mask=str(e.get("mask") or ""))
            for e in entries or ()
        )
    except (ValueError, AttributeError, TypeError) as e:
        problems.append(f"pod {uuid}: unreadable network info {abi.NET_INFO!r}: {e}")
        return ()


def parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None

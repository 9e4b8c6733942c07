"""Mutable pods (rkt's `app sandbox`, `app add|start|stop|rm|list|status`, pyrkt's `app exec`).

A sandbox is a pod run detached with no app, its manifest annotated
``coreos.com/rkt/stage1/mutable=true``; its pod init stays up until the pod is stopped. Pod init
holds the pod dir's lock, so the `app` commands serialise on another one, the pod's
``apps-lock`` file, held for the whole command: a command killed at any point releases it and
leaves the pod dir as one of the states below, which the next command (or gc) takes from there.

- ``add``: the app is planned as `run` plans one (``prepare.reify``, ``volumes.satisfy`` with
  ``--mnt-volume`` as an app volume, ``lay_out_app``), its dirs laid out, then the manifest
  rewritten (renamed into place) with it: until then it does not exist, and what a killed add
  left of it is cleared by the next add of that name. State: created.
  Pod init is then told to prepare it (``stage1.mutable.tell_pod_init``): it sets the app up
  in a child held before the exec, which `app start` releases.
- ``start``/``stop``/``rm``: asked of pod init through the pod dir (``stage1.mutable.
  ask_pod_init``); rkt's status files say the state (``-started`` stamp: running, exit code:
  exited). ``rm`` stops the app, has pod init forget it, takes it out of the manifest, then
  removes its dirs and cgroups.
"""

from __future__ import annotations

import os
import time

from pyrkt.config import Config, check_writable
from pyrkt.errors import InvalidState, NotFound, UsageError, quote
from pyrkt.kernel import fs, lock
from pyrkt.model import abi, jsonio
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO

    from pyrkt.fetch.ui import FetchUI
    from pyrkt.model.devices import HostDevice
    from pyrkt.model.idmap import IdRange
    from pyrkt.model.pod import PodManifest, PodPort
    from pyrkt.model.volumes import Volume
    from pyrkt.pods.info import AppInfo
    from pyrkt.stage0.prepare import AppRequest, PodRequest
    from pyrkt.stage0.run import RunOptions
    from pyrkt.stage1.default import DefaultFlavor


def sandbox(config: Config, req: PodRequest, opts: RunOptions, out: TextIO, *, ui: FetchUI | None = None) -> int:
    """Start an empty mutable pod, detached; prints its UUID."""
    from pyrkt.stage0 import run
    from pyrkt.stage1 import flavor

    if flavor.canonical(req.stage1_name) != "default":
        raise UsageError(f"app sandbox works with the default stage1 flavor only, not {req.stage1_name}")
    req.mutable = True
    req.annotations = [(k, v) for k, v in req.annotations if k != abi.MUTABLE_ANNOTATION]
    req.annotations.append((abi.MUTABLE_ANNOTATION, "true"))
    opts.mutable = opts.detach = True
    run.check_options(config, opts)
    run.check_ports(bool(req.ports), opts)
    run.prime_cgroups(req.stage1_name)
    from pyrkt.pods.state import Dir
    from pyrkt.stage0.prepare import discard, prepare, use_overlay

    overlay = use_overlay(config, req, ui)
    pod = prepare(config, req, ui=ui)
    try:
        fs.touch(pod.file(abi.APPS_LOCK))
        if overlay:  # how the apps added later get their root
            os.mkdir(pod.file(abi.OVERLAY))
        pod.transition(Dir.RUN)
    except BaseException:
        discard(pod)
        raise
    return run.start(config, pod, opts, out)


def parse_sandbox_ports(specs: list[str]) -> tuple[PodPort, ...]:
    """`app sandbox`'s ``--port=NAME:PROTO:PODPORT:HOSTIP:HOSTPORT`` (rkt's): the pod's own
    port, since no app is there yet to name one."""
    if not specs:
        return ()  # ipaddress costs `app sandbox` ~1 ms of imports
    import ipaddress

    from pyrkt.model.names import is_ac_name
    from pyrkt.model.pod import PodPort

    out = []
    for spec in specs:
        parts = spec.split(":", 3)  # the host IP may be IPv6: the host port is after its last colon
        host_ip, _, host_port = parts[-1].rpartition(":")
        if len(parts) != 4 or not host_ip:
            raise UsageError(f"invalid --port={spec!r}: want NAME:PROTO:PODPORT:HOSTIP:HOSTPORT")
        name, proto, pod_port = parts[:3]
        if not is_ac_name(name):
            raise UsageError(f"invalid --port={spec!r}: {name!r} is not a valid AC Name")
        if proto not in ("tcp", "udp"):
            raise UsageError(f"invalid --port={spec!r}: invalid protocol {proto!r} (want tcp or udp)")
        for number in (pod_port, host_port):
            if not number.isdigit() or not 0 < int(number) < 65536:
                raise UsageError(f"invalid --port={spec!r}: {number!r} is not a port number")
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise UsageError(f"invalid --port={spec!r}: could not parse IP {host_ip!r}") from None
        out.append(PodPort(name, int(host_port), host_ip, pod_port=int(pod_port), protocol=proto))
    return tuple(out)


def find_sandbox(config: Config, uuid: str) -> Pod:
    """The running mutable pod ``uuid`` names, ready for apps (rkt's words when it is not)."""
    pod = Pod.find(config.pods_dir, uuid)
    if pod.state != State.RUNNING:
        raise InvalidState(f"pod {quote(pod.uuid)} isn't currently running")
    if not os.path.exists(pod.file(abi.APPS_LOCK)):
        raise InvalidState(f"pod {pod.uuid} is not a mutable pod (start one with `pyrkt app sandbox`)")
    deadline = time.monotonic() + 5.0
    while not os.path.islink(pod.file(abi.SUPERVISOR_STATUS)):
        if time.monotonic() > deadline or not lock.is_locked(pod.path):
            raise InvalidState(f"supervisor for pod {quote(pod.uuid)} is not yet ready")
        time.sleep(0.01)
    return pod


class AppsLock:
    """The pod's ``apps-lock``, held exclusively (waiting for other `app` commands)."""

    def __init__(self, pod: Pod) -> None:
        from pyrkt.kernel.lock import FileLock

        self.lock = FileLock.open(pod.file(abi.APPS_LOCK))

    def __enter__(self) -> AppsLock:
        self.lock.exclusive()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.close()


def read_manifest(pod: Pod) -> PodManifest:
    from pyrkt.stage1.poddir import read_manifest as read

    return read(pod.path)


def write_manifest(pod: Pod, manifest: PodManifest) -> None:
    fs.atomic_write(pod.file(abi.POD_MANIFEST), jsonio.dumps(manifest.to_json()), mode=0o640, sync=False)


def app_of(pod: Pod, manifest: PodManifest, name: str) -> None:
    if manifest.app(name) is None:
        names = ", ".join(a.name for a in manifest.apps) or "none"
        raise NotFound(f"nonexistent app {quote(name)} in pod {pod.uuid} (apps: {names})")  # rkt's words


# -- add -------------------------------------------------------------------------------------


def add(config: Config, uuid: str, ar: AppRequest, app_volumes: list[tuple[Volume, str]], *,
        devices: tuple[HostDevice, ...] = (), ui: FetchUI | None = None) -> str:
    """Add an app (created, not started) to a running mutable pod; returns its name. The image
    must be in the store (rkt: pull policy never). ``app_volumes``: its ``--mnt-volume`` flags
    (``mnt_volume``); ``devices``: its ``--device`` flags (``prepare.host_devices``), for it
    alone."""
    from pyrkt.model.volumes import AppMount
    from pyrkt.stage0 import volumes
    from pyrkt.stage0.images import resolve_image
    from pyrkt.stage0.prepare import (
        PodRequest,
        check_executables,
        check_runnable,
        check_users,
        layers_idmappable,
        reify,
        unapplied_privileges,
        unhonoured,
    )
    from pyrkt.store import Store

    check_writable(config.data_dir)
    pod = find_sandbox(config, uuid)
    store = Store.open(config.store_dir, config_dirs=tuple(config.dirs.names()))
    with store.shared_lock():  # the layers stay until the pod dir names them
        image = resolve_image(config, store, ar.image, pull_policy="never", signature=ar.signature or None, ui=ui)
        check_runnable(image)
        (ra,) = reify(PodRequest(apps=[ar]), [image])
        ra = ra.replace(mounts=ra.mounts + tuple(AppMount(v.name, target, app_volume=v) for v, target in app_volumes))
        layers = store.lower_dirs(image)
        check_executables([ra], [layers])
        if ui is not None:
            for line in [*unhonoured([ra], [image]), *unapplied_privileges([ra], "default")]:
                ui.notice(f"warning: {line}")
        with AppsLock(pod):
            manifest = read_manifest(pod)
            if manifest.app(ra.name) is not None:
                raise UsageError(f"multiple apps with name {ra.name} in pod {pod.uuid}: "  # rkt's words
                                 "give the new one another --name")
            one = volumes.satisfy(manifest.replace(apps=(ra,)), [image])
            ra = one.apps[0]
            check_users([ra], [layers])  # with the mounts its image's mount points got
            clear_app(pod, ra.name)  # what an add killed halfway left
            ids = private_users(pod)
            overlay = os.path.isdir(pod.file(abi.OVERLAY))
            if ids is not None and overlay:
                overlay = layers_idmappable([layers], ui)
            new_volumes = one.volumes[len(manifest.volumes):]
            volumes.lay_out(pod.path, one.replace(volumes=new_volumes), [layers])
            from pyrkt.stage0.prepare import lay_out_app

            lay_out_app(pod.path, ra.name, image, layers, overlay=overlay, ids=ids)
            manifest = manifest.replace(apps=manifest.apps + (ra,), volumes=one.volumes, annotations=one.annotations)
            from pyrkt.stage1.default import FLAVOR

            FLAVOR.create_app(pod.path, manifest, ra.name, devices)
            write_manifest(pod, manifest)  # the app exists from here on
            fs.touch(pod.file(f"{abi.STATUS_DIR}/{ra.name}-created"))
            from pyrkt.stage1.mutable import tell_pod_init

            tell_pod_init(pod.path, ra.name, "prepare")  # set up now, in pod init: `app start` releases it
        store.touch(image.id)
    return ra.name


def mnt_volume(text: str) -> tuple[Volume, str]:
    """rkt's ``--mnt-volume=name=NAME,kind=KIND,...,target=PATH``: a volume of the app alone
    and its mount, one flag."""
    from pyrkt.model.volumes import check_target
    from pyrkt.model.volumes import parse_volume as parse

    fields = [f for f in text.split(",") if f]
    targets = [f.partition("=")[2] for f in fields if f.startswith("target=")]
    rest = [f for f in fields if not f.startswith("target=")]
    names = [f.partition("=")[2] for f in rest if f.startswith("name=")]
    if len(targets) != 1 or not targets[0].startswith("/"):
        raise UsageError(f"invalid --mnt-volume={text}: want one absolute target=PATH")
    if len(names) != 1:
        raise UsageError(f"invalid --mnt-volume={text}: want one name=NAME")
    try:
        check_target(targets[0])
    except UsageError as e:
        raise UsageError(f"invalid --mnt-volume={text}: {e}") from None
    volume = parse(",".join([names[0], *(f for f in rest if not f.startswith("name="))]))
    return volume, targets[0]


def private_users(pod: Pod) -> IdRange | None:
    text = (fs.read_text(pod.file(abi.PRIVATE_USERS)) or "").strip()
    if not text:
        return None
    from pyrkt.model.idmap import IdRange

    return IdRange.parse(text, where=abi.PRIVATE_USERS)


def clear_app(pod: Pod, name: str) -> None:
    """Remove what the pod dir has of an app (not in its manifest any more, or never yet)."""
    for rel in (f"{abi.APPSINFO}/{name}", f"{abi.OVERLAY}/{name}", os.path.dirname(abi.app_rootfs(name))):
        path = pod.file(rel)
        if os.path.lexists(path):
            from pyrkt.pods.gc import remove_tree  # here: `app add` of a new name has nothing to clear

            remove_tree(path)
    for rel in (abi.app_status(name), f"{abi.app_status(name)}-created", f"{abi.app_status(name)}-started",
                f"{abi.app_status(name)}-oom-killed", f"{abi.app_status(name)}-signaled", f"{abi.ENV_DIR}/{name}",
                f"stage1/rootfs/rkt/pids/{name}", abi.app_log(name), f"{abi.REQUESTS_DIR}/{name}", f"{abi.REQUESTS_DIR}/{name}.result",
                f"{abi.REQUESTS_DIR}/{name}.wake"):
        try:
            os.unlink(pod.file(rel))
        except FileNotFoundError:
            pass


# -- start, stop, rm --------------------------------------------------------------------------


def app_state(pod: Pod, name: str) -> str:
    """created, running or exited, from rkt's status files; unknown without them (an app not
    in the pod, or one whose add was killed halfway)."""
    status = pod.file(abi.app_status(name))
    if os.path.exists(status):
        return "exited"
    if os.path.exists(status + "-started"):
        return "running"
    return "created" if os.path.exists(status + "-created") else "unknown"


def start(config: Config, uuid: str, name: str) -> None:
    """Have pod init start the app from the plan `app add` wrote (again, after a stop)."""
    from pyrkt.kernel import cgroups
    from pyrkt.stage1.mutable import ask_pod_init

    if cgroups.own_join_waits():  # the app joins its cgroups soon, in pod init's child: see join
        cgroups.prime_join()
    pod = find_sandbox(config, uuid)
    with AppsLock(pod):
        app_of(pod, read_manifest(pod), name)
        if app_state(pod, name) == "running":
            raise InvalidState(f"app {name} of pod {pod.uuid} is running already")
        ask_pod_init(pod.path, name, "start")


def stop(config: Config, uuid: str, name: str, timeout: float = abi.DEFAULT_STOP_TIMEOUT) -> None:
    """TERM the app, KILL it ``timeout`` seconds later if it still runs; wait until it has exited."""
    from pyrkt.stage1.default import FLAVOR

    pod = find_sandbox(config, uuid)
    with AppsLock(pod):
        app_of(pod, read_manifest(pod), name)
        if app_state(pod, name) != "running":
            raise InvalidState(f"app {name} of pod {pod.uuid} is not running")
        FLAVOR.stop_app(pod.path, name, timeout)


def remove(config: Config, uuid: str, name: str, timeout: float = abi.DEFAULT_STOP_TIMEOUT) -> None:
    """Stop the app if it runs, then remove it from the pod: manifest entry, dirs, cgroups."""
    from pyrkt.stage1.default import FLAVOR

    pod = find_sandbox(config, uuid)
    with AppsLock(pod):
        manifest = read_manifest(pod)
        app_of(pod, manifest, name)
        forget(FLAVOR, pod, name, timeout)
        write_manifest(pod, manifest.replace(apps=tuple(a for a in manifest.apps if a.name != name)))
        clear_app(pod, name)


def forget(flavor: DefaultFlavor, pod: Pod, name: str, timeout: float) -> None:
    """Have pod init forget the app (``flavor.remove_app``), stopping it first if it runs: also
    when it was not running as we looked but is by the time pod init reads our request (the
    start an `app start` killed before its answer asked for was still under way)."""
    from pyrkt.stage1.mutable import AppRunning

    if app_state(pod, name) == "running":
        flavor.stop_app(pod.path, name, timeout)
    try:
        flavor.remove_app(pod.path, name)
    except AppRunning:
        flavor.stop_app(pod.path, name, timeout)
        flavor.remove_app(pod.path, name)


# -- list, status, exec -----------------------------------------------------------------------


def apps(config: Config, uuid: str) -> Iterator[AppInfo]:
    """The pod's apps as `status` reads them (any pod, as rkt's `app list`)."""
    from pyrkt.pods.info import read_pod

    pod = Pod.find(config.pods_dir, uuid)
    info = read_pod(pod)
    if info is None:
        raise InvalidState(f"pod {pod.uuid} is gone")
    yield from info.apps


def app_info(config: Config, uuid: str, name: str) -> AppInfo:
    for app in apps(config, uuid):
        if app.name == name:
            return app
    raise NotFound(f"cannot find app {quote(name)} in the pod {uuid}")  # rkt's words


def exec_in(config: Config, uuid: str, name: str, argv: list[str], *, tty: bool = False) -> int:
    """Run ``argv`` in a running app of the pod, as `enter` does; its exit code. ``tty``: with a
    terminal of its own (a mutable pod's: the default flavor)."""
    from pyrkt.stage0 import control

    pod = Pod.find(config.pods_dir, uuid)
    control.wait_for_pid(pod)
    app_of(pod, read_manifest(pod), name)
    if app_state(pod, name) != "running":
        raise InvalidState(f"app {name} of pod {pod.uuid} is not running")
    return control.enter(config, pod.uuid, name, argv, tty=tty)

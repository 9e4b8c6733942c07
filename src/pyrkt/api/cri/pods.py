"""RuntimeService's pod sandboxes and containers on pyrkt's mutable pods (`app sandbox`,
`app add|start|stop|rm`), through their use-case functions in ``stage0.sandbox``.

- A sandbox is an app sandbox; its id is the pod UUID. A container is an app of it; its id is
  ``<pod uuid>-<app name>`` (the UUID is 36 characters: the rest is the app).
- Nothing is kept in memory: what the kubelet gave (metadata, labels, annotations, the log path,
  the image it named) is in the pod manifest, as the pod's and the apps' user labels and user
  annotations (``io.kubernetes.cri.*`` and ``io.pyrkt.cri.*`` keys are this module's and are not
  handed back as the kubelet's annotations); states are rkt's status files.
- The kubelet's CNI config dir becomes the ``net.d`` of a config dir of the server's own,
  ``<data dir>/cri/config`` (``net.d`` a symlink to it), given as the user config dir, so pyrkt's
  network code (and gc, which reads a pod's config dirs from its runtime config) finds the
  kubelet's networks there. A pod-network sandbox joins the first network of that dir.
- A container's log is the pod's CRI-format log of its app (``logs/<app>.log``); the kubelet's
  log path is a symlink to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

from pyrkt.api.cri import mapping
from pyrkt.api.cri.runtime import Settings, cni_config
from pyrkt.api.proto import cri_pb2 as pb
from pyrkt.config import Config, ConfigDirs
from pyrkt.errors import InvalidState, NotFound, PyrktError, UsageError
from pyrkt.kernel import fs
from pyrkt.model import abi, jsonio
from pyrkt.pods.info import AppInfo, PodInfo, read_pod
from pyrkt.pods.pod import Pod
from pyrkt.pods.state import Dir, State

UUID_LEN = 36
ATTEMPT = "io.pyrkt.cri.attempt"
LOG_PATH = "io.pyrkt.cri.log-path"
IMAGE_SPEC = "io.pyrkt.cri.image"
RUNTIME_HANDLER = "io.pyrkt.cri.runtime-handler"
OWN_PREFIXES = ("io.kubernetes.cri.", "io.pyrkt.cri.")
STATES: dict[str, pb.ContainerState] = {"created": pb.CONTAINER_CREATED, "running": pb.CONTAINER_RUNNING, "exited": pb.CONTAINER_EXITED}
MAX_EXEC_TIMEOUT = 10 * 365 * 86400  # seconds: a longer ExecSync timeout is none
EXEC_GRACE = 5.0  # seconds past an ExecSync timeout for the exec'd command to be killed and reaped


def warn(lines: Iterable[str]) -> None:
    for line in lines:
        sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


def kubelet_annotations(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in pairs if not k.startswith(OWN_PREFIXES)}


def container_id(uuid: str, app: str) -> str:
    return f"{uuid}-{app}"


def split_container_id(cid: str) -> tuple[str, str]:
    if len(cid) <= UUID_LEN + 1 or cid[UUID_LEN] != "-":
        raise NotFound(f"container {cid!r} not found")
    return cid[:UUID_LEN], cid[UUID_LEN + 1:]


def app_name(meta: pb.ContainerMetadata) -> str:
    """The app a container is: its name, with its attempt after the first (the kubelet creates
    attempt N+1 before it removes attempt N)."""
    return meta.name if meta.attempt == 0 else f"{meta.name}-{meta.attempt}"


def matches(selector: Iterable[tuple[str, str]], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector)


class Pods:
    """The sandbox and container calls over ``config``'s pods."""

    def __init__(self, config: Config, settings: Settings, pyrkt_argv: list[str]) -> None:
        self.settings = settings
        self.config = config.replace(dirs=ConfigDirs(system=config.dirs.system, local=config.dirs.local,
                                                     user=os.path.join(settings.state_dir, "config")))
        self.pyrkt_argv = pyrkt_argv  # how to run this pyrkt with the same global flags (ExecSync)
        from pyrkt.api.cri.launch import Launcher

        self.launcher = Launcher()

    def link_cni_conf_dir(self) -> str:
        """Make the user config dir's ``net.d`` the kubelet's CNI conf dir (when a sandbox is
        run: a server that only serves images needs no writable data dir)."""
        base = self.config.dirs.user or ""
        link = os.path.join(base, "net.d")
        if os.path.islink(link) and os.readlink(link) == self.settings.cni_conf_dir:
            return base
        os.makedirs(base, mode=0o755, exist_ok=True)
        tmp = f"{link}.tmp.{os.getpid()}"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(self.settings.cni_conf_dir, tmp)
        os.replace(tmp, link)
        return base

    # -- sandboxes ----------------------------------------------------------------------------

    def network(self) -> str:
        self.link_cni_conf_dir()
        path, why = cni_config(self.settings.cni_conf_dir)
        if not path:
            raise InvalidState(f"no pod network: {why}")
        with open(path, "rb") as f:
            return str(jsonio.field(jsonio.loads(f.read()), "name"))

    def run_sandbox(self, req: pb.RunPodSandboxRequest) -> str:
        if req.runtime_handler not in ("", "pyrkt"):
            raise UsageError(f"runtime handler {req.runtime_handler!r}: pyrkt has one handler, the default")
        config = req.config
        ns = config.linux.security_context.namespace_options
        self.link_cni_conf_dir()  # gc finds a pod's networks through its config dirs, host network or not
        m = mapping.sandbox_request(config, network="" if ns.network == pb.NODE else self.network())
        warn(m.warnings)
        pod = m.pod
        for p in m.ports:
            if p.protocol not in ("tcp", "udp"):
                raise UsageError(f"port mapping {p.host_port}->{p.container_port}/{p.protocol}: pyrkt forwards "
                                 "tcp and udp only")
            pod.ports.append(f"{p.protocol}-{p.container_port}-{p.host_port}:{p.protocol}:{p.container_port}:"
                             f"{p.host_ip or '0.0.0.0'}:{p.host_port}")
        pod.user_annotations.append((ATTEMPT, str(config.metadata.attempt)))
        import pickle

        return self.launcher.launch(pickle.dumps((self.config, pod, m.run)))

    def _pod(self, sid: str) -> Pod:
        """The sandbox ``sid`` (a UUID, or as `pyrkt` a unique prefix of one)."""
        try:
            pod = Pod.find(self.config.pods_dir, sid)
        except NotFound:
            raise NotFound(f"pod sandbox {sid!r} not found") from None
        return pod

    def _info(self, pod: Pod) -> PodInfo | None:
        info = read_pod(pod)
        if info is None or dict(info.user_annotations).get(mapping.CONTAINER_TYPE) != "sandbox":
            return None
        return info

    def stop_sandbox(self, sid: str) -> None:
        """Stop the pod (its apps TERMed, then KILLed), then tear down what pod init did not (a
        killed one's network, mounts, cgroups): idempotent."""
        from pyrkt.stage0 import control, manage

        try:
            pod = self._pod(sid)
        except NotFound:
            return  # removed already: stopped, as the CRI asks
        if self._info(pod) is None:
            return  # not a sandbox (a pod of `pyrkt run`): not the kubelet's to stop
        if pod.state == State.RUNNING:
            self._network_down_first(pod)
            control.stop(self.config, pod.uuid, force=False)
        pod.relocate()
        if pod.state in (State.EXITED, State.EXITED_GARBAGE):
            manage.stage1_teardown(pod.path)

    @staticmethod
    def _network_down_first(pod: Pod) -> None:
        """When no app of the running pod runs (the kubelet stops the containers before their
        sandbox), tear its networks down here, where the network code is loaded already: pod init
        then finds none left (no ``netns`` file) and starts no interpreter to do it (~40 ms).
        Under the apps lock, so no app starts meanwhile; a failure is left to the teardown after
        the stop, which tries again and reports it."""
        from pyrkt.network import setup
        from pyrkt.stage0 import control, sandbox

        if not os.path.exists(pod.file(abi.NETNS)):
            return
        with sandbox.AppsLock(pod):
            if any(sandbox.app_state(pod, name) == "running" for name in control.app_names(pod.path)):
                return
            try:
                setup.down(pod.path)
            except PyrktError:
                pass

    def remove_sandbox(self, sid: str) -> None:
        """Stop it, remove the kubelet's log links of its containers, then the pod: idempotent."""
        from pyrkt.stage0 import manage

        try:
            pod = self._pod(sid)
        except NotFound:
            return
        if self._info(pod) is None:
            return  # not a sandbox: not the kubelet's to remove
        self.stop_sandbox(pod.uuid)
        info = read_pod(pod)
        for app in info.apps if info is not None else ():
            unlink_log(dict(app.user_annotations).get(LOG_PATH, ""))
        for removal in manage.remove_pods(self.config, [pod.uuid]):
            if removal.error is not None and pod.relocate():
                raise PyrktError(removal.error)

    def sandbox_message(self, info: PodInfo) -> pb.PodSandbox:
        ann = dict(info.user_annotations)
        return pb.PodSandbox(id=info.uuid, metadata=self._sandbox_meta(ann),
                             state=pb.SANDBOX_READY if info.state == State.RUNNING else pb.SANDBOX_NOTREADY,
                             created_at=info.created_at or 0, labels=dict(info.user_labels),
                             annotations=kubelet_annotations(info.user_annotations))

    @staticmethod
    def _sandbox_meta(ann: dict[str, str]) -> pb.PodSandboxMetadata:
        return pb.PodSandboxMetadata(name=ann.get(mapping.SANDBOX_NAME, ""), uid=ann.get(mapping.SANDBOX_UID, ""),
                                     namespace=ann.get(mapping.SANDBOX_NAMESPACE, ""),
                                     attempt=int(ann.get(ATTEMPT, "0") or 0))

    def sandbox_status(self, sid: str) -> pb.PodSandboxStatus:
        pod = self._pod(sid)
        info = self._info(pod)
        if info is None:
            raise NotFound(f"pod sandbox {sid!r} not found")
        base = self.sandbox_message(info)
        rc = fs.read_json(pod.file(abi.RUNTIME_CONFIG)) if os.path.exists(pod.file(abi.RUNTIME_CONFIG)) else {}
        host_net = list(rc.get("net") or []) == ["host"]
        ns = pb.NamespaceOption(network=pb.NODE if host_net else pb.POD,
                                ipc=pb.NODE if rc.get("ipc") == "parent" else pb.POD,
                                pid=pb.NODE if rc.get("pid") == "host" else pb.POD)
        ips = [n.ip for n in info.networks if n.ip]
        net = pb.PodSandboxNetworkStatus(ip=ips[0] if ips else "",
                                         additional_ips=[pb.PodIP(ip=ip) for ip in ips[1:]])
        return pb.PodSandboxStatus(id=base.id, metadata=base.metadata, state=base.state, created_at=base.created_at,
                                   network=net, linux=pb.LinuxPodSandboxStatus(
                                       namespaces=pb.Namespace(options=ns)),
                                   labels=base.labels, annotations=base.annotations)

    def sandboxes(self) -> list[PodInfo]:
        out, seen = [], set()
        for pod in Pod.walk(self.config.pods_dir, (Dir.RUN, Dir.EXITED_GARBAGE)):
            if pod.uuid in seen:
                continue
            info = self._info(pod)
            if info is not None:
                seen.add(pod.uuid)
                out.append(info)
        return out

    def list_sandboxes(self, f: pb.PodSandboxFilter | None) -> list[pb.PodSandbox]:
        out = []
        for info in self.sandboxes():
            msg = self.sandbox_message(info)
            if kept(msg, f):
                out.append(msg)
        return out

    # -- containers ---------------------------------------------------------------------------

    def _running_sandbox(self, sid: str) -> tuple[Pod, PodInfo]:
        pod = self._pod(sid)
        info = self._info(pod)
        if info is None:
            raise NotFound(f"pod sandbox {sid!r} not found")
        if info.state != State.RUNNING:
            raise InvalidState(f"pod sandbox {pod.uuid} is not ready (state {info.state.value})")
        return pod, info

    def create_container(self, req: pb.CreateContainerRequest) -> str:
        from pyrkt.api.cri import images
        from pyrkt.stage0 import sandbox
        from pyrkt.stage0.prepare import host_devices
        from pyrkt.store import Store

        pod, _ = self._running_sandbox(req.pod_sandbox_id)
        store = Store(self.config.store_dir)
        try:
            rec = images.find(store, req.config.image.image)
            if rec is None:
                raise NotFound(f"image {req.config.image.image!r} not found: pull it first")
            entrypoint = images.entrypoint(store, rec.id)
        finally:
            store.close()

        def read_profile(path: str) -> bytes:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except (OSError, ValueError) as e:  # ValueError: a NUL in the path
                why = e.strerror if isinstance(e, OSError) else str(e)
                raise UsageError(f"container {req.config.metadata.name}: seccomp profile {path!r}: {why}") from None

        m = mapping.container_request(req.config, req.sandbox_config, sandbox_id=pod.uuid,
                                      entrypoint=entrypoint, read_profile=read_profile)
        try:
            devices = host_devices(list(m.devices))
        except UsageError as e:  # the device the kubelet named is not on this node, or no device
            raise UsageError(f"container {req.config.metadata.name}: {e}") from None
        if m.log_path and not os.path.isabs(m.log_path):
            raise UsageError(f"container {req.config.metadata.name}: log path {m.log_path!r} is not absolute "
                             "(the sandbox has no log_directory)")
        warn(m.warnings)
        app = m.app
        app.name = app_name(req.config.metadata)
        app.image = rec.id
        app.user_annotations += [(ATTEMPT, str(req.config.metadata.attempt)), (LOG_PATH, m.log_path),
                                 (IMAGE_SPEC, req.config.image.image)]
        volumes = []
        for i, (volume, mount) in enumerate(zip(m.volumes, app.mounts, strict=True)):
            rest = volume.split(",", 1)[1]
            target = mount.rpartition("target=")[2]
            volumes.append(sandbox.mnt_volume(f"name={app.name}-m{i},{rest},target={target}"))
        app.mounts = []
        name = sandbox.add(self.config, pod.uuid, app, volumes, devices=devices)
        if m.log_path:
            try:
                link_log(m.log_path, pod.file(abi.app_log(name)))
            except OSError as e:  # the container is not left half-made: it goes again
                self.remove_container(container_id(pod.uuid, name))
                raise UsageError(f"container {name}: cannot link its log at {m.log_path}: "
                                 f"{e.strerror or e}") from None
        return container_id(pod.uuid, name)

    def _app(self, cid: str) -> tuple[Pod, AppInfo]:
        uuid, name = split_container_id(cid)
        try:
            pod = Pod.find(self.config.pods_dir, uuid)
        except NotFound:
            raise NotFound(f"container {cid!r} not found") from None
        info = self._info(pod)
        for app in info.apps if info is not None else ():
            if app.name == name:
                return pod, app
        raise NotFound(f"container {cid!r} not found")

    def start_container(self, cid: str) -> None:
        from pyrkt.stage0 import sandbox

        pod, app = self._app(cid)
        sandbox.start(self.config, pod.uuid, app.name)

    def stop_container(self, cid: str, timeout: int) -> None:
        """TERM, then KILL after ``timeout`` seconds; a container that is not running is
        stopped already (idempotent, as the CRI asks)."""
        from pyrkt.stage0 import sandbox
        from pyrkt.stage1.default import app_host_pid

        pod, app = self._app(cid)
        if app.state != "running":
            return
        try:
            sandbox.stop(self.config, pod.uuid, app.name, timeout=max(float(timeout), 0.1))
        except InvalidState:
            if sandbox.app_state(pod, app.name) != "running":
                return
            pid = app_host_pid(pod.path, app.name)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while sandbox.app_state(pod, app.name) == "running" and time.monotonic() < deadline:
                time.sleep(0.02)

    def remove_container(self, cid: str) -> None:
        from pyrkt.stage0 import sandbox

        try:
            pod, app = self._app(cid)
        except NotFound:
            return
        if pod.state == State.RUNNING:
            sandbox.remove(self.config, pod.uuid, app.name)
        else:  # the pod has stopped: the app only has to leave its manifest and dir
            with sandbox.AppsLock(pod):
                manifest = sandbox.read_manifest(pod)
                sandbox.write_manifest(pod, manifest.replace(apps=tuple(a for a in manifest.apps
                                                                        if a.name != app.name)))
                sandbox.clear_app(pod, app.name)
        unlink_log(dict(app.user_annotations).get(LOG_PATH, ""))

    def container_message(self, info: PodInfo, app: AppInfo) -> pb.Container:
        ann = dict(app.user_annotations)
        return pb.Container(id=container_id(info.uuid, app.name), pod_sandbox_id=info.uuid,
                            metadata=pb.ContainerMetadata(name=ann.get(mapping.CONTAINER_NAME, app.name),
                                                          attempt=int(ann.get(ATTEMPT, "0") or 0)),
                            image=pb.ImageSpec(image=ann.get(IMAGE_SPEC, app.image_id)), image_ref=app.image_id,
                            image_id=app.image_id, state=container_state(info, app),
                            created_at=app.created_at or 0, labels=dict(app.user_labels),
                            annotations=kubelet_annotations(app.user_annotations))

    def list_containers(self, f: pb.ContainerFilter | None) -> list[pb.Container]:
        out = []
        for info in self.sandboxes():
            if f is not None and f.pod_sandbox_id and not info.uuid.startswith(f.pod_sandbox_id):
                continue
            for app in info.apps:
                msg = self.container_message(info, app)
                if kept(msg, f):
                    out.append(msg)
        return out

    def container_status(self, cid: str) -> pb.ContainerStatus:
        pod, app = self._app(cid)
        info = read_pod(pod)
        assert info is not None
        base = self.container_message(info, app)
        st = pb.ContainerStatus(id=base.id, metadata=base.metadata, state=base.state, created_at=base.created_at,
                                image=base.image, image_ref=base.image_ref, image_id=base.image_id,
                                labels=base.labels, annotations=base.annotations,
                                log_path=dict(app.user_annotations).get(LOG_PATH, ""),
                                mounts=[pb.Mount(container_path=mt.container_path, host_path=mt.host_path,
                                                 readonly=mt.read_only,
                                                 propagation=mapping.PROPAGATION_OF.get(mt.propagation, pb.PROPAGATION_PRIVATE))
                                        for mt in app.mounts])
        if app.started_at is not None:
            st.started_at = app.started_at
        if base.state == pb.CONTAINER_EXITED:
            st.finished_at = app.finished_at or 0
            st.exit_code, st.reason = container_exit(app, self._oom_killed(info, app))
        elif base.state == pb.CONTAINER_UNKNOWN:
            st.reason, st.message = "Unknown", "the pod has stopped: the container's state was not recorded"
        return st

    # -- resources, logs, stats --------------------------------------------------------------

    def update_resources(self, cid: str, r: pb.LinuxContainerResources) -> None:
        """New limits written to the app's cgroups (as `app add` made them) and its isolators
        in the pod manifest (what `status` shows). Fields left 0 keep the app's current value."""
        from pyrkt.kernel.api import LinuxKernel
        from pyrkt.model import isolators as iso
        from pyrkt.stage0 import sandbox

        pod, app = self._app(cid)
        if pod.state != State.RUNNING:
            raise InvalidState(f"container {cid}: its pod sandbox is not running")
        warnings: list[str] = []
        new = mapping.resources(app.name, r, warnings)
        if any(n == iso.OOM_SCORE_ADJ for n, _ in new):
            warnings.append(f"container {app.name}: the OOM score of a created container is not changed")
            new = [(n, v) for n, v in new if n != iso.OOM_SCORE_ADJ]
        warn(warnings)
        sub = (fs.read_text(pod.file(abi.SUBCGROUP)) or "").strip()
        if not sub:
            raise InvalidState(f"container {cid}: its pod has no cgroup")
        with sandbox.AppsLock(pod):
            manifest = sandbox.read_manifest(pod)
            ra = manifest.app(app.name)
            if ra is None:
                raise NotFound(f"container {cid!r} not found")
            isolators = iso.with_overrides(ra.app.isolators, new)
            limits, _ = iso.limits(isolators, f"container {app.name}: ")
            LinuxKernel().cgroup_create_app(sub, app.name, limits)
            apps = tuple(a.replace(app=a.app.replace(isolators=isolators)) if a.name == app.name else a
                         for a in manifest.apps)
            sandbox.write_manifest(pod, manifest.replace(apps=apps))

    def reopen_log(self, cid: str) -> None:
        """The kubelet's log rotation moved its log path (our link to the pod's log, which pod
        init holds open) to a rotated name: that name gets a copy of the log as a file of its
        own, the pod's log is truncated (pod init appends: its next line starts the file again),
        and the link is made again. As logrotate's copytruncate, a line written between the copy
        and the truncation is lost."""
        import shutil

        pod, app = self._app(cid)
        info = read_pod(pod)
        if info is None or container_state(info, app) != pb.CONTAINER_RUNNING:
            raise InvalidState(f"container {cid} is not running")
        path = dict(app.user_annotations).get(LOG_PATH, "")
        if not path:
            return
        target = pod.file(abi.app_log(app.name))
        if os.path.lexists(path):
            return  # not moved away: nothing to reopen
        folder, base = os.path.split(path)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            moved = os.path.join(folder, name)
            if name.startswith(base + ".") and os.path.islink(moved) and os.readlink(moved) == target:
                tmp = f"{moved}.tmp.{os.getpid()}"
                shutil.copyfile(target, tmp)
                os.replace(tmp, moved)
                os.truncate(target, 0)
        link_log(path, target)

    def container_stats(self, info: PodInfo, app: AppInfo) -> pb.ContainerStats:
        from pyrkt.api.cri import stats
        from pyrkt.kernel.cgroups import app_dir

        msg = self.container_message(info, app)
        out = pb.ContainerStats(attributes=pb.ContainerAttributes(id=msg.id, metadata=msg.metadata,
                                                                  labels=msg.labels, annotations=msg.annotations))
        if info.cgroup and msg.state == pb.CONTAINER_RUNNING:
            cpu, mem = stats.usage(f"{info.cgroup.lstrip('/')}/{app_dir(app.name)}")
            out.cpu.CopyFrom(cpu)
            out.memory.CopyFrom(mem)
        return out

    def one_container_stats(self, cid: str) -> pb.ContainerStats:
        pod, app = self._app(cid)
        info = read_pod(pod)
        if info is None:
            raise NotFound(f"container {cid!r} not found")
        return self.container_stats(info, app)

    def list_container_stats(self, f: pb.ContainerStatsFilter | None) -> list[pb.ContainerStats]:
        cf = None if f is None else pb.ContainerFilter(id=f.id, pod_sandbox_id=f.pod_sandbox_id,
                                                       label_selector=f.label_selector)
        wanted = {c.id for c in self.list_containers(cf)}
        return [self.container_stats(info, app) for info in self.sandboxes() for app in info.apps
                if container_id(info.uuid, app.name) in wanted]

    def sandbox_stats(self, info: PodInfo) -> pb.PodSandboxStats:
        from pyrkt.api.cri import stats

        msg = self.sandbox_message(info)
        out = pb.PodSandboxStats(attributes=pb.PodSandboxAttributes(id=msg.id, metadata=msg.metadata,
                                                                    labels=msg.labels, annotations=msg.annotations))
        if info.cgroup:
            cpu, mem = stats.usage(info.cgroup.lstrip("/"))
            out.linux.cpu.CopyFrom(cpu)
            out.linux.memory.CopyFrom(mem)
        out.linux.containers.extend(self.container_stats(info, app) for app in info.apps)
        return out

    def one_sandbox_stats(self, sid: str) -> pb.PodSandboxStats:
        info = self._info(self._pod(sid))
        if info is None:
            raise NotFound(f"pod sandbox {sid!r} not found")
        return self.sandbox_stats(info)

    def list_sandbox_stats(self, f: pb.PodSandboxStatsFilter | None) -> list[pb.PodSandboxStats]:
        return [self.sandbox_stats(info) for info in self.sandboxes()
                if f is None or ((not f.id or info.uuid.startswith(f.id))
                                 and matches(f.label_selector.items(), dict(info.user_labels)))]

    @staticmethod
    def _oom_killed(info: PodInfo, app: AppInfo) -> bool:
        """pyrkt's record (pod init's stamp), or, where pod init could not open the app's OOM
        counter, a KILL with OOM kills counted in the app's memory cgroup."""
        if app.oom_killed:
            return True
        if app.exit_code != 128 + signal.SIGKILL or not info.cgroup:
            return False
        from pyrkt.api.cri import stats
        from pyrkt.kernel.cgroups import app_dir

        return stats.oom_kills(f"{info.cgroup.lstrip('/')}/{app_dir(app.name)}") > 0

    # -- exec ---------------------------------------------------------------------------------

    def exec_sync(self, cid: str, cmd: list[str], timeout: int) -> pb.ExecSyncResponse:
        """The command as `pyrkt app exec` runs it, in a child process of its own (``enter``
        forks with the caller's stdio: not the server's to give), its output captured."""
        pod, app = self._app(cid)
        check_command("ExecSync", cmd)
        limit = exec_timeout(timeout)
        if app.state != "running":
            raise InvalidState(f"container {cid} is not running")
        argv = [*self.pyrkt_argv, "app", "exec", pod.uuid, f"--app={app.name}", "--", *cmd]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=EXEC_GRACE)
            raise DeadlineExceeded(f"ExecSync: command timed out after {timeout}s") from None
        return pb.ExecSyncResponse(stdout=out, stderr=err, exit_code=proc.returncode)


    # -- streaming (Exec, Attach, PortForward: the URLs are streaming.py's) ----------------------

    def running_app(self, cid: str) -> tuple[str, str]:
        """(pod UUID, app name) of a running container, else NOT_FOUND or FAILED_PRECONDITION."""
        pod, app = self._app(cid)
        if app.state != "running":
            raise InvalidState(f"container {cid} is not running")
        return pod.uuid, app.name

    def attachable_app(self, cid: str) -> tuple[str, str]:
        """As ``running_app``, of a container created with stdin or tty (whose app's stdio is in
        stream or tty mode): pyrkt attaches to no other."""
        from pyrkt.model.stdio import Stdio
        from pyrkt.stage1.poddir import read_manifest

        uuid, name = self.running_app(cid)
        ra = read_manifest(Pod.find(self.config.pods_dir, uuid).path).app(name)
        if not Stdio.from_annotations(ra.annotations if ra is not None else (), f"app {name}: ").attachable():
            raise InvalidState(f"container {cid} cannot be attached to: it was created without stdin or tty "
                               "(pyrkt attaches to those only; its output is in its log)")
        return uuid, name

    def sandbox_pid(self, sid: str) -> int:
        """The pid of a ready sandbox's pod init (whose network namespace is the pod's)."""
        pod, _ = self._running_sandbox(sid)
        pid = pod.pid()
        if pid is None:
            raise InvalidState(f"pod sandbox {pod.uuid} is not ready (no pod init)")
        return pid


def check_command(call: str, cmd: list[str]) -> None:
    """An exec'd command: some words, none with a NUL (no argv can carry one)."""
    if not cmd:
        raise UsageError(f"{call}: no command given")
    for i, word in enumerate(cmd):
        if "\0" in word:
            raise UsageError(f"{call}: word {i} of the command has a NUL character")


def exec_timeout(timeout: int) -> float | None:
    """ExecSync's ``timeout`` (seconds; 0 is none) as a wait's: refused when negative, none past
    what a wait can take."""
    if timeout < 0:
        raise UsageError(f"ExecSync: timeout {timeout}s is negative (0 is no timeout)")
    return float(timeout) if 0 < timeout < MAX_EXEC_TIMEOUT else None


class DeadlineExceeded(PyrktError):
    """An ExecSync command that outlived its timeout (DEADLINE_EXCEEDED, as the kubelet expects)."""


def container_exit(app: AppInfo, oom_killed: bool) -> tuple[int, str]:
    """An exited container's exit code and reason as containerd reports them: the status its
    process really ended with (143 after a StopContainer's TERM killed it, 137 after the KILL),
    not rkt's 0 for an app the pod stopped (``app status`` keeps that); reason ``OOMKilled``,
    else ``Completed`` for 0, else ``Error``. -1 when nothing was recorded."""
    code = app.signaled_code if app.signaled_code is not None else app.exit_code
    if code is None:
        code = -1
    return code, "OOMKilled" if oom_killed else ("Completed" if code == 0 else "Error")


def container_state(info: PodInfo, app: AppInfo) -> pb.ContainerState:
    """created, running, exited from the app's status files; a created or running app of a pod
    that has stopped is exited when pod init recorded it, else unknown."""
    state = STATES.get(app.state, pb.CONTAINER_UNKNOWN)
    if info.state != State.RUNNING and state == pb.CONTAINER_RUNNING:
        return pb.CONTAINER_EXITED if app.exit_code is not None else pb.CONTAINER_UNKNOWN
    return state


def link_log(path: str, target: str) -> None:
    """The kubelet's log path as a symlink to the app's log in the pod (made now, the file
    itself when the app starts); what is at ``path`` already is replaced."""
    if not os.path.isabs(path):
        raise UsageError(f"log path {path!r} is not absolute: the sandbox needs a log_directory")
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, path)


def unlink_log(path: str) -> None:
    """The kubelet's log link of a container, if it is still ours (a symlink)."""
    if path and os.path.islink(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def kept(msg: Any, f: Any) -> bool:
    """Whether a listed sandbox or container passes its filter: an id prefix, a state, and a
    label selector (a filter message of either kind, or None)."""
    if f is None:
        return True
    if f.id and not msg.id.startswith(f.id):
        return False
    if f.HasField("state") and msg.state != f.state.state:
        return False
    return bool(matches(f.label_selector.items(), dict(msg.labels)))
